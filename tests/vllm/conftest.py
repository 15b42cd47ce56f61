"""Fixtures for the rollout engines: the overrides that make recipes/tiny/r1_zero.yaml run in
seconds on the tiny model (tests/conftest.py's ``tiny_model_dir``)."""
import pytest


@pytest.fixture
def tiny_overrides(tmp_path, tiny_model_dir):
    return [f"model.path={tiny_model_dir}", f"output.dir={tmp_path}", "output.name=t",
            "train.steps=3", "train.prompts_per_step=4", "rollout.n=4", "rollout.max_new_tokens=32",
            "output.save_every=100", "output.tensorboard=false", "data.num_samples=64",
            "train.lr=1e-3", "train.warmup_steps=0"]
