"""Deprecated path: moved to ``grpo.model.model_dir`` (issue 32); this alias goes in the next release."""
from ._moved import alias

alias(__name__, "grpo.model.model_dir")
