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
