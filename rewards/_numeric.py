r"""Fast, pure-Python evaluation of numeric answers (used by :mod:`rewards._compare`).

Typical math-RL answers are integers, decimals, simple fractions and short LaTeX
constants (``\frac{1}{2}``, ``2\sqrt{3}``, ``\pi/4``).  Parsing these with sympy
costs milliseconds each; here they are normalized and evaluated exactly with
:class:`fractions.Fraction` (floats only for irrational constants) in
microseconds, which is what lets ``math_accuracy`` score thousands of answers
per second.  Nothing here can hang: inputs are length-capped and powers are
size-checked before they are computed (``9^9^9^9`` is "too big", not evaluated).

Equality rules follow math-verify (float_rounding=6): exact for rationals,
rounding to 6 decimals when either side is written as a decimal, and a relative
1e-9 tolerance for irrational constants.

>>> [float(v.q) for v in parse_number(r"\frac{\sqrt{4}}{8}+2^{-2}")]
[0.5]
>>> parse_number("1e99999999"), parse_number("9^9^9^9")
('too big', 'too big')
"""

from __future__ import annotations

import math
import random
import re
import string
from fractions import Fraction


MAX_FAST_LEN = 120  # longer answers go to the symbolic path (or string equality)
_MAX_BITS = 16384  # exact results beyond this are "too big" (2^16384 ~ 10^4932)


class _TooBig(Exception):
    pass


class _NoParse(Exception):
    pass


TOO_BIG = "too big"

# --------------------------------------------------------------------------- evaluate
_TOKEN = re.compile(  # numbers, \frac/\sqrt/\pi/\infty, operators and brackets, one-letter variables
    r"\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|\\frac|\\sqrt|\\pi|\\infty|[-+*/^(){}\[\]]|[a-zA-Z]")
VARS = "has variables"
# Identity testing for expressions with variables: both sides are evaluated
# exactly at a few fixed "random" rational points; equal rational functions agree
# everywhere, different ones almost never agree at all of them (Schwartz-Zippel).
_POINTS = 3
_ENVS = [{c: Fraction(random.Random(ord(c) * 101 + k).randrange(1001, 99991),
                      random.Random(ord(c) * 103 + k + 7).randrange(1001, 99991)) * (-1) ** (k + ord(c))
          for c in string.ascii_letters} for k in range(_POINTS)]
_CONSTANT_LETTERS = set("eEiI")  # Euler's e, imaginary i: leave to sympy


class _HasVar(Exception):
    pass


class _Num:
    """A value: exact Fraction (or None if irrational), float approximation, and
    whether a decimal literal was involved (then compare at 6 decimals)."""

    __slots__ = ("q", "f", "dec")

    def __init__(self, q, f, dec=False):
        self.q, self.f, self.dec = q, f, dec


def _isnum(tok: str) -> bool:
    return tok[0].isdigit() or tok[0] == "."


_WORD3 = re.compile(r"[a-zA-Z]{3,}")
_CMD = re.compile(r"\\[a-zA-Z]+")


def _tokenize(s: str) -> list[str]:
    if _WORD3.search(_CMD.sub(" ", s) if "\\" in s else s):
        raise _NoParse("a word, not an expression")
    out = _TOKEN.findall(s)
    if sum(map(len, out)) != len(s):  # findall skipped a character no token matches
        raise _NoParse(s)
    return out


class _Parser:
    def __init__(self, toks, env=None):
        self.t, self.i, self.env = toks, 0, env

    def peek(self):
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self, want=None):
        tok = self.peek()
        if tok is None or (want is not None and tok != want):
            raise _NoParse(want)
        self.i += 1
        return tok

    def expr(self):
        v = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()
            w = self.term()
            v = _arith(v, w, op)
        return v

    def term(self):
        v = self.unary()
        while True:
            tok = self.peek()
            if tok in ("*", "/"):
                self.take()
                v = _arith(v, self.unary(), tok)
            elif tok is not None and (tok in ("\\frac", "\\sqrt", "\\pi", "(", "{") or _isnum(tok) or tok.isalpha()):
                prev = self.t[self.i - 1]
                if _isnum(prev) and (tok == "\\frac" or _isnum(tok)):
                    raise _NoParse("mixed number")  # 2\frac{1}{2}: 2.5 or 1? leave to sympy
                v = _arith(v, self.power(), "*")  # implicit product: 2\sqrt{3}, 2(3)
            else:
                return v

    def unary(self):
        if self.peek() == "-":
            self.take()
            v = self.unary()
            return _Num(None if v.q is None else -v.q, -v.f, v.dec)
        if self.peek() == "+":
            self.take()
            return self.unary()
        return self.power()

    def power(self):
        base = self.primary()
        if self.peek() == "^":
            self.take()
            return _pow(base, self.unary())
        return base

    def group(self):
        if self.peek() == "{":
            self.take()
            v = self.expr()
            self.take("}")
            return v
        return self.primary()

    def primary(self):
        tok = self.take()
        if tok[0].isdigit() or tok[0] == ".":
            q = _literal(tok)
            return _Num(q, float(q), "." in tok or "e" in tok.lower())
        if tok == "\\pi":
            return _Num(None, math.pi)
        if tok.isalpha():
            if tok in _CONSTANT_LETTERS:
                raise _NoParse(tok)
            if self.env is None:
                raise _HasVar()
            q = self.env[tok]
            return _Num(q, float(q))
        if tok == "\\frac":
            a = self.group()
            b = self.group()
            return _arith(a, b, "/")
        if tok == "\\sqrt":
            n = 2
            if self.peek() == "[":
                self.take()
                k = self.expr()
                self.take("]")
                if k.q is None or k.q.denominator != 1 or not 2 <= k.q <= 64:
                    raise _NoParse("root index")
                n = int(k.q)
            return _root(self.group(), n)
        if tok in ("(", "{"):
            v = self.expr()
            self.take(")" if tok == "(" else "}")
            return v
        raise _NoParse(tok)


def _literal(tok: str) -> Fraction:
    """Exact value of a number token, size-checked *before* any arithmetic:
    ``Fraction("1e99999999")`` would compute ``10**99999999`` first."""
    mant, _, exp = tok.lower().partition("e")
    if exp:
        e = int(exp)
        if abs(e) + len(mant) > _MAX_BITS // 4:  # 10^4096 > 2^_MAX_BITS
            raise _TooBig()
        return Fraction(mant) * Fraction(10) ** e
    if len(tok) > _MAX_BITS // 4:
        raise _TooBig()
    if tok.isdigit():
        return Fraction(int(tok))
    a, _, b = tok.partition(".")
    if (a.isdigit() or not a) and (b.isdigit() or not b) and (a or b):
        return Fraction(int(a + b or "0"), 10 ** len(b))
    return Fraction(tok)


def _arith(a: _Num, b: _Num, op: str) -> _Num:
    dec = a.dec or b.dec
    if a.q is not None and b.q is not None:
        if op == "+":
            q = a.q + b.q
        elif op == "-":
            q = a.q - b.q
        elif op == "*":
            q = a.q * b.q
        else:
            if b.q == 0:
                raise _NoParse("division by zero")
            q = a.q / b.q
        if q.numerator.bit_length() + q.denominator.bit_length() > 2 * _MAX_BITS:
            raise _TooBig()
        return _Num(q, _tofloat(q), dec)
    try:
        f = {"+": a.f + b.f, "-": a.f - b.f, "*": a.f * b.f}[op] if op != "/" else a.f / b.f
    except ZeroDivisionError:
        raise _NoParse("division by zero")
    if not math.isfinite(f):
        raise _TooBig()
    return _Num(None, f, dec)


def _tofloat(q: Fraction) -> float:
    try:
        return float(q)
    except OverflowError:
        return math.inf


def _pow(b: _Num, e: _Num) -> _Num:
    dec = b.dec or e.dec
    if b.q is not None and e.q is not None and e.q.denominator == 1:
        n = int(e.q)
        if b.q in (0, 1, -1):
            if b.q == 0 and n < 0:
                raise _NoParse("0^negative")
            return _Num(b.q ** n if b.q else Fraction(0 if n else 1), float(b.q ** n if b.q else (0 if n else 1)), dec)
        if abs(n) > _MAX_BITS or (b.q.numerator.bit_length() + b.q.denominator.bit_length()) * abs(n) > _MAX_BITS:
            raise _TooBig()
        q = b.q ** n
        return _Num(q, _tofloat(q), dec)
    if b.f < 0:
        raise _NoParse("negative base, non-integer exponent")
    if b.q is not None and e.q is not None and e.q.denominator <= 64:  # exact roots: 8^{2/3} = 4
        r = _root(b, e.q.denominator)
        return _pow(r, _Num(Fraction(e.q.numerator), float(e.q.numerator), dec))
    try:
        f = math.pow(b.f, e.f)
    except (OverflowError, ValueError):
        raise _TooBig()
    if not math.isfinite(f):
        raise _TooBig()
    return _Num(None, f, dec)


def _iroot(x: int, n: int) -> int | None:
    if x < 0:
        return None
    r = round(x ** (1.0 / n)) if x.bit_length() < 1000 else None
    if r is None:
        return None
    for c in (r - 1, r, r + 1):
        if c >= 0 and c ** n == x:
            return c
    return None


def _root(v: _Num, n: int) -> _Num:
    if v.f < 0:
        if n % 2 == 0:
            raise _NoParse("even root of a negative")
        r = _root(_Num(None if v.q is None else -v.q, -v.f, v.dec), n)
        return _Num(None if r.q is None else -r.q, -r.f, r.dec)
    if v.q is not None:
        a, b = _iroot(v.q.numerator, n), _iroot(v.q.denominator, n)
        if a is not None and b is not None:
            q = Fraction(a, b)
            return _Num(q, float(q), v.dec)
    f = v.f ** (1.0 / n)
    if not math.isfinite(f):
        raise _TooBig()
    return _Num(None, f, v.dec)


def parse_number(s: str, env=None):
    r"""Value of a normalized numeric answer as a list of candidate values
    (a percentage ``p%`` may mean ``p/100`` or ``p``), :data:`TOO_BIG`, or None.
    With variables: :data:`VARS`, unless ``env`` gives their values.

    >>> [float(v.q) for v in parse_number("2^{10}")]
    [1024.0]
    >>> parse_number("9^9^9^9")
    'too big'
    """
    if not s or len(s) > MAX_FAST_LEN:
        return None
    pct = s.endswith("%")
    body = s[:-1] if pct else s
    if body in ("\\infty", "+\\infty", "-\\infty", "inf", "-inf", "oo", "-oo"):
        return [_Num(None, -math.inf if body.startswith("-") else math.inf)]
    try:
        p = _Parser(_tokenize(body), env)
        v = p.expr()
        if p.peek() is not None:
            return None
    except _TooBig:
        return TOO_BIG
    except _HasVar:
        return VARS
    except (_NoParse, ValueError, ZeroDivisionError, OverflowError):
        return None
    if not pct:
        return [v]
    hundred = _Num(Fraction(100), 100.0)
    # "28%" may be written 0.28 or 28; but 0.5 is not "0.5%" (that is 0.005)
    return [_arith(v, hundred, "/")] + ([v] if abs(v.f) >= 1 else [])


def num_equal(a: _Num, b: _Num) -> bool:
    if a.q is not None and b.q is not None:
        if a.dec or b.dec:
            return round(a.q, 6) == round(b.q, 6)
        return a.q == b.q
    if math.isinf(a.f) or math.isinf(b.f):  # only a written \infty is infinite here
        return a.f == b.f and a.q is None and b.q is None
    if a.dec or b.dec:
        return round(a.f, 6) == round(b.f, 6)
    return math.isclose(a.f, b.f, rel_tol=1e-9, abs_tol=1e-12)
