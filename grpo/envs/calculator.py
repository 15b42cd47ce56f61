"""The calculator env of the tiny model: ``<calc>EXPR</calc>`` -> ``<result>VALUE</result>``.

EXPR: digits, ``+ - * / ( )`` and spaces, at most ``max_chars`` characters; VALUE the
exact integer value, else ``error: ...`` (another character, a syntax error, a division
by zero, a non-integer quotient). Evaluated exactly (Fractions) by a walk over a parsed
tree of only those operators: no ``eval``, no powers, so the size of any value is bounded
by the expression's length. A trace: `` <think><calc>3+7+2</calc><result>12</result></think>``.
"""
from __future__ import annotations

import ast
import re
from fractions import Fraction

from rewards._arith import ArithError, DivisionByZero, exact_value

from .base import Env

_ALLOWED = re.compile(r"[0-9+\-*/() ]*")


class CalcError(ValueError):
    pass


def _walk(tree) -> Fraction:
    """The exact value (rewards._arith, countdown's evaluator, without powers)."""
    try:
        return exact_value(tree)
    except DivisionByZero:
        raise CalcError("division by zero") from None
    except ArithError:
        raise CalcError("not an arithmetic expression") from None


def evaluate(expr: str, max_chars: int = 200) -> int:
    """The exact integer value of ``expr``, or CalcError with a short reason.

    >>> evaluate("3+7+2"), evaluate("(10 - 4) * 3 / 2"), evaluate("-5*-5")
    (12, 9, 25)
    >>> evaluate("7/2")
    Traceback (most recent call last):
    ...
    grpo.envs.calculator.CalcError: 7/2 is not an integer
    >>> evaluate("2**999999")
    Traceback (most recent call last):
    ...
    grpo.envs.calculator.CalcError: not an arithmetic expression
    """
    if len(expr) > max_chars:
        raise CalcError(f"expression longer than {max_chars} characters")
    if not _ALLOWED.fullmatch(expr):
        bad = next(c for c in expr if not _ALLOWED.fullmatch(c))
        raise CalcError(f"character {bad!r} not allowed (digits, + - * / ( ) only)")
    if not expr.strip():
        raise CalcError("empty expression")
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except (SyntaxError, ValueError):
        raise CalcError("syntax error") from None
    except (RecursionError, MemoryError):
        raise CalcError("expression nested too deeply") from None
    try:
        v = _walk(tree)
    except RecursionError:
        raise CalcError("expression nested too deeply") from None
    if v.denominator != 1:
        raise CalcError(f"{expr.strip()} is not an integer")
    return int(v)


class Calculator(Env):
    """One ``<calc>...</calc>`` call per turn; a turn without one ends the episode.
    kwargs: ``open``/``close`` (the call's tags), ``max_chars`` (longest expression)."""

    def __init__(self, open: str = "<calc>", close: str = "</calc>", max_chars: int = 200):
        super().__init__()
        if not open or not close:
            raise ValueError("calculator: open and close tags must be non-empty")
        self.open, self.close, self.max_chars = open, close, int(max_chars)
        self.stop = [close]

    def step(self, action: str) -> tuple[str | None, float, bool]:
        """
        >>> c = Calculator()
        >>> c.step(" <think><calc>3+7+2</calc>"), c.step("<calc>1+x</calc>")[0]
        (('<result>12</result>', 0.0, False), "<result>error: character 'x' not allowed (digits, + - * / ( ) only)</result>")
        >>> c.step("</think> <answer>12</answer>"), (c.calls, c.errors)
        ((None, 0.0, True), (2, 1))
        """
        if not action.endswith(self.close):
            return None, 0.0, True
        body = action[:-len(self.close)]
        start = body.rfind(self.open)
        self.calls += 1
        if start < 0:
            self.errors += 1
            return f"<result>error: {self.close} without {self.open}</result>", 0.0, False
        try:
            value = str(evaluate(body[start + len(self.open):], self.max_chars))
        except CalcError as e:
            self.errors += 1
            value = f"error: {e}"
        return f"<result>{value}</result>", 0.0, False
