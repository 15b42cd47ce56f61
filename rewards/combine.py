"""Combine weighted reward functions, isolating the samples that break them.

GRPO's advantage is computed from the *sum* of rewards within a group, so one
crashing sample must neither kill the step nor silently become 0: a function
that raises is retried per sample, the failing samples are scored None (counted
as 0 in the total, like TRL's nansum) and reported in ``errors`` and metrics.
A non-finite value (inf, nan) is such a failure too: it never reaches the advantages.
Each function gets one time budget (``timeout_s``) per call, shared by the batch call
and the per-sample retries that isolate a crashing sample: a call that times out
fails its remaining samples once, so a hung reward costs timeout_s per step, not
(completions + 1) x timeout_s.

>>> rs = RewardSet([RewardSpec("math_accuracy", 1.0)])
>>> rs(["Q"], ["4"], {"answer": [float("inf")]}).total   # the gold answer is not the reward
[0.0]

>>> rs = RewardSet([RewardSpec("math_accuracy", 1.0), RewardSpec("think_format", 0.5)])
>>> out = rs(["Q"] * 2, ["<think>t</think><answer>4</answer>", "no idea"], {"answer": ["4", "4"]})
>>> out.total, out.per_fn["think_format"]
([1.5, 0.0], [1.0, 0.0])
>>> rs.check_columns({"prompt", "x"})
Traceback (most recent call last):
...
rewards.combine.RewardError: reward 'math_accuracy' needs dataset column(s) ['answer'] but the dataset has ['prompt', 'x']
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from rewards._text import completion_text
from rewards.registry import REGISTRY, _unwrap, load, required_columns

FLOAT32_MAX = 3.4028234663852886e38   # rewards become a float32 tensor: beyond this they are inf
# Passed by the trainer itself, never needed from the dataset.
TRAINER_KWARGS = frozenset({"completion_ids", "trainer_state"})


@dataclass(frozen=True)
class TrainerState:
    """Where training is, for rewards that take ``trainer_state`` (a length or format
    schedule): ``step`` optimizer steps done of ``total_steps``. ``global_step`` and
    ``max_steps`` are TRL's names for the same numbers.

    >>> s = TrainerState(step=3, total_steps=10); (s.global_step, s.max_steps, s.progress)
    (3, 10, 0.3)
    """

    step: int
    total_steps: int

    @property
    def global_step(self) -> int:
        return self.step

    @property
    def max_steps(self) -> int:
        return self.total_steps

    @property
    def progress(self) -> float:
        return self.step / self.total_steps if self.total_steps else 0.0


@dataclass
class RewardSpec:
    """One reward of a recipe: a :func:`rewards.load` spec, its weight, and
    keyword arguments bound with :func:`functools.partial`."""

    name: str
    weight: float = 1.0
    kwargs: dict = field(default_factory=dict)


class RewardError(RuntimeError):
    """A reward function is misconfigured or (with fail_on_error) failed."""


@dataclass
class RewardOutput:
    total: list[float]
    per_fn: dict[str, list[float | None]]
    metrics: dict[str, float]
    errors: list[dict]


def _call(fn: Callable, kwargs: dict, timeout_s: float | None):
    """Call ``fn(**kwargs)`` (sync or async) with a wall-clock limit.

    The call runs in a daemon thread. A call that times out is abandoned and
    interrupted (:func:`_interrupt`): Python code stops at once, a call blocked
    in C when it returns -- rewards that may block in C should bound themselves
    (math does, with killable processes).
    """
    box: dict = {}

    def run():
        try:
            res = fn(**kwargs)
            if inspect.isawaitable(res):
                res = asyncio.run(_awaited(res))
            box["value"] = res
        except BaseException as e:  # noqa: BLE001 -- re-raised in the caller's thread
            box["error"] = e

    t = threading.Thread(target=run, daemon=True, name="reward-call")
    t.start()
    t.join(timeout_s if timeout_s and timeout_s > 0 else None)
    if t.is_alive():
        _interrupt(t)
        raise TimeoutError(f"reward call took longer than {timeout_s:g}s")
    if "error" in box:
        e = box["error"]
        if isinstance(e, (SystemExit, KeyboardInterrupt, GeneratorExit)):
            # sys.exit() inside a reward must not end the run silently: it is a failed call.
            raise RuntimeError(f"reward called {type(e).__name__}({e.args[0] if e.args else ''})") from None
        raise e
    return box["value"]



class RewardAbandoned(BaseException):
    """Raised inside a reward thread that ran out of time (not an Exception: rewards
    that catch Exception do not swallow it)."""


def _interrupt(t: threading.Thread) -> None:
    """Ask an abandoned reward thread to stop: the exception is raised at its next Python
    bytecode, so a reward spinning in Python stops at once and does not keep competing
    for the interpreter; one blocked in C (sleep, a big-integer power) stops when that
    returns."""
    import ctypes
    if t.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(t.ident), ctypes.py_object(RewardAbandoned))


async def _awaited(aw):
    return await aw


def _fmt(e: BaseException) -> str:
    return " ".join(f"{type(e).__name__}: {e}".split())[:500]


class RewardSet:
    """Weighted rewards loaded from :class:`RewardSpec` s.

    ``timeout_s`` bounds each call of a reward function (the whole batch, then
    each sample on retry); a function may override it with a ``timeout_s``
    attribute (None = no limit, for functions that bound themselves).
    """

    def __init__(self, specs: list[RewardSpec], fail_on_error: bool = False, timeout_s: float = 10.0):
        if not specs:
            raise RewardError("no reward functions given")
        self.specs = [s if isinstance(s, RewardSpec) else RewardSpec(**s) for s in specs]
        self.fail_on_error = fail_on_error
        self.timeout_s = timeout_s
        self.fns: list[Callable] = []
        self.weights: list[float] = []
        self.names: list[str] = []
        for spec in self.specs:
            fn = load(spec.name)
            if spec.kwargs:
                _check_kwargs(fn, spec)
                fn = functools.partial(fn, **spec.kwargs)
            name = spec.name if spec.name in REGISTRY else getattr(_unwrap(fn), "__name__", "reward")
            base, k = name, 2
            while name in self.names:
                name, k = f"{base}_{k}", k + 1
            self.names.append(name)
            self.fns.append(fn)
            self.weights.append(float(spec.weight))
        self.required_columns: dict[str, set[str]] = {
            n: required_columns(f) - TRAINER_KWARGS for n, f in zip(self.names, self.fns)}   # the trainer passes those

    def check_columns(self, available: set[str]) -> None:
        have = set(available) | TRAINER_KWARGS
        for name, need in self.required_columns.items():
            missing = sorted(need - have)
            if missing:
                raise RewardError(f"reward {name!r} needs dataset column(s) {missing} "
                                  f"but the dataset has {sorted(available)}")

    def check_signatures(self, columns: set[str]) -> None:
        """Fail at start-up on a reward that cannot be called as fn(prompts, completions, **columns)."""
        names = set(columns) | TRAINER_KWARGS | {"prompts", "completions"}
        for name, fn in zip(self.names, self.fns):
            try:
                sig = inspect.signature(fn)
            except (TypeError, ValueError):
                continue
            try:
                sig.bind(**dict.fromkeys(names))
            except TypeError as e:
                raise RewardError(f"reward {name!r} cannot be called as fn(prompts, completions, **columns) "
                                  f"with columns {sorted(names - {'prompts', 'completions'})}: {e}; "
                                  "add **kwargs to its parameters") from None

    def _timeout(self, fn) -> float | None:
        return getattr(_unwrap(fn), "timeout_s", self.timeout_s)

    def __call__(self, prompts: list, completions: list, columns: dict[str, list]) -> RewardOutput:
        n = len(completions)
        if len(prompts) != n:
            raise RewardError(f"got {len(prompts)} prompts for {n} completions")
        columns = dict(columns or {})
        self.check_columns(set(columns))
        per_fn: dict[str, list] = {}
        errors: list[dict] = []
        for name, fn in zip(self.names, self.fns):
            per_fn[name] = self._score(name, fn, prompts, completions, columns, errors)
        total = [0.0] * n
        for name, w in zip(self.names, self.weights):
            for i, v in enumerate(per_fn[name]):
                if v is not None:
                    total[i] += w * v
        return RewardOutput(total=total, per_fn=per_fn, metrics=reward_metrics(self.names, total, per_fn, errors),
                            errors=errors)

    def _score(self, name, fn, prompts, completions, columns, errors) -> list:
        n = len(completions)
        timeout = self._timeout(fn)
        kwargs = dict(columns, prompts=list(prompts), completions=list(completions))
        # One budget per call: the batch call and the retries that isolate a failing sample
        # share it, so a hung reward costs timeout_s per step, not (completions + 1) x timeout_s.
        deadline = None if not timeout or timeout <= 0 else time.monotonic() + timeout
        try:
            return self._finite(name, self._check(name, _call(fn, kwargs, timeout), n), completions, errors)
        except RewardError:
            raise
        except Exception:  # noqa: BLE001 -- isolate the failing samples below
            pass
        out: list = []
        for i in range(n):
            one = {k: ([v[i]] if isinstance(v, (list, tuple)) and len(v) == n else v)
                   for k, v in kwargs.items()}
            left = None if deadline is None else deadline - time.monotonic()
            try:
                if left is not None and left <= 0:
                    raise TimeoutError(f"reward call took longer than {timeout:g}s (its budget for this step)")
                out.append(self._finite(name, self._check(name, _call(fn, one, left), 1), completions,
                                        errors, i)[0])
            except RewardError:
                raise
            except Exception as e:  # noqa: BLE001
                out.append(self._fail(name, i, e, completions, errors))
        return out

    def _fail(self, name, i, e, completions, errors) -> None:
        if self.fail_on_error:
            raise RewardError(f"reward {name!r} failed on sample {i}: {_fmt(e)}") from e
        errors.append({"reward": name, "index": i, "error": _fmt(e),
                       "completion": completion_text(completions[i])[:200]})
        return None

    def _finite(self, name, vals: list, completions, errors, offset: int = 0) -> list:
        """Non-finite values become failed samples (None), counted and reported."""
        out = []
        for j, v in enumerate(vals):
            if v is not None and not (math.isfinite(v) and abs(v) <= FLOAT32_MAX):
                what = "non-finite reward" if not math.isfinite(v) else "non-finite reward in float32:"
                v = self._fail(name, offset + j, ValueError(f"{what} {v}"), completions, errors)
                errors[-1]["kind"] = "nonfinite"
            out.append(v)
        return out

    @staticmethod
    def _check(name: str, res, n: int) -> list:
        if not isinstance(res, (list, tuple)):
            raise RewardError(f"reward {name!r} returned {type(res).__name__}, expected a list of {n} floats")
        if len(res) != n:
            raise RewardError(f"reward {name!r} returned {len(res)} values for {n} completions")
        out = []
        for v in res:
            if v is None:
                out.append(None)
                continue
            try:
                f = float(v)
            except (TypeError, ValueError):
                raise RewardError(f"reward {name!r} returned a non-number {v!r:.60}") from None
            out.append(f)
        return out


class FailureStreak:
    """Stops a run whose reward fails on every sample for ``limit`` steps in a row
    (0: never). Returns the first error of each failing reward, once per step, to show.

    >>> fs = FailureStreak(2)
    >>> err = [{"reward": "r", "index": 0, "error": "E", "completion": "c"}]
    >>> fs.update(["r"], err, 1)[0]["error"]
    'E'
    >>> fs.update(["r"], err, 1)
    Traceback (most recent call last):
    ...
    rewards.combine.RewardError: reward 'r' failed on every sample for 2 steps in a row; first error: E (sample 0: 'c')
    """

    def __init__(self, limit: int):
        self.limit, self.streak = limit, {}

    def update(self, names: list[str], errors: list[dict], n: int) -> list[dict]:
        firsts = []
        for name in names:
            mine = [e for e in errors if e["reward"] == name]
            self.streak[name] = self.streak.get(name, 0) + 1 if n and len(mine) >= n else 0
            if mine:
                firsts.append({**mine[0], "failed": len(mine), "of": n})
            if self.limit and self.streak[name] >= self.limit:
                e = mine[0]
                raise RewardError(f"reward {name!r} failed on every sample for {self.streak[name]} steps in a "
                                  f"row; first error: {e['error']} (sample {e['index']}: {e['completion']!r:.120})")
        return firsts


def _check_kwargs(fn, spec: RewardSpec) -> None:
    """Fail at load time, not mid-training, on a misspelled recipe kwarg."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        # **kwargs swallows anything; only flag names that look like typos of real ones.
        named = [p for p in params if p not in ("prompts", "completions")]
        return _suggest_only(spec, named)
    unknown = sorted(set(spec.kwargs) - set(params))
    if unknown:
        raise RewardError(f"reward {spec.name!r} got unknown kwargs {unknown}; it accepts {sorted(params)}")


def _suggest_only(spec, named) -> None:
    import difflib

    for k in spec.kwargs:
        if k not in named:
            close = difflib.get_close_matches(k, named, n=1, cutoff=0.8)
            if close:
                raise RewardError(f"reward {spec.name!r}: unknown kwarg {k!r}; did you mean {close[0]!r}?")


def reward_metrics(names: list[str], total: list[float], per_fn: dict[str, list], errors: list[dict]) -> dict:
    """Mean and std of the total and of each function's applicable values, its None share and
    its error counts (also over several ranks' completions gathered: grpo.dist.metrics)."""
    n = len(total)
    metrics = {"reward/mean": _mean(total), "reward/std": _std(total)}
    for name in names:
        vals = [v for v in per_fn[name] if v is not None]
        metrics[f"reward/{name}/mean"] = _mean(vals)
        metrics[f"reward/{name}/std"] = _std(vals)
        metrics[f"reward/{name}/none_frac"] = (n - len(vals)) / n if n else 0.0
        metrics[f"reward/{name}/errors"] = float(sum(e["reward"] == name for e in errors))
        metrics[f"reward/{name}/nonfinite"] = float(sum(e["reward"] == name and e.get("kind") == "nonfinite"
                                                        for e in errors))
    return metrics


def _mean(xs: list) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def _std(xs: list) -> float:
    if not xs:
        return float("nan")
    m = _mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / len(xs))
