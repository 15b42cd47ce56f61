"""--resume runs the recipe the run was started with: changes are refused, listed, or recorded."""
import json
from pathlib import Path

import pytest
import yaml

from grpo.config import load_config
from grpo.run.metrics import read_metrics
from grpo.run.rundir import MAY_CHANGE, RunError, resume_changes
from grpo.train.trainer import train

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "tiny" / "r1_zero.yaml"


def test_changed_recipe_is_refused_with_the_keys_and_allowed_changes_are_recorded(tiny_overrides, tmp_path):
    run = train(load_config(RECIPE, tiny_overrides + ["train.steps=2"]))
    config_before = (run / "config.yaml").read_text()
    bad = load_config(RECIPE, tiny_overrides + ["train.steps=4", "rollout.n=2", "train.lr=0.1",
                                                "rewards=[{name: math_accuracy}]"])
    with pytest.raises(RunError) as e:
        train(bad, resume=True)
    msg = str(e.value)
    assert "\n" not in msg
    for key in ("rollout.n (4 -> 2)", "train.lr (0.0001 -> 0.1)", "rewards ("):
        assert key in msg, msg
    assert "train.steps" not in msg.split("may change")[0]               # allowed: not listed as refused
    assert (run / "config.yaml").read_text() == config_before            # nothing written, nothing trained
    assert [r["step"] for r in read_metrics(run)] == [1, 2]

    ok = load_config(RECIPE, tiny_overrides + ["train.steps=3", "output.sample_every=1"])
    train(ok, resume=True)
    assert [r["step"] for r in read_metrics(run)] == [1, 2, 3]
    rec = [json.loads(ln) for ln in (run / "resume_changes.jsonl").read_text().splitlines()]
    assert rec[-1]["changed"] == {"train.steps": [2, 3], "output.sample_every": [10, 1]}
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["steps"] == 3   # what runs now


def test_same_recipe_resumes_with_nothing_recorded(tiny_overrides, tmp_path):
    run = train(load_config(RECIPE, tiny_overrides + ["train.steps=2"]))
    train(load_config(RECIPE, tiny_overrides + ["train.steps=2"]), resume=True)
    assert not (run / "resume_changes.jsonl").exists()


def test_diff_rules(tmp_path):
    old = {"train": {"steps": 10, "lr": 1e-4}, "model": {"path": "a"}, "output": {"dir": "runs"}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(old))
    assert resume_changes(tmp_path, {**old, "output": {"dir": "/abs/runs"}}) == {}   # same run, other spelling
    with pytest.raises(RunError, match=r"model.path \(a -> b\)"):
        resume_changes(tmp_path, {**old, "model": {"path": "b"}})
    with pytest.raises(RunError, match=r"data.template \(null -> chat\)"):           # a key added
        resume_changes(tmp_path, {**old, "data": {"template": "chat"}})
    # a key the old config.yaml lacks (an older toolkit) is filled with its default before comparing
    assert resume_changes(tmp_path, {**old, "x": 1}, normalize=lambda t: {**t, "x": 1}) == {}
    (tmp_path / "config.yaml").write_text("a: [")
    with pytest.raises(RunError, match="unreadable"):
        resume_changes(tmp_path, old)
    assert {"train.steps", "output.save_every"} <= MAY_CHANGE and "train.lr" not in MAY_CHANGE
    assert "rollout.n" not in MAY_CHANGE and "model.path" not in MAY_CHANGE
