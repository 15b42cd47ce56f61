"""The tools model's pre-training traces speak the calculator env's protocol exactly: replayed
turn by turn through grpo.envs' Calculator, every observation the env appends is the text
that follows the call in the trace, so what the model saw in pre-training is what RL shows it."""
import random
import re

import pytest

from grpo.envs.calculator import Calculator
from grpo.data.tasks import (arithmetic_problem, calculator_trace, long_arithmetic_problem,
                        tool_corpus_trace)


def replay(trace: str) -> tuple[list[str], list[str]]:
    """Cut ``trace`` after each </calc> (the env's stop string), step the env with each turn;
    returns the env's observations and the observations written in the trace."""
    env, seen, written = Calculator(), [], []
    rest = trace
    while "</calc>" in rest:
        turn, rest = rest.split("</calc>", 1)
        obs, reward, done = env.step(turn + "</calc>")
        assert (reward, done) == (0.0, False)
        seen.append(obs)
        m = re.match(r"<result>[^<]*</result>", rest)
        written.append(m.group(0) if m else "")
        rest = rest[len(written[-1]):]
    assert env.step(rest) == (None, 0.0, True)     # the final turn answers: the episode ends
    return seen, written


@pytest.mark.parametrize("seed", range(5))
def test_every_observation_in_a_trace_is_what_the_env_appends(seed):
    rng = random.Random(seed)
    for _ in range(200):
        p = rng.choice([arithmetic_problem, long_arithmetic_problem])(rng)
        t = calculator_trace(p, rng)
        seen, written = replay(t)
        assert seen == written and len(seen) == len(p["numbers"]) - 1
        assert t.endswith(f"<answer>{p['answer']}</answer>") or t.endswith(f"is {p['answer']}.")


def test_a_trace_with_many_or_large_terms_still_matches():
    for nums in ([9] * 40, [123456789, 987654321], [0, 0, 0], [1, 2]):
        seen, written = replay(calculator_trace({"numbers": nums}, random.Random(0), 0.0))
        assert seen == written and seen[-1] == f"<result>{sum(nums)}</result>"


def test_corpus_mixes_tool_and_hand_traces_deterministically():
    def draw(seed):
        rng = random.Random(seed)
        return [tool_corpus_trace(arithmetic_problem(rng, (3, 5)), rng, tool_rate=0.08)
                for _ in range(3000)]
    a = draw(7)
    assert a == draw(7)
    rate = sum("<calc>" in t for t in a) / len(a)
    assert 0.065 < rate < 0.095                                      # 0.08 +- 3 sd
    assert all(replay(t)[0] == replay(t)[1] for t in a if "<calc>" in t)
    assert not any("wait, let me verify" in t for t in a)            # no careful style by default
