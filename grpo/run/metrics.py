"""Run logging: metrics.jsonl (crash-safe, resumable) and the trackers (grpo.run.trackers), samples, reflection metrics.

>>> reflection_rate(["2+2=5. Wait, let me check: 2+2=4.", "2+2=4.", "等等，我算错了"])
0.6666666666666666
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from statistics import mean

# Rewards that measure correctness (completion_len/correct, the report's accuracy curve),
# in order of preference; a recipe names its own with ``accuracy_reward``.
ACCURACY_NAMES = ("math_accuracy", "accuracy", "countdown", "code_tests")


def accuracy_reward(names, chosen: str | None = None) -> str | None:
    """The reward that says whether a completion is correct: the recipe's ``chosen`` one,
    else the first accuracy-like one, else None (never a format reward by default).

    >>> accuracy_reward(["think_format", "math_accuracy"]), accuracy_reward(["think_format"])
    ('math_accuracy', None)
    >>> accuracy_reward(["think_format", "my_judge"], "my_judge")
    'my_judge'
    """
    if chosen is not None:
        return chosen
    return next((n for n in names if n in ACCURACY_NAMES), None)


# Phrases of self-reflection (DeepSeek-R1 report, Table 3's "aha moment": "Wait, wait. Wait.
# That's an aha moment I can flag here"). English and Chinese; configurable per recipe.
REFLECTION_WORDS = [
    "wait", "let me check", "let me verify", "let me re-check", "let me recheck", "double-check",
    "double check", "re-examine", "reconsider", "hmm", "i made a mistake", "that's not right",
    "等等", "等一下", "让我检查", "让我验证", "验证一下", "重新检查", "我算错了", "不对",
]


def _pattern(words: list[str]) -> re.Pattern:
    parts = []
    for w in words:
        esc = re.escape(w.lower())
        # Word boundaries for Latin phrases ("wait" but not "waiter"); CJK has no spaces.
        parts.append(rf"\b{esc}\b" if w.isascii() else esc)
    return re.compile("|".join(parts))


def reflection_counts(texts: list[str], words: list[str] | None = None) -> list[int]:
    pat = _pattern(words or REFLECTION_WORDS)
    return [len(pat.findall(t.lower())) for t in texts]


def reflection_rate(texts: list[str], words: list[str] | None = None) -> float:
    """Fraction of completions with at least one reflection phrase."""
    counts = reflection_counts(texts, words)
    return sum(c > 0 for c in counts) / max(len(counts), 1)


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def safe_mean(xs) -> float | None:
    xs = [x for x in xs if x is not None]
    return mean(xs) if xs else None


class MetricsLogger:
    """Appends one JSON line per step, flushed and fsynced, so a crash loses at most the
    step in flight. On resume, lines past the checkpoint's step are dropped first (they
    will be recomputed), keeping exactly one line per step."""

    def __init__(self, run_dir: Path, resume_step: int = 0, trackers=None):
        self.path = run_dir / "metrics.jsonl"
        if self.path.exists():
            kept = [ln for ln in self.path.read_text().splitlines()
                    if ln.strip() and _step_of(ln) is not None and _step_of(ln) <= resume_step]
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text("".join(ln + "\n" for ln in kept))
            os.replace(tmp, self.path)
        self.fh = open(self.path, "a")
        self.trackers = trackers           # grpo.run.trackers.Trackers: the same row to each

    def log(self, step: int, metrics: dict) -> None:
        row = {"step": step, **{k: _clean(v) for k, v in metrics.items()}}
        self.fh.write(json.dumps(row) + "\n")
        self.fh.flush()
        os.fsync(self.fh.fileno())
        if self.trackers is not None:
            self.trackers.log(step, row)

    def close(self) -> None:
        self.fh.close()
        if self.trackers is not None:
            self.trackers.close()


def _step_of(line: str) -> int | None:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None  # a torn last line from a crash


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    rows = []
    for ln in path.read_text().splitlines():
        try:
            rows.append(json.loads(ln))
        except ValueError:
            continue
    return rows


def write_samples(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    os.replace(tmp, path)


def tool_metrics(comps: list, wall_s: float | None = None) -> dict:
    """``tool/*`` metrics of one step's multi-turn episodes (Completion.tools); {} when no
    completion has tool stats (single-turn runs log none of them).

    >>> from grpo.rollout.base import Completion, ToolStats
    >>> c = lambda calls, errors, turns, ended: Completion("", [1], None, "stop", tools=ToolStats(calls, errors, 0.5, turns, ended=ended))
    >>> m = tool_metrics([c(2, 1, 3, "done"), c(0, 0, 1, "done"), c(1, 0, 2, "turns")], wall_s=0.7)
    >>> m["tool/calls_per_completion"], m["tool/error_rate"], m["tool/turns"], m["tool/used_frac"], m["tool/ended_turns_frac"]
    (1.0, 0.3333333333333333, 2.0, 0.6666666666666666, 0.3333333333333333)
    """
    return tool_stats_metrics([getattr(c, "tools", None) for c in comps], wall_s)


def tool_stats_metrics(stats: list, wall_s: float | None = None) -> dict:
    """``tool_metrics`` on the episodes' ToolStats (None for single-turn completions): the
    trainer passes all ranks' stats, gathered by ``dist.metrics.gather_step``."""
    st = [s for s in stats if s is not None]
    if not st:
        return {}
    n, calls = len(st), sum(s.calls for s in st)
    out = {
        "tool/calls_per_completion": calls / n,
        "tool/error_rate": sum(s.errors for s in st) / calls if calls else 0.0,
        "tool/time": sum(s.time_s for s in st) / n,          # seconds of tool calls per episode
        "tool/turns": sum(s.turns for s in st) / n,
        "tool/used_frac": sum(s.calls > 0 for s in st) / n,
        "tool/env_failures": sum(s.env_failures for s in st),
        "tool/env_reward": sum(s.reward for s in st) / n,
    }
    for why in ("turns", "tokens"):                            # episodes the budget ended
        out[f"tool/ended_{why}_frac"] = sum(s.ended == why for s in st) / n
    if wall_s is not None:
        out["time/tools"] = wall_s                             # wall clock of the step's tool phases
    return out
