"""Helpers of the vllm tier (a module, not conftest fixtures)."""
from __future__ import annotations

import json
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def trajectory_logprobs(model, prompt_ids: list[int], token_ids: list[int]) -> torch.Tensor:
    """Log-probs ``[T]`` of ``token_ids`` from one unpadded forward over prompt + tokens."""
    ids = torch.tensor([prompt_ids + token_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, len(prompt_ids) - 1:-1].float()
    return logits.log_softmax(-1).gather(-1, torch.tensor(token_ids)[:, None])[:, 0]


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


class Recorder:
    """Wraps an engine's ``generate``: every group it returned, in order."""

    def __init__(self, engine):
        self.engine, self.groups = engine, []
        self._generate = engine.generate
        engine.generate = self

    def __call__(self, prompts, sampling):
        groups = self._generate(prompts, sampling)
        self.groups.append(groups)
        return groups


# A graded length reward: every group has reward variance, so every step updates the policy
# (the accuracy reward can be 0 for a whole batch with a barely trained model).
LENGTH_REWARD = "rewards=[{name: overlong_penalty, kwargs: {max_len: 32, cache_len: 32}}]"


def probe(tok, a: int = 2, b: int = 3) -> tuple[list[list[int]], list[list[int]]]:
    """``([prompt ids], [ids of a right answer])`` in the tiny r1_zero format."""
    from grpo.data import apply_template
    prompt = tok(apply_template("r1_zero_tiny", f"What is {a}+{b}?")).input_ids
    answer = tok(f"<think>{a}+{b}={a + b}</think> <answer>{a + b}</answer>").input_ids
    return [prompt], [answer + [tok.eos_token_id]]


def policy_logprobs(model, tok, P, C) -> list[list[float]]:
    """The trainer's per-token log-probs of each completion (unpadded rows)."""
    from grpo.model.policy import build_batch, score
    with torch.no_grad():
        lp, _ = score(model, build_batch(P, C, tok.pad_token_id))
    return [lp[i, :len(c)].tolist() for i, c in enumerate(C)]


def max_diff(a, b) -> float:
    """Largest per-token difference between two lists of log-prob rows."""
    return max(abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb))


def engine_lag(trainer, P, C) -> float:
    """How far the engine's log-probs are from the trainer's policy on ``C``."""
    return max_diff(trainer.engine.score(P, C), policy_logprobs(trainer.policy, trainer.tok, P, C))


def perturbed(policy, seed: int):
    """A copy of ``policy`` with every weight moved by N(0, 0.05^2) noise."""
    import copy
    new = copy.deepcopy(policy)
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in new.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return new


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc) -> None:
    """Terminate a server process, killing it if it does not exit in 30 s."""
    import subprocess
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
