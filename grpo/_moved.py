"""Old import paths kept for one release after grpo/ was grouped by concern (issue 32).

``grpo/trainer.py`` and the other old modules are one line each: ``alias(__name__, new)``
makes the old name the new module itself (``sys.modules``), so ``from grpo.trainer import
Trainer``, ``grpo.losses:cispo_loss`` in a recipe and a test's ``monkeypatch`` of an old path
all reach the one real module, with a DeprecationWarning that names the new path.
"""
from __future__ import annotations

import importlib
import sys
import warnings


def alias(old: str, new: str) -> None:
    warnings.warn(f"{old} moved to {new}; import it from there (the old path goes in the next release)",
                  DeprecationWarning, stacklevel=3)
    sys.modules[old] = importlib.import_module(new)
