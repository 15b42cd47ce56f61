"""Checkpoints are atomic and resume continues exactly, also after SIGKILL."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from grpo.config import load_config
from grpo.run.metrics import read_metrics
from grpo.train.trainer import train

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "tiny" / "r1_zero.yaml"


def _weights(ckpt: Path) -> dict:
    return load_file(str(ckpt / "model.safetensors"))


def test_resume_is_exact(tiny_overrides, tmp_path):
    full = load_config(RECIPE, tiny_overrides + ["output.name=full"])
    train(full)
    part = load_config(RECIPE, tiny_overrides + ["output.name=part", "train.steps=2"])
    train(part)
    resumed = load_config(RECIPE, tiny_overrides + ["output.name=part"])
    train(resumed, resume=True)

    a, b = read_metrics(tmp_path / "full"), read_metrics(tmp_path / "part")
    assert [r["step"] for r in b] == [1, 2, 3, 4]
    for ra, rb in zip(a, b):
        assert ra["reward/mean"] == rb["reward/mean"]
        assert ra["completion_len/mean"] == rb["completion_len/mean"]
    wa, wb = _weights(tmp_path / "full/checkpoints/step-4"), _weights(tmp_path / "part/checkpoints/step-4")
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)


def test_sigkill_then_resume(tiny_overrides, tmp_path):
    args = [sys.executable, "-m", "grpo.cli", "train", str(RECIPE)]
    for o in tiny_overrides + ["train.steps=6", "output.name=k"]:
        args += ["--set", o]
    run = tmp_path / "k"
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (run / "checkpoints" / "step-2" / "trainer_state.json").exists():
        assert proc.poll() is None and time.time() < deadline, "run ended before its first checkpoint"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    steps_before = [r["step"] for r in read_metrics(run)]
    assert steps_before[:2] == [1, 2]

    r = subprocess.run(args + ["--resume"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = (run / "metrics.jsonl").read_text().splitlines()
    steps = [json.loads(ln)["step"] for ln in lines]          # every line parses: nothing torn
    assert steps == [1, 2, 3, 4, 5, 6]
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert ckpts == ["step-4", "step-6"]                      # keep_checkpoints=2, no partial dirs
    state = json.loads((run / "checkpoints/step-6/trainer_state.json").read_text())
    assert state["step"] == 6
