"""A user's own env, loaded by a recipe as `tests/tools/hint_env.py:Hint`: after the
model's first turn it appends a fixed hint (an observation) with an env reward, then ends."""
from grpo.envs import Env

HINT = "<result>7</result>"


class Hint(Env):
    def __init__(self, reward: float = 0.5):
        super().__init__()
        self.reward, self.n = float(reward), 0

    def step(self, action):
        self.n += 1
        if self.n == 1:
            self.calls += 1
            return HINT, self.reward, False
        return None, 0.0, True
