"""Exact arithmetic over a parsed expression: the one evaluator of countdown's answers
(rewards/countdown.py) and of the calculator tool (grpo/envs/calculator.py).

Integers, ``+ - * /``, unary signs and, when allowed, bounded powers, over
:class:`fractions.Fraction`; never ``eval``. Anything else in the tree is refused, so model
output can neither run code nor blow up memory (``max_bits`` bounds every intermediate).

>>> exact_value(ast.parse("(6 - 2) * 25 / 2", mode="eval"))
Fraction(50, 1)
>>> exact_value(ast.parse("-2 ** 3", mode="eval"), max_exponent=16)
Fraction(-8, 1)
>>> exact_value(ast.parse("2 ** 3", mode="eval"))
Traceback (most recent call last):
...
rewards._arith.ArithError: operator Pow not allowed
>>> exact_value(ast.parse("1 / (2 - 2)", mode="eval"))
Traceback (most recent call last):
...
rewards._arith.DivisionByZero: division by zero
"""
from __future__ import annotations

import ast
from fractions import Fraction

_OPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b}


class ArithError(ValueError):
    """Why an expression has no value here (a short reason)."""


class DivisionByZero(ArithError):
    pass


def exact_value(node, max_exponent: int = 0, max_bits: int = 4096) -> Fraction:
    """The exact value of a parsed expression; ``max_exponent`` 0: no powers."""
    if isinstance(node, ast.Expression):
        return exact_value(node.body, max_exponent, max_bits)
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return Fraction(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = exact_value(node.operand, max_exponent, max_bits)
        return -v if isinstance(node.op, ast.USub) else v
    if not isinstance(node, ast.BinOp):
        raise ArithError(f"{type(node).__name__} not allowed")
    a, b = exact_value(node.left, max_exponent, max_bits), exact_value(node.right, max_exponent, max_bits)
    if type(node.op) in _OPS:
        r = _OPS[type(node.op)](a, b)
    elif isinstance(node.op, ast.Div):
        if b == 0:
            raise DivisionByZero("division by zero")
        r = a / b
    elif isinstance(node.op, ast.Pow) and max_exponent:
        if b.denominator != 1 or abs(b) > max_exponent:
            raise ArithError("exponent too large or fractional")
        if a == 0 and b < 0:
            raise DivisionByZero("division by zero")
        r = a ** int(b)
    else:
        raise ArithError(f"operator {type(node.op).__name__} not allowed")
    if r.numerator.bit_length() + r.denominator.bit_length() > max_bits:
        raise ArithError("number too large")
    return r
