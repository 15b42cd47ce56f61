"""CISPO with one side of MiniMax-M1's unified-objective token mask M (paper eq. 6), as user
policy losses (the open registry's `file.py:fn`), for the diagnosis in docs/ALGORITHMS.md:

    grpo train recipes/tiny/r1_zero.yaml --set algorithm.mu=2 --set train.seed=3 --set algorithm.policy_loss=bench/cispo_masked.py:cispo_mask_low
"""
from __future__ import annotations

import torch


def _cispo(logp, old_logp, adv, mask, clip_low, clip_high, side):
    """grpo.algos.losses.cispo_loss, times the mask M on ``side`` ('high': A > 0 and r > 1 + clip_high;
    'low': A < 0 and r < 1 - clip_low), which PPO's clip zeroes implicitly."""
    ratio = torch.exp(logp - old_logp).detach()
    w = torch.clamp(ratio, max=1 + clip_high)
    a = adv.unsqueeze(-1) if adv.dim() == 1 else adv
    hi = (a > 0) & (ratio > 1 + clip_high)
    lo = (a < 0) & (ratio < 1 - clip_low)
    m = torch.ones_like(ratio)
    if side in ("high", "both"):
        m = m * (~hi)
    if side in ("low", "both"):
        m = m * (~lo)
    loss = -(w * a) * logp * m
    return loss, {"clip_high": hi, "clip_low": lo, "ratio": ratio}


def cispo_mask_high(logp, old_logp, adv, mask, clip_low, clip_high):
    return _cispo(logp, old_logp, adv, mask, clip_low, clip_high, "high")


def cispo_mask_low(logp, old_logp, adv, mask, clip_low, clip_high):
    return _cispo(logp, old_logp, adv, mask, clip_low, clip_high, "low")
