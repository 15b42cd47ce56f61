"""Overlapped rollouts with bounded staleness: sample steps k+1..k+s while step k trains.

A synchronous GRPO step runs rollout and update one after the other, so each waits for
the other: on a CPU the sampler idles while the trainer computes gradients and vice versa,
and with rollouts on their own GPUs (``engine: server``) those GPUs idle during every
update. Overlapping them (Noukhovitch et al. 2024, "Asynchronous RLHF"; verl's one-step
off-policy trainer; PipelineRL) costs freshness: step k+1's completions come from the
weights before step k's update, one step stale. The trainer then takes the sampler's own
per-token log-probs as the PPO "old" policy, so the clipped ratio corrects for that step
exactly as PPO does for its rollout policy.

``rollout.max_staleness: s`` generalises this (AReaL, Fu et al. 2025; prime-rl): up to s
generations queue ahead, so a batch is sampled by weights at most s optimizer steps old.
With a rollout correction the trainer then uses the decoupled PPO objective (Hilton et al.
2022, "Batch size-invariance for policy optimization"; AReaL): the proximal policy (the
weights before this update) anchors the clip, and the behaviour policy (the sampler's
log-probs) only enters through the truncated importance weight pi_prox / pi_behav.

The engine must own its weights (vllm, server, or hf with a private copy): an engine that
samples from the live policy would see it change mid-generation. The first step, and the
first after ``--resume`` (the batch in flight is not checkpointed), sample on-policy, so a
resumed overlapped run is not bit-identical to an uninterrupted one. Single process only.
"""
from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

import torch

from .base import Group, SamplingParams


class Prefetcher:
    """Up to ``max_staleness`` generations queued on one background thread, each tagged with
    its step and the weight version (optimizer steps done) it samples with. Weight syncs
    queue on the same thread, so one never lands mid-generation."""

    def __init__(self, engine, max_staleness: int = 1):
        if max_staleness < 1:
            raise ValueError(f"max_staleness must be >= 1, got {max_staleness}")
        self.engine, self.k = engine, max_staleness
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="grpo-rollout")
        self._pending: deque[tuple[int, int, Future]] = deque()
        self._syncs: list[Future] = []

    @property
    def busy(self) -> bool:
        return bool(self._pending)

    @property
    def next_step(self) -> int | None:
        """The step after the last one queued (None when nothing is)."""
        return self._pending[-1][0] + 1 if self._pending else None

    def sync(self, named_tensors) -> None:
        """Queue a weight update after the generations in flight (pass a snapshot: the
        live weights change while it waits)."""
        self._syncs = [f for f in self._syncs if not f.done()]
        self._syncs.append(self._pool.submit(self.engine.update_weights, named_tensors))

    def start(self, step: int, prompts: list[str], sampling: SamplingParams, version: int = 0) -> None:
        if len(self._pending) >= self.k:
            raise RuntimeError(f"{self.k} rollouts are already in flight")
        self._pending.append((step, version, self._pool.submit(self._timed, prompts, sampling)))

    def _timed(self, prompts, sampling):
        t0 = time.perf_counter()
        groups = self.engine.generate(prompts, sampling)
        return groups, time.perf_counter() - t0

    def take(self, step: int) -> tuple[list[Group], float, int] | None:
        """The groups queued for ``step``, the seconds they took to sample and their weight
        version (None if none: the first step, or after a resume; anything queued for other
        steps is then waited for and dropped). Re-raises the sampler's error."""
        for f in self._syncs:
            if f.done():
                f.result()                       # a failed weight sync is an error, not a stale run
        if not self._pending or self._pending[0][0] != step:
            self._drain()
            return None
        _, version, fut = self._pending.popleft()
        groups, secs = fut.result()
        return groups, secs, version

    def _drain(self) -> None:
        while self._pending:
            try:
                self._pending.popleft()[2].result()
            except Exception:  # noqa: BLE001 -- dropped work; the caller samples anew
                pass

    def close(self) -> None:
        """Wait for the generations and syncs in flight (the engine must be idle before anything else)."""
        self._drain()
        for f in self._syncs:
            try:
                f.result()
            except Exception:  # noqa: BLE001 -- the run is ending; its own error matters more
                pass
        self._syncs = []
        self._pool.shutdown(wait=True)


def behaviour_logprobs(groups: list[Group], C: int) -> torch.Tensor:
    """The sampler's log-probs of the sampled tokens, ``[N, C]`` (0 past each completion):
    the behaviour policy of an overlapped step.

    >>> from grpo.rollout.base import Completion
    >>> g = Group("p", [1], [Completion("a", [5, 6], [-0.5, -1.0], "stop"), Completion("b", [7], [-2.0], "stop")])
    >>> behaviour_logprobs([g], 2)
    tensor([[-0.5000, -1.0000],
            [-2.0000,  0.0000]])
    """
    comps = [c for g in groups for c in g.completions]
    out = torch.zeros(len(comps), C)
    for i, c in enumerate(comps):
        if c.logprobs is None or len(c.logprobs) != len(c.token_ids):
            raise RuntimeError("rollout.overlap needs the engine's per-token log-probs; this engine returned none")
        out[i, :len(c.logprobs)] = torch.tensor(c.logprobs, dtype=torch.float32)
    return out
