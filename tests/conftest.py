"""Fixtures shared by every test directory."""
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
