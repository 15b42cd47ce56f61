"""Deprecated path: moved to ``grpo.dist.metrics`` (issue 32); this alias goes in the next release."""
from ._moved import alias

alias(__name__, "grpo.dist.metrics")
