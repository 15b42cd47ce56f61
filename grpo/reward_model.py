"""Deprecated path: moved to ``grpo.train.reward_model`` (issue 32); this alias goes in the next release."""
from ._moved import alias

alias(__name__, "grpo.train.reward_model")
