"""Deprecated path: moved to ``grpo.algos.losses`` (issue 32); this alias goes in the next release."""
from ._moved import alias

alias(__name__, "grpo.algos.losses")
