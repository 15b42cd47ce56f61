"""grpo.run.report on a synthetic run directory: plots, summary numbers, turn-up steps, errors."""
import json
from statistics import mean

import pytest

from grpo.run.report import ReportError, report

N = 50
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _wiggle(i: int, scale: float) -> float:
    return scale * ((i * 7) % 3 - 1)  # deterministic small noise: -scale, 0, +scale


def _metrics():
    rows = []
    for i in range(N):
        step = i + 1
        late = step >= 25              # accuracy and length jump at step 25
        reflect = step >= 30           # reflection jumps at step 30
        rows.append({
            "step": step,
            "reward/mean": (1.6 if late else 0.9) + _wiggle(i, 0.02),
            "reward/std": 0.3,
            "reward/math_accuracy/mean": (0.7 if late else 0.2) + _wiggle(i, 0.01),
            "reward/think_format/mean": 0.8 + _wiggle(i, 0.02),
            "completion_len/mean": (300.0 if late else 100.0) + _wiggle(i, 5),
            "completion_len/correct": 320.0 if late else 110.0,
            "completion_len/incorrect": None if i % 4 == 0 else 90.0,
            "truncated_frac": 0.0, "kl": None, "entropy": 1.0 - i / 100, "clip_frac": 0.01,
            "zero_std_frac": 0.2,
            "reflection/rate": (0.4 if reflect else 0.05) + _wiggle(i, 0.01),
            "reflection/per_completion": 0.5 if reflect else 0.05,
            "loss": 0.01, "grad_norm": 1.0, "lr": 1e-6,
        })
    return rows


def _write_run(root, rows):
    run = root / "runs" / "synthetic"
    (run / "samples").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    (run / "config.yaml").write_text("output:\n  name: synthetic\n")
    lines = [json.dumps(r) for r in rows] + ['{"step": 51, "reward/mean": 0.']   # torn by a crash
    (run / "metrics.jsonl").write_text("\n".join(lines))
    early = [{"prompt": "What is 2+2?", "completion": f"<think>guess</think> {n}", "reward": 0.0,
              "math_accuracy": 0.0, "think_format": 1.0} for n in (5, 6, 7)]
    late = [{"prompt": "What is 2+2?", "completion": "<think>2+2=5</think> 5", "reward": 1.0,
             "math_accuracy": 0.0, "think_format": 1.0},
            {"prompt": "What is 2+2?", "completion": "<think>" + "x" * 2000 + "</think> 4",
             "reward": 2.0, "math_accuracy": 1.0, "think_format": 1.0},
            {"prompt": "What is 2+2?",
             "completion": "<think>2+2=5. Wait, let me check: 4</think> 4",
             "reward": 2.0, "math_accuracy": 1.0, "think_format": 1.0}]
    for step, samples in ((1, early), (N, late)):
        (run / "samples" / f"step-{step}.jsonl").write_text(
            "".join(json.dumps(s) + "\n" for s in samples))
    return run


@pytest.fixture(scope="module")
def produced(tmp_path_factory):
    rows = _metrics()
    run = _write_run(tmp_path_factory.mktemp("rep"), rows)
    return rows, report(run)


def test_pngs_are_valid(produced):
    _, out = produced
    for name in ("reward.png", "length.png", "reflection.png", "kl_entropy.png", "overview.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC), name
        assert 10_000 < len(data) < 2_000_000, (name, len(data))


def test_summary_numbers_match_synthetic_data(produced):
    rows, out = produced
    s = json.loads((out / "summary.json").read_text())
    assert s["steps"] == N                      # the torn line is skipped
    k = 5                                       # 10% of 50 steps
    for key, metric in (("accuracy", "reward/math_accuracy/mean"),
                        ("length", "completion_len/mean"), ("reflection_rate", "reflection/rate")):
        xs = [r[metric] for r in rows]
        assert s[key]["metric"] == metric
        assert s[key]["first"] == pytest.approx(mean(xs[:k]))
        assert s[key]["last"] == pytest.approx(mean(xs[-k:]))
        assert s[key]["change"] == pytest.approx(mean(xs[-k:]) - mean(xs[:k]))
    assert 22 <= s["turn_up_step"]["length"] <= 28
    assert 27 <= s["turn_up_step"]["reflection_rate"] <= 33


def test_summary_md(produced):
    _, out = produced
    md = (out / "summary.md").read_text()
    assert "synthetic" in md and "50" in md
    for name in ("overview", "reward", "length", "reflection", "kl_entropy"):
        assert f"]({name}.png)" in md
    assert "Wait, let me check" in md            # the reflective, correct late sample
    assert "x" * 2000 not in md and "x" * 300 in md   # long completion truncated to ~400 chars
    assert "Before (step 1)" in md and f"After (step {N})" in md
    assert md.count("```") >= 10                 # every sample fenced


def test_flat_and_sparse_metrics_do_not_crash(tmp_path):
    rows = [{"step": i + 1, "reward/mean": 0.5, "kl": None, "entropy": None} for i in range(4)]
    run = tmp_path / "flat"
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = report(run)
    s = json.loads((out / "summary.json").read_text())
    assert s["accuracy"]["metric"] == "reward/mean" and s["accuracy"]["change"] == 0
    assert s["turn_up_step"] == {"reflection_rate": None, "length": None}
    assert s["length"]["first"] is None
    assert (out / "overview.png").read_bytes().startswith(PNG_MAGIC)
    assert "_No samples logged._" in (out / "summary.md").read_text()


def test_errors(tmp_path):
    with pytest.raises(ReportError, match="not found"):
        report(tmp_path / "nope")
    with pytest.raises(ReportError, match="no metrics.jsonl"):
        report(tmp_path)
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "rew\n\n')
    with pytest.raises(ReportError, match="no parseable rows"):
        report(tmp_path)
    assert issubclass(ReportError, ValueError)
