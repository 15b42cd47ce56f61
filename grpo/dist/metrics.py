"""A step's metrics over every rank's completions, not rank 0's shard.

Under ``torchrun`` each rank scores only its own prompts. The per-completion records the
step metrics are computed from (rewards per function, lengths, texts for the reflection
counts, truncation; the groups' zero-variance flags) are gathered from all ranks, in rank
order, and the metrics computed once on the whole step's completions, with the very
functions a single process uses, so a 2-rank run logs what one process logs on the same
batch (means, stds and maxima alike). The update's token-weighted sums (loss, entropy,
clip fractions, KL) are reduced separately by ``Parallel.reduce_sums``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from rewards.combine import reward_metrics


@dataclass
class StepRecords:
    """One step's per-completion records: N = all ranks' completions, B = their groups."""
    total: list[float]              # [N]
    per_fn: dict[str, list]         # name -> [N] (None: not applicable)
    errors: list[dict]
    lengths: list[int]              # [N] completion tokens
    texts: list[str]                # [N]
    truncated: torch.Tensor         # [N] bool
    zero_std: torch.Tensor          # [B] bool
    reward_metrics: dict
    tools: list                     # [N] ToolStats of multi-turn episodes (None: single-turn)


def gather_step(par, names: list[str], out, comps: list, truncated: torch.Tensor,
                zero_std: torch.Tensor) -> StepRecords:
    """``out``: this rank's RewardOutput on ``comps``. One process: its own records."""
    mine = {"total": list(out.total), "per_fn": out.per_fn, "errors": out.errors,
            "lengths": [len(c.token_ids) for c in comps], "texts": [c.text for c in comps],
            "truncated": truncated.tolist(), "zero_std": zero_std.tolist(),
            "tools": [getattr(c, "tools", None) for c in comps]}
    if not par.enabled:
        return StepRecords(mine["total"], out.per_fn, out.errors, mine["lengths"], mine["texts"],
                           truncated, zero_std, out.metrics, mine["tools"])
    return merge_records(names, par.gather_objects(mine))


def merge_records(names: list[str], ranks: list[dict]) -> StepRecords:
    """Concatenate the records of several ranks (rank order) and compute the reward metrics.

    >>> r = merge_records(["f"], [{"total": [1.0], "per_fn": {"f": [1.0]}, "errors": [], "lengths": [3],
    ...     "texts": ["a"], "truncated": [False], "zero_std": [True]},
    ...     {"total": [0.0], "per_fn": {"f": [None]}, "errors": [], "lengths": [5], "texts": ["b"],
    ...     "truncated": [True], "zero_std": [False]}])
    >>> r.lengths, r.reward_metrics["reward/mean"], r.reward_metrics["reward/f/none_frac"], r.truncated.tolist()
    ([3, 5], 0.5, 0.5, [False, True])
    """
    cat = lambda k: [x for r in ranks for x in r[k]]  # noqa: E731
    total = cat("total")
    per_fn = {n: [x for r in ranks for x in r["per_fn"][n]] for n in names}
    errors = cat("errors")
    return StepRecords(total, per_fn, errors, cat("lengths"), cat("texts"),
                       torch.tensor(cat("truncated"), dtype=torch.bool),
                       torch.tensor(cat("zero_std"), dtype=torch.bool),
                       reward_metrics(names, total, per_fn, errors),
                       [x for r in ranks for x in r.get("tools", [None] * len(r["total"]))])
