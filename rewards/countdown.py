"""Countdown reward (the TinyZero task): combine the given numbers with
``+ - * /`` and parentheses to reach the target.

The equation in the last ``<answer>`` block is parsed with :mod:`ast` and
evaluated by a tiny exact interpreter over :class:`fractions.Fraction` --
never ``eval`` -- that accepts only numbers, the four operations, unary minus
and (bounded) powers, so model output can neither run code nor blow up memory.

>>> countdown(["Q"], ["<answer>(6 - 2) * 25</answer>"], target=[100], numbers=[[2, 6, 25, 7]])
[1.0]
>>> countdown(["Q"], ["<answer>6*25 - 2</answer>"], target=[100], numbers=[[2, 6, 25]])
[0.0]
>>> countdown(["Q"], ["<answer>(6 - 2) * 25</answer>"], target=[100], numbers=[[2, 6, 25, 7]],
...           require_all=True)
[0.0]
>>> countdown(["Q"], ["<answer>25*4</answer>"], target=[100], numbers=[[25, 2, 2]])  # 4 is not given
[0.0]
"""

from __future__ import annotations

import ast
import json
import re
from collections import Counter
from fractions import Fraction

from rewards._arith import ArithError, exact_value
from rewards._text import completion_text
from rewards.registry import register

MAX_EXPR_LEN = 200
MAX_EXPONENT = 16
MAX_BITS = 4096
_ALLOWED = re.compile(r"^[\d\s+\-*/().^×÷=]+$")
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.S)


class _Invalid(ArithError):
    pass


def _eval(node) -> Fraction:
    return exact_value(node, max_exponent=MAX_EXPONENT, max_bits=MAX_BITS)


def _numbers(node) -> list[int]:
    return sorted(n.value for n in ast.walk(node) if isinstance(n, ast.Constant))


def evaluate(equation: str) -> tuple[Fraction, list[int]]:
    """Exact value of an arithmetic equation and the numbers it uses.
    Only the left side of ``expr = result`` is evaluated.

    >>> evaluate("(6 - 2) * 25 = 100")
    (Fraction(100, 1), [2, 6, 25])
    >>> evaluate("__import__('os')")
    Traceback (most recent call last):
    ...
    rewards.countdown._Invalid: characters outside digits and + - * / ( ) are not allowed
    """
    eq = equation.strip()
    if len(eq) > MAX_EXPR_LEN:
        raise _Invalid("equation too long")
    if not _ALLOWED.match(eq):
        raise _Invalid("characters outside digits and + - * / ( ) are not allowed")
    eq = eq.split("=")[0].replace("×", "*").replace("÷", "/").replace("^", "**")
    if "." in eq:
        raise _Invalid("decimals are not allowed")
    try:
        tree = ast.parse(eq, mode="eval")
    except SyntaxError as e:
        raise _Invalid(f"syntax error: {e.msg}") from None
    return _eval(tree), _numbers(tree)


def _as_list(numbers) -> list[int]:
    if isinstance(numbers, str):
        numbers = json.loads(numbers.replace("(", "[").replace(")", "]"))
    return [int(x) for x in numbers]


def score_one(text: str, target, numbers, require_all: bool = False, format_score: float = 0.0) -> float:
    """1.0 if correct; ``format_score`` if an equation was given but is wrong or
    invalid (TinyZero used 0.1); 0.0 without an ``<answer>`` block."""
    found = _ANSWER.findall(text)
    if not found:
        return 0.0
    try:
        value, used = evaluate(found[-1])
    except ArithError:
        return format_score
    have, want = Counter(used), Counter(_as_list(numbers))
    if have - want:  # a number used more often than given, or not given at all
        return format_score
    if require_all and have != want:
        return format_score
    return 1.0 if value == Fraction(str(target).strip()) else format_score


@register("countdown")
def countdown(prompts, completions, target, numbers, require_all: bool = False,
              format_score: float = 0.0, **kwargs):
    """Countdown correctness per completion (see :func:`score_one`).  Each given
    number may be used at most once; ``require_all=True`` demands all of them
    (TinyZero's rule).  None where target or numbers is missing."""
    out = []
    for c, t, nums in zip(completions, target, numbers):
        if t is None or nums is None:
            out.append(None)
            continue
        out.append(score_one(completion_text(c), t, nums, require_all, format_score))
    return out
