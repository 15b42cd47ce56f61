"""Fully async rollouts (``rollout.fully_async``): requests stay in the server while it
takes new weights.

overlap.py's Prefetcher runs one blocking ``generate`` per step on a thread and queues the
weight sync behind it, so a step's batch is sampled by one weight version and a sync waits
for whole batches. Here every prompt of the next ``max_staleness`` steps is its own request
in the server at once (vLLM batches them continuously), and the trainer pushes new weights
the moment an update ends (OpenAIEngine.update_weights: pause in keep mode, sync, resume),
as PipelineRL (Piche et al. 2025) and AReaL (Fu et al. 2025) do: nothing waits for a batch,
and a request in flight finishes under the new weights. Each token's log-prob is the one it
was sampled with, so the behaviour policy of the decoupled PPO objective (overlap.py) is
exact per token even for a completion that spans two versions.

Bounded staleness without dropping data: step s's requests start when the trainer is at step
s - max_staleness (the trainer starts them, as for the Prefetcher), so a sample's oldest
weights are at most max_staleness optimizer steps behind the ones it trains. Each completion
carries ``versions = (v0, v1)``: the engine's weight version when its request was sent and
when its answer came (v0 <= the version of its first token; v1 >= that of its last); the
trainer logs ``rollout/staleness_{mean,max}`` (current version - v0) and
``rollout/inflight_update_frac`` (share of samples with v1 > v0).
"""
from __future__ import annotations

import time
from concurrent.futures import Future

from .base import Group, SamplingParams


class AsyncStream:
    """The Prefetcher's interface (start / take / close) over an engine with ``encode``,
    ``complete`` and ``pool`` (OpenAIEngine); ``sync`` is not queued: the caller updates
    the engine's weights itself, in flight."""

    def __init__(self, engine, max_staleness: int = 1):
        if max_staleness < 1:
            raise ValueError(f"max_staleness must be >= 1, got {max_staleness}")
        self.engine, self.k = engine, max_staleness
        self._steps: dict[int, tuple[float, int, list[str], list[list[int]], list[Future]]] = {}
        self.metrics: dict = {}          # staleness_metrics of the last batch taken

    @property
    def busy(self) -> bool:
        return bool(self._steps)

    @property
    def next_step(self) -> int | None:
        return max(self._steps) + 1 if self._steps else None

    def start(self, step: int, prompts: list[str], sampling: SamplingParams, version: int = 0) -> None:
        if len(self._steps) >= self.k:
            raise RuntimeError(f"{self.k} steps of rollouts are already in flight")
        ids = self.engine.encode(prompts)
        offset = self.engine.weight_version - version     # engine's numbering -> the caller's
        futs = [self.engine.pool.submit(self._one, p, sampling) for p in ids]
        self._steps[step] = (time.perf_counter(), offset, prompts, ids, futs)

    def _one(self, ids: list[int], sp: SamplingParams):
        v0 = self.engine.weight_version
        comps = self.engine.complete(ids, sp)
        v1 = self.engine.weight_version
        for c in comps:
            c.versions = (v0, v1)
        return comps

    def take(self, step: int) -> tuple[list[Group], float, int] | None:
        """This step's groups, the seconds from their start until the last answer, and the
        oldest weight version among them, in the numbering ``start`` was given (None if nothing was started for ``step``:
        anything else in flight is then waited for and dropped). Re-raises a request's error."""
        if step not in self._steps:
            self._drain()
            self.metrics = staleness_metrics([], 0)
            return None
        t0, offset, prompts, ids, futs = self._steps.pop(step)
        groups = [Group(p, i, f.result()) for p, i, f in zip(prompts, ids, futs)]
        secs = time.perf_counter() - t0
        comps = [c for g in groups for c in g.completions]
        self.metrics = staleness_metrics(comps, self.engine.weight_version)
        return groups, secs, min(c.versions[0] for c in comps) - offset

    def _drain(self) -> None:
        for *_, futs in self._steps.values():
            for f in futs:
                try:
                    f.result()
                except Exception:  # noqa: BLE001 -- dropped work; the caller samples anew
                    pass
        self._steps.clear()

    def close(self) -> None:
        self._drain()


def staleness_metrics(comps, version: int) -> dict:
    """Per-sample staleness of a fully async batch (``versions`` set by AsyncStream), against
    the engine's weight ``version`` now; all 0 for a batch without versions (sampled
    on-policy: the first step, or the first after a resume).

    >>> from grpo.rollout.base import Completion
    >>> cs = [Completion("a", [1], [-1.0], "stop", versions=(3, 3)), Completion("b", [1], [-1.0], "stop", versions=(2, 3))]
    >>> staleness_metrics(cs, 4)
    {'rollout/staleness_mean': 1.5, 'rollout/staleness_max': 2, 'rollout/inflight_update_frac': 0.5}
    >>> staleness_metrics([Completion("a", [1], None, "stop")], 4)["rollout/staleness_max"]
    0
    """
    vs = [c.versions for c in comps if c.versions is not None] or [(version, version)]
    ages = [version - v0 for v0, _ in vs]
    return {"rollout/staleness_mean": sum(ages) / len(ages), "rollout/staleness_max": max(ages),
            "rollout/inflight_update_frac": sum(v1 > v0 for v0, v1 in vs) / len(vs)}
