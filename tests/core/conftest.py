"""Shared fixtures: a tiny recipe on the shipped model, small enough for the default suite."""
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY_MODEL = ROOT / "data" / "tiny_model"


@pytest.fixture
def tiny_overrides(tmp_path):
    """--set overrides that make recipes/tiny/r1_zero.yaml run in seconds in tmp_path."""
    return [f"model.path={TINY_MODEL}", f"output.dir={tmp_path}", "output.name=t",
            "train.steps=4", "train.prompts_per_step=4", "rollout.n=4", "rollout.max_new_tokens=48",
            "output.save_every=2", "output.tensorboard=false", "data.num_samples=64"]
