"""Fixtures for the rollout engines: the tiny model (built quickly when data/tiny_model is
absent) and the overrides that make recipes/tiny/r1_zero.yaml run in seconds."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "data" / "tiny_model"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    if (SHIPPED / "config.json").is_file():
        return SHIPPED
    # Same architecture and tokenizer, barely trained: enough for engine plumbing tests.
    out = tmp_path_factory.mktemp("tiny_model")
    subprocess.run([sys.executable, str(ROOT / "data" / "build_tiny_model.py"), "--steps", "10", "--batch", "16",
                    "--out", str(out)], check=True, capture_output=True, timeout=600)
    return out


@pytest.fixture
def tiny_overrides(tmp_path, tiny_model_dir):
    return [f"model.path={tiny_model_dir}", f"output.dir={tmp_path}", "output.name=t",
            "train.steps=3", "train.prompts_per_step=4", "rollout.n=4", "rollout.max_new_tokens=32",
            "output.save_every=100", "output.tensorboard=false", "data.num_samples=64",
            "train.lr=1e-3", "train.warmup_steps=0"]
