"""The tiny R1 recipe end to end with every stage shrunk to a step or two (slow: ~1 min).

    pytest -m slow tests/pipeline
"""
import json
from pathlib import Path

import pytest

from grpo.cli import main

ROOT = Path(__file__).resolve().parents[2]
SHRINK = ["cold_start.train.steps=2", "reasoning_rl.train.steps=2", "reasoning_rl.train.prompts_per_step=4",
          "rejection_sampling.data.num_samples=16", "rs_sft.train.epochs=0.5", "all_scenario_rl.train.steps=2",
          "all_scenario_rl.train.prompts_per_step=8", "eval.data.num_samples=8", "eval.k=2"]


@pytest.mark.slow
def test_tiny_r1_pipeline_runs_and_resumes(tmp_path, monkeypatch, capsys):
    if not (ROOT / "data" / "tiny_model").is_dir():
        pytest.skip("data/tiny_model not built")
    monkeypatch.chdir(ROOT)
    args = ["pipeline", "recipes/tiny/r1.yaml", "--set", f"output_dir={tmp_path}"]
    for s in SHRINK:
        args += ["--set", s]
    assert main(args) == 0
    summary = json.loads((tmp_path / "tiny_r1" / "summary.json").read_text())
    names = [s["name"] for s in summary["stages"]]
    assert names == ["base", "cold_start", "reasoning_rl", "rejection_sampling", "rs_sft", "all_scenario_rl"]
    assert all("pass@1" in s["eval"] for s in summary["stages"] if s["type"] != "sample")
    assert (tmp_path / "tiny_r1" / "final_model" / "config.json").is_file()
    capsys.readouterr()
    assert main(args) == 0                                   # everything finished: all skipped
    assert capsys.readouterr().out.count("finished earlier, skipped") == 5
