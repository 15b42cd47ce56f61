"""The learning-rate schedule, one home for ``grpo train`` and ``grpo sft``.

Linear warmup over ``warmup`` optimizer steps, then ``constant``, ``linear`` decay to 0
at the last step (TRL's default ``lr_scheduler_type``), or ``cosine`` decay to 0 (verl's
``lr_scheduler_type: cosine``; Loshchilov & Hutter 2017, SGDR, without restarts).

>>> [round(lr_factor(s, 5, 1, "linear"), 2) for s in range(5)]
[1.0, 1.0, 0.75, 0.5, 0.25]
>>> [round(lr_factor(s, 5, 2, "constant"), 2) for s in range(5)]
[0.5, 1.0, 1.0, 1.0, 1.0]
>>> [round(lr_factor(s, 5, 1, "cosine"), 3) for s in range(5)]
[1.0, 1.0, 0.854, 0.5, 0.146]
"""
from __future__ import annotations

import math

import torch

SCHEDULES = ("constant", "linear", "cosine")


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """The lr multiplier of optimizer step ``step`` (0-based) of ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    frac = min(1.0, (step - warmup) / max(total - warmup, 1))      # 0 after warmup -> 1 at the end
    if schedule == "linear":
        return 1.0 - frac
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * frac))
    raise ValueError(f"unknown lr schedule {schedule!r}; one of {', '.join(SCHEDULES)}")


def scheduler(opt: torch.optim.Optimizer, total: int, warmup: int, schedule: str):
    """A LambdaLR over :func:`lr_factor` (its state, the step count, is what checkpoints keep)."""
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total, warmup, schedule))
