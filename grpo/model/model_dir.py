"""What loading and saving a model directory share (policy.py and gguf.py): the dtypes a
recipe may name, the one-line load error, and the atomic directory write."""
from __future__ import annotations

from pathlib import Path

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class ModelError(ValueError):
    """The model cannot be loaded; the message is one line meant for the user."""


def save_model_dir(model, tok, out: str | Path) -> Path:
    """Write a loadable Hugging Face model directory atomically: into a private
    ``.tmp-<name>-<pid>`` next to it, then one rename over ``out``."""
    import os
    import shutil
    out = Path(out)
    tmp = out.with_name(f".tmp-{out.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out
