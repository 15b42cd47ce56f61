"""Bad input gets one clear line on stderr, exit status 2, and no traceback."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RECIPE = str(ROOT / "recipes" / "tiny" / "r1_zero.yaml")


def run_cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "grpo.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("args,needle", [
    (["train", "recipes/missing.yaml"], "recipe not found"),
    (["train", RECIPE, "--set", "train.setps=3"], "did you mean 'train.steps'"),
    (["train", RECIPE, "--set", "rewards=[{name: math_acuracy}]"], "did you mean 'math_accuracy'"),
    (["train", RECIPE, "--set", "rewards=[{name: countdown}]"], "needs dataset column"),
    (["train", RECIPE, "--set", "model.path=./models/does-not-exist"], "model path does not exist"),
    (["train", RECIPE, "--set", "model.path=/abs/models/missing"], "model path does not exist"),
    (["train", RECIPE, "--set", "model.path=nobody/no-such-model"], "model path does not exist"),
    (["train", RECIPE, "--set", "data.source=missing.jsonl"], "data file not found"),
])
def test_user_error_is_one_line(args, needle, tmp_path):
    r = run_cli(*args, "--set", f"output.dir={tmp_path}") if args[0] == "train" and len(args) > 2 else run_cli(*args)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert needle in lines[0] and lines[0].startswith("grpo: error:")


def test_fp8_without_gpu_is_a_clear_error(tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip("has a GPU")
    r = run_cli("train", RECIPE, "--set", "model.precision=fp8", "--set", f"output.dir={tmp_path}")
    assert r.returncode == 2 and "needs a CUDA GPU" in r.stderr and "Traceback" not in r.stderr
