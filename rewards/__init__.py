"""Reward functions for GRPO, with the TRL signature
``fn(prompts, completions, **columns) -> list[float | None]``.

Dataset columns arrive as keyword lists of length N (one per completion), plus
``completion_ids``; functions ignore keywords they do not use and return None
for samples they do not apply to.  :func:`load` resolves a recipe's reward spec
and :class:`RewardSet` combines weighted rewards with per-sample error isolation.

>>> fn = load("math_accuracy")
>>> fn(["What is 1+1?"], ["<think>easy</think><answer>2</answer>"], answer=["2"])
[1.0]
>>> sorted(required_columns(fn))
['answer']
"""

from rewards.registry import REGISTRY, RewardLoadError, load, register, required_columns
from rewards.combine import FailureStreak, RewardError, RewardOutput, RewardSet, RewardSpec, TrainerState

# Importing the modules registers the built-in rewards.
from rewards import math, think, language, countdown, length, coding  # noqa: E402,F401

__all__ = [
    "REGISTRY", "RewardLoadError", "load", "register", "required_columns",
    "FailureStreak", "RewardError", "RewardOutput", "RewardSet", "RewardSpec", "TrainerState",
]
