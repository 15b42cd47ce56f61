"""Run report: PNG plots and a Markdown/JSON summary of a run directory (``grpo report``).

Reads ``metrics.jsonl`` (skipping torn or unparseable lines) and ``samples/step-N.jsonl``,
and writes ``reward.png``, ``length.png``, ``reflection.png``, ``kl_entropy.png``,
``overview.png``, ``summary.md`` and ``summary.json`` into ``<run_dir>/report/``; runs with
tools (rollout.env) also ``tools.png`` (tool calls, errors, turns, accuracy).

"First"/"last" are the means over the first and last 10% of a metric's logged (non-null)
points, at least one point each. The *turn-up step* of a metric is the first step from
which its moving average stays above ``first + (last - first) / 2`` until the end of the
run; it is ``None`` when the metric did not rise by more than the spread (std) of its first
window, or never settled above that line.

>>> moving_average([0, 0, 3, 3], 3)
[0.0, 1.0, 2.0, 3.0]
>>> first_last([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
(1.5, 10.5)
>>> turn_up_step(list(range(1, 21)), [0.0] * 10 + [1.0] * 10, window=3)
11
>>> turn_up_step([1, 2, 3, 4], [1.0, 1.0, 1.0, 1.0]) is None
True
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from statistics import mean, pstdev

from .metrics import ACCURACY_NAMES, reflection_counts

ACCURACY_KEYS = tuple(f"reward/{n}/mean" for n in ACCURACY_NAMES)
PLOTS = ("overview.png", "reward.png", "length.png", "reflection.png", "kl_entropy.png")
TOOLS_PLOT = "tools.png"            # runs with rollout.env only
SNIPPET_CHARS = 400


class ReportError(ValueError):
    """A run directory that cannot be reported on (one-line message)."""


# ------------------------------------------------------------------ pure helpers
def moving_average(xs: list[float], window: int) -> list[float]:
    """Centered moving average (no lag); near the ends it averages the points that exist."""
    h = max(int(window), 1) // 2
    return [float(mean(xs[max(0, i - h):i + h + 1])) for i in range(len(xs))]


def smooth_window(n: int) -> int:
    """A light smoothing window for ``n`` points: about n/10 (at most 51), odd, at least 1."""
    return min(max(1, n // 10), 50) | 1


def first_last(xs: list[float]) -> tuple[float | None, float | None]:
    """Means of the first and last 10% of ``xs`` (at least one point each)."""
    if not xs:
        return None, None
    k = max(1, math.ceil(len(xs) * 0.1))
    return mean(xs[:k]), mean(xs[-k:])


def turn_up_step(steps: list[int], xs: list[float], window: int | None = None) -> int | None:
    """First step from which the moving average stays above first + half the total rise."""
    first, last = first_last(xs)
    if first is None or len(xs) < 3:
        return None
    k = max(1, math.ceil(len(xs) * 0.1))
    if last - first <= max(pstdev(xs[:k]), 1e-12):
        return None
    line = first + (last - first) / 2
    ma = moving_average(xs, window or smooth_window(len(xs)))
    below = [i for i, v in enumerate(ma) if v <= line]
    i = below[-1] + 1 if below else 0
    return steps[i] if i < len(steps) else None


# ------------------------------------------------------------------ reading the run
def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    for ln in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(ln)
        except ValueError:
            continue  # a torn last line from a crash, or garbage
        if isinstance(row, dict):
            rows.append(row)
    return rows


def load_metrics(run_dir: Path) -> list[dict]:
    """Rows of metrics.jsonl, one per step (the last one wins), sorted by step."""
    if not run_dir.is_dir():
        raise ReportError(f"run directory not found: {run_dir}")
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise ReportError(f"no metrics.jsonl in {run_dir} (has this run logged a step yet?)")
    by_step = {}
    for i, row in enumerate(_read_jsonl(path)):
        step = row.get("step")
        by_step[step if isinstance(step, int) else i + 1] = row
    if not by_step:
        raise ReportError(f"no parseable rows in {path}")
    return [dict(r, step=s) for s, r in sorted(by_step.items())]


def series(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one metric, dropping null / non-numeric / non-finite values."""
    pts = [(r["step"], float(r[key])) for r in rows if isinstance(r.get(key), (int, float))
           and not isinstance(r.get(key), bool) and math.isfinite(r[key])]
    return [s for s, _ in pts], [v for _, v in pts]


def accuracy_key(rows: list[dict]) -> str:
    return next((k for k in ACCURACY_KEYS if series(rows, k)[1]), "reward/mean")


def reward_fn_keys(rows: list[dict]) -> list[str]:
    keys = {k for r in rows for k in r if re.fullmatch(r"reward/[^/]+/mean", k)}
    return sorted(k for k in keys if series(rows, k)[1])


# ------------------------------------------------------------------ plots
def _panel(ax, rows, keys, title, ylabel, labels=None, turn_up=None) -> None:
    """Raw points (faint) and their moving average for each key; a note if none is logged."""
    ax.set_title(title, fontsize=11)
    drawn = 0
    for key, color in zip(keys, [f"C{i}" for i in range(10)]):
        steps, xs = series(rows, key)
        if not xs:
            continue
        ax.plot(steps, xs, "o-", color=color, alpha=0.35, lw=0.8, ms=2.5)
        ax.plot(steps, moving_average(xs, smooth_window(len(xs))), color=color, lw=2,
                label=(labels or {}).get(key, key))
        drawn += 1
    if not drawn:
        ax.text(0.5, 0.5, "not logged", transform=ax.transAxes, ha="center", va="center",
                fontsize=12, color="gray")
        ax.set_xticks([]), ax.set_yticks([])
        return
    if turn_up is not None:
        ax.axvline(turn_up, color="gray", ls="--", lw=1, label=f"turned up @ step {turn_up}")
    ax.set_xlabel("step"), ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if drawn > 1 or turn_up is not None:
        ax.legend(fontsize="small", loc="best", framealpha=0.8)


def _figure(path: Path, rows: list[dict], ncols: int, nrows: int, panels: list[dict],
            title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(7, 5 * ncols), 3.8 * nrows + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(title, fontsize=13)
    for ax, spec in zip(fig.subplots(nrows, ncols, squeeze=False).flat, panels):
        _panel(ax, rows, **spec)
    fig.savefig(path, dpi=100)


def write_plots(rows: list[dict], out: Path, name: str, turn: dict) -> None:
    acc = accuracy_key(rows)
    acc_label = "reward/mean (no accuracy reward)" if acc == "reward/mean" else \
        f"accuracy ({acc.split('/')[1]})"
    fns = reward_fn_keys(rows)
    reward = dict(keys=["reward/mean"] + fns, title="Reward (mean per function)", ylabel="reward",
                  labels={acc: acc_label, "reward/mean": "reward/mean (total)"})
    length = dict(keys=[f"completion_len/{k}" for k in ("mean", "correct", "incorrect")],
                  title="Completion length", ylabel="tokens", turn_up=turn["length"],
                  labels={"completion_len/mean": "all", "completion_len/correct": "correct",
                          "completion_len/incorrect": "incorrect"})
    refl = dict(keys=["reflection/rate"], title="Reflection rate ('wait', 'let me check', ...)",
                ylabel="fraction of completions", turn_up=turn["reflection_rate"],
                labels={"reflection/rate": "rate"})
    kl = dict(keys=["kl"], title="KL to reference", ylabel="KL")
    ent = dict(keys=["entropy"], title="Entropy", ylabel="nats / token")
    steps = f"{name}: {len(rows)} steps"
    _figure(out / "reward.png", rows, 1, 1, [reward], f"{steps} - reward")
    _figure(out / "length.png", rows, 1, 1, [length], f"{steps} - length")
    _figure(out / "reflection.png", rows, 1, 1, [refl], f"{steps} - reflection")
    _figure(out / "kl_entropy.png", rows, 2, 1, [kl, ent], f"{steps} - KL and entropy")
    accuracy = dict(keys=[acc], title=acc_label[0].upper() + acc_label[1:], ylabel="accuracy")
    reward_total = dict(keys=["reward/mean"], title="Reward (total)", ylabel="reward")
    grid = [accuracy, reward_total, length, refl, kl, ent]
    _figure(out / "overview.png", rows, 3, 2, grid, steps)
    if has_tools(rows):
        _figure(out / TOOLS_PLOT, rows, 2, 2, [
            dict(keys=["tool/calls_per_completion", "tool/used_frac"], title="Tool use", ylabel="per completion",
                 labels={"tool/calls_per_completion": "calls per completion",
                         "tool/used_frac": "fraction of completions calling"}),
            dict(keys=["tool/error_rate"], title="Tool error rate", ylabel="errors / calls"),
            dict(keys=["tool/turns"], title="Model turns per episode", ylabel="turns"),
            accuracy], f"{steps} - tools")


def has_tools(rows: list[dict]) -> bool:
    return bool(series(rows, "tool/calls_per_completion")[1])


# ------------------------------------------------------------------ samples
def _correct(row: dict) -> bool:
    """Correct by the first accuracy-like reward in the row (else a total reward > 0.5)."""
    v = next((row[n] for n in ACCURACY_NAMES if isinstance(row.get(n), (int, float))),
             row.get("reward"))
    return isinstance(v, (int, float)) and v > 0.5


def pick_samples(rows: list[dict], n: int = 3, prefer_correct: bool = False) -> list[dict]:
    """Up to ``n`` rows: one with a reflection phrase if any, then (optionally) correct ones."""
    rows = [r for r in rows if isinstance(r.get("completion"), str)]
    refl = [r for r, c in zip(rows, reflection_counts([r["completion"] for r in rows])) if c]
    order = sorted(rows, key=lambda r: not _correct(r)) if prefer_correct else rows
    if refl:
        order = [min(refl, key=lambda r: not _correct(r))] + order
    picked = []
    for r in order:
        if all(r is not p for p in picked) and len(picked) < n:
            picked.append(r)
    return picked


def _fenced(text: str) -> str:
    text = text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS] + " [...]"
    fence = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", text)), default=0))
    return f"{fence}\n{text}\n{fence}"


def samples_md(run_dir: Path) -> list[str]:
    files = {int(m.group(1)): p for p in (run_dir / "samples").glob("step-*.jsonl")
             if (m := re.fullmatch(r"step-(\d+)\.jsonl", p.name))}
    if not files:
        return ["_No samples logged._"]
    first, last = min(files), max(files)
    out = []
    for step, label in [(first, "Before"), (last, "After")][: 1 if first == last else 2]:
        out.append(f"### {label} (step {step})\n")
        for r in pick_samples(_read_jsonl(files[step]), prefer_correct=step == last):
            flags = ", correct" if _correct(r) else ""
            if reflection_counts([r["completion"]])[0]:
                flags += ", reflects"
            prompt = str(r.get("prompt", ""))[:150]
            out.append(f"Prompt: {prompt!r} (reward {r.get('reward')}{flags})\n\n"
                       f"{_fenced(r['completion'])}\n")
    return out


# ------------------------------------------------------------------ summary
def summarize(rows: list[dict]) -> dict:
    def stats(key):
        first, last = first_last(series(rows, key)[1])
        change = None if first is None else last - first
        return {"metric": key, "first": first, "last": last, "change": change}

    tools = {"tool_calls": stats("tool/calls_per_completion"), "tool_errors": stats("tool/error_rate"),
             "tool_turns": stats("tool/turns")} if has_tools(rows) else {}
    return {"steps": len(rows), "accuracy": stats(accuracy_key(rows)), **tools,
            "length": stats("completion_len/mean"), "reflection_rate": stats("reflection/rate"),
            "turn_up_step": {"reflection_rate": turn_up_step(*series(rows, "reflection/rate")),
                             "length": turn_up_step(*series(rows, "completion_len/mean"))}}


def _num(x) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def summary_md(name: str, rows: list[dict], s: dict, run_dir: Path) -> str:
    lines = [f"# Run report: {name}\n", f"- Steps: {s['steps']} (step {rows[0]['step']} to "
             f"{rows[-1]['step']})\n", "| | metric | first 10% | last 10% | change |",
             "|---|---|---|---|---|"]
    for label in ("accuracy", "length", "reflection_rate", "tool_calls", "tool_errors", "tool_turns"):
        if label not in s:
            continue
        d = s[label]
        change = "n/a" if d["change"] is None else f"{d['change']:+.3g}"
        lines.append(f"| {label.replace('_', ' ')} | `{d['metric']}` | {_num(d['first'])} | "
                     f"{_num(d['last'])} | {change} |")
    t = {k: "none" if v is None else v for k, v in s["turn_up_step"].items()}
    lines += ["", f"- Reflection rate turned up at step: **{t['reflection_rate']}**",
              f"- Completion length turned up at step: **{t['length']}**", "",
              "First/last are means over the first/last 10% of logged steps. The turn-up step is "
              "the first step from which the moving average stays above the first-10% mean plus "
              "half the total rise; \"none\" if it never rose beyond the first window's spread.",
              "", "## Plots", ""]
    lines += [f"![{p[:-4]}]({p})" for p in PLOTS + ((TOOLS_PLOT,) if "tool_calls" in s else ())]
    lines += ["", "## Sample completions", ""] + samples_md(run_dir)
    return "\n".join(lines) + "\n"


def report(run_dir: str | Path) -> Path:
    """Write plots, summary.md and summary.json into ``run_dir/report/``; return that folder."""
    run_dir = Path(run_dir)
    rows = load_metrics(run_dir)
    out = run_dir / "report"
    out.mkdir(exist_ok=True)
    name = run_dir.resolve().name
    s = summarize(rows)
    write_plots(rows, out, name, s["turn_up_step"])
    (out / "summary.json").write_text(json.dumps({"run": name, **s}, indent=2) + "\n")
    (out / "summary.md").write_text(summary_md(name, rows, s, run_dir), encoding="utf-8")
    return out
