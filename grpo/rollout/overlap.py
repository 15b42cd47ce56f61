"""Overlapped (one-step off-policy) rollouts: sample step k+1 while step k trains.

A synchronous GRPO step runs rollout and update one after the other, so each waits for
the other: on a CPU the sampler idles while the trainer computes gradients and vice versa,
and with rollouts on their own GPUs (``engine: server``) those GPUs idle during every
update. Overlapping them (Noukhovitch et al. 2024, "Asynchronous RLHF"; verl's one-step
off-policy trainer; PipelineRL) costs freshness: step k+1's completions come from the
weights before step k's update, one step stale. The trainer then takes the sampler's own
per-token log-probs as the PPO "old" policy, so the clipped ratio corrects for that step
exactly as PPO does for its rollout policy.

The engine must own its weights (vllm, server, or hf with a private copy): an engine that
samples from the live policy would see it change mid-generation. The first step, and the
first after ``--resume`` (the batch in flight is not checkpointed), sample on-policy, so a
resumed overlapped run is not bit-identical to an uninterrupted one. Single process only.
"""
from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor

import torch

from .base import Group, SamplingParams


class Prefetcher:
    """At most one generation in flight, on a background thread, tagged with its step."""

    def __init__(self, engine):
        self.engine = engine
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="grpo-rollout")
        self._pending: tuple[int, Future] | None = None

    def start(self, step: int, prompts: list[str], sampling: SamplingParams) -> None:
        if self._pending is not None:
            raise RuntimeError("a rollout is already in flight")
        self._pending = (step, self._pool.submit(self._timed, prompts, sampling))

    def _timed(self, prompts, sampling):
        t0 = time.perf_counter()
        groups = self.engine.generate(prompts, sampling)
        return groups, time.perf_counter() - t0

    def take(self, step: int) -> tuple[list[Group], float] | None:
        """The groups started for ``step`` and the seconds they took to sample (None if none:
        the first step, or after a resume). Waits for them; re-raises the sampler's error."""
        if self._pending is None:
            return None
        tag, fut = self._pending
        self._pending = None
        out = fut.result()
        return out if tag == step else None

    def close(self) -> None:
        """Wait for a generation in flight (the engine must be idle before anything else)."""
        if self._pending is not None:
            try:
                self._pending[1].result()
            except Exception:  # noqa: BLE001 -- the run is ending; its own error matters more
                pass
            self._pending = None
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
