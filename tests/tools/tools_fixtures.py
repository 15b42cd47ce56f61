"""Helpers of the multi-turn tests (a module, not a conftest.py: tests/*/conftest.py names
clash when several test dirs run in one command)."""
from __future__ import annotations

from pathlib import Path

import pytest

from grpo.rollout.base import Completion, Group, SamplingParams

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tiny_dir(tiny_model_dir) -> Path:
    return tiny_model_dir                       # tests/conftest.py


@pytest.fixture(scope="session")
def tiny_tok(tiny_dir):
    from grpo.model.policy import load_tokenizer
    return load_tokenizer(str(tiny_dir))


class ScriptedEngine:
    """An engine whose k-th turn of every episode is ``turns[k]`` (the last one repeats),
    encoded with the tokenizer, cut at ``max_new_tokens`` (finish "length"). Records the
    token-id sequences each turn continued from."""

    def __init__(self, tok, turns: list[str]):
        self.tok, self.turns, self.calls = tok, turns, []
        self.turn = 0

    def _one(self, sp: SamplingParams) -> Completion:
        text = self.turns[min(self.turn, len(self.turns) - 1)]
        ids = self.tok(text, add_special_tokens=False).input_ids
        finish = "stop"
        if len(ids) > sp.max_new_tokens:
            ids, finish = ids[:sp.max_new_tokens], "length"
            text = self.tok.decode(ids, skip_special_tokens=True)
        return Completion(text, ids, [-0.5] * len(ids), finish)

    def generate(self, prompts, sp):
        self.turn = 0
        groups = [Group(p, self.tok(p).input_ids, [self._one(sp) for _ in range(sp.n)]) for p in prompts]
        self.turn = 1
        return groups

    def generate_ids(self, ids, sp):
        self.calls.append([list(x) for x in ids])
        out = [self._one(sp) for _ in ids]
        self.turn += 1
        return out

    def update_weights(self, named=()):
        pass

    def sleep(self):
        pass

    def wake(self):
        pass


def observations_env(obs: list[str], stop: list[str]):
    """An Env class that answers every turn (whatever the model wrote) with ``obs`` in turn,
    then is done."""
    from grpo.envs import Env

    class Observations(Env):
        def __init__(self):
            super().__init__()
            self.n = 0

        def step(self, action):
            self.n += 1
            return (obs[self.n - 1], 0.0, False) if self.n <= len(obs) else (None, 0.0, True)
    Observations.stop = list(stop)
    return Observations


def trajectory_logprobs(model, prompt_ids: list[int], token_ids: list[int]):
    """Log-probs ``[T]`` of a trajectory's tokens from one unpadded forward over prompt + trajectory."""
    import torch
    ids = torch.tensor([prompt_ids + token_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, len(prompt_ids) - 1:-1].float()
    return logits.log_softmax(-1).gather(-1, torch.tensor(token_ids)[:, None])[:, 0]
