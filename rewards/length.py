r"""Length-shaping rewards.

Lengths are counted in tokens from the trainer's ``completion_ids`` when given,
else in characters of the completion text.

``overlong_penalty`` -- DAPO's soft overlong punishment (Yu et al. 2025, eq. 13):
0 up to ``max_len - cache_len``, then a linear ramp down to -1 at ``max_len``,
and -1 beyond; it replaces the noise of truncated samples with a graded signal.

``cosine_length`` -- cosine length scaling from "Demystifying Long
Chain-of-Thought Reasoning in LLMs" (Yeo et al. 2025, sec. 4.2):
``CosFn(t, T, a, b) = b + (a - b) * (1 + cos(pi * t / T)) / 2`` goes from ``a``
at length 0 to ``b`` at ``T``.  Correct answers get ``max_value_correct`` when
short, decaying to ``min_value_correct`` (shorter right answers are preferred);
wrong answers get ``min_value_wrong`` when short rising to ``max_value_wrong``
(a wrong answer should at least have thought longer).  The paper uses
(2, 1, -10, 0) with an exceed penalty of -10; defaults here are open-r1's
rescaled values so that it mixes with 0/1 accuracy rewards.

>>> overlong_penalty(["Q"] * 3, ["a", "b", "c"], completion_ids=[[0] * 10, [0] * 14, [0] * 30],
...                  max_len=16, cache_len=4)
[0.0, -0.5, -1.0]
>>> cosine_length(["Q"] * 3, ["\\boxed{2}", "\\boxed{3}", "\\boxed{3}"], answer=["2", "2", "2"],
...               completion_ids=[[7] * 0, [7] * 0, [7] * 100], max_len=100)
[1.0, -1.0, -0.5]
"""

from __future__ import annotations

import math

from rewards._text import completion_text
from rewards.math import DEFAULT_TIMEOUT_S, correctness
from rewards.registry import register


def lengths(completions, completion_ids=None) -> list[int]:
    """Token counts if ``completion_ids`` is given, else character counts."""
    if completion_ids is not None:
        return [len(ids) for ids in completion_ids]
    return [len(completion_text(c)) for c in completions]


@register("overlong_penalty")
def overlong_penalty(prompts, completions, completion_ids=None, max_len: int = 4096,
                     cache_len: int = 512, **kwargs):
    """DAPO soft overlong punishment in [-1, 0]; set ``max_len`` to the
    trainer's ``max_completion_length``."""
    if not 0 <= cache_len <= max_len:
        raise ValueError(f"need 0 <= cache_len ({cache_len}) <= max_len ({max_len})")
    safe = max_len - cache_len
    out = []
    for n in lengths(completions, completion_ids):
        if n <= safe:
            out.append(0.0)
        elif n <= max_len:
            out.append((safe - n) / cache_len)
        else:
            out.append(-1.0)
    return out


def cos_fn(t: float, T: float, at_zero: float, at_T: float) -> float:
    """Yeo et al.'s CosFn: ``at_zero`` at t=0, ``at_T`` at t=T (clamped).

    >>> cos_fn(0, 10, 1.0, 0.5), cos_fn(5, 10, 1.0, 0.5), cos_fn(10, 10, 1.0, 0.5)
    (1.0, 0.75, 0.5)
    """
    t = min(max(t, 0.0), T)
    return at_T + 0.5 * (at_zero - at_T) * (1.0 + math.cos(math.pi * t / T))


@register("cosine_length")
def cosine_length(prompts, completions, answer, completion_ids=None, max_len: int = 1000,
                  min_value_wrong: float = -1.0, max_value_wrong: float = -0.5,
                  min_value_correct: float = 0.5, max_value_correct: float = 1.0,
                  exceed_penalty: float | None = None, timeout_s: float = DEFAULT_TIMEOUT_S, **kwargs):
    """Correctness-aware cosine length reward (see module doc).  ``exceed_penalty``
    (the paper's r_e) replaces the reward of completions longer than ``max_len``;
    None keeps the value at ``max_len``.  None where the gold answer is missing."""
    if max_len <= 0:
        raise ValueError("max_len must be positive")
    ok = correctness(completions, answer, timeout_s)
    out = []
    for n, c in zip(lengths(completions, completion_ids), ok):
        if c is None:
            out.append(None)
        elif exceed_penalty is not None and n > max_len:
            out.append(float(exceed_penalty))
        elif c:
            out.append(cos_fn(n, max_len, max_value_correct, min_value_correct))
        else:
            out.append(cos_fn(n, max_len, min_value_wrong, max_value_wrong))
    return out


cosine_length.timeout_s = None  # bounded per sample by rewards.math (see math_accuracy)
