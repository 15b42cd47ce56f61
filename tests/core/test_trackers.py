"""output.report_to: every tracker gets the metrics.jsonl rows under the same names, on
local files (W&B in offline mode), and a resumed run continues the same tracker run."""
import json
import sqlite3
from pathlib import Path

import pytest

from grpo.config import ConfigError, load_config
from grpo.run.metrics import read_metrics
from grpo.run.trackers import missing_trackers
from grpo.train.trainer import train

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "tiny" / "r1_zero.yaml"
ALL = ["tensorboard", "wandb", "trackio", "mlflow"]


def _numeric_names(rows):
    return {k for r in rows for k, v in r.items()
            if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)}


def _tensorboard(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    return {t: [e.step for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


def _mlflow(run):
    from mlflow.tracking import MlflowClient
    monkeypatch_env = __import__("os").environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    c = MlflowClient(tracking_uri=(run / "mlruns").resolve().as_uri())
    rid = (run / ".mlflow_run_id").read_text().strip()
    data = c.get_run(rid).data
    return {k: [m.step for m in c.get_metric_history(rid, k)] for k in data.metrics}


def _trackio(run):
    dbs = list((run / "trackio").glob("*.db"))
    assert dbs, list((run / "trackio").iterdir())
    con = sqlite3.connect(dbs[0])
    rows = con.execute("SELECT step, metrics FROM metrics").fetchall()
    out = {}
    for step, m in rows:
        for k in json.loads(m):
            out.setdefault(k, []).append(step)
    return out


def _wandb(run):
    files = list((run / "wandb").glob("offline-run-*/run-*.wandb"))
    # offline W&B writes one directory per process; resume continues the same run id
    assert len(files) == 2 and len({f.name for f in files}) == 1, files
    assert files[0].name == f"run-{(run / '.wandb_run_id').read_text().strip()}.wandb"
    return b"".join(f.read_bytes() for f in files)


@pytest.mark.skipif(bool(missing_trackers(ALL)), reason="; ".join(missing_trackers(ALL)))
def test_every_tracker_gets_the_same_metrics_and_resume_continues(tiny_overrides, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("TRACKIO_DIR", raising=False)
    sets = tiny_overrides + ["output.report_to=[tensorboard,wandb,trackio,mlflow]", "output.name=tr"]
    train(load_config(RECIPE, sets + ["train.steps=2"]))
    train(load_config(RECIPE, sets + ["train.steps=3"]), resume=True)
    run = tmp_path / "tr"
    rows = read_metrics(run)
    assert [r["step"] for r in rows] == [1, 2, 3]
    names = _numeric_names(rows)
    assert "reward/mean" in names and len(names) > 10
    for got in (_tensorboard(run), _mlflow(run), _trackio(run)):
        assert set(got) == names, set(got) ^ names
        assert sorted(got["reward/mean"]) == [1, 2, 3]
    blob = _wandb(run)
    assert all(n.encode() in blob for n in ("reward/mean", "completion_len/mean"))


def test_an_unknown_or_missing_tracker_is_a_one_line_error(tiny_overrides, monkeypatch):
    with pytest.raises(ConfigError) as e:
        load_config(RECIPE, tiny_overrides + ["output.report_to=[wandbb]"])
    assert "report_to" in str(e.value)
    import grpo.run.trackers as T
    monkeypatch.setitem(T.TRACKERS, "wandb", ("no_such_module_xyz", "wandb"))
    assert missing_trackers(["wandb"]) == ["output.report_to: wandb is not installed: pip install 'grpo[wandb]'"]
    with pytest.raises(ValueError, match=r"pip install 'grpo\[wandb\]'"):
        train(load_config(RECIPE, tiny_overrides + ["output.report_to=[wandb]"]))
