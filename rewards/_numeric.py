r"""Fast, pure-Python answer comparison for the common cases.

Typical math-RL answers are integers, decimals, simple fractions and short LaTeX
constants (``\frac{1}{2}``, ``2\sqrt{3}``, ``\pi/4``).  Parsing these with sympy
costs milliseconds each; here they are normalized and evaluated exactly with
:class:`fractions.Fraction` (floats only for irrational constants) in
microseconds, which is what lets ``math_accuracy`` score thousands of answers
per second.  :func:`fast_equal` returns True/False when it can decide and None
when the answer needs the symbolic path (variables, intervals with symbols,
matrices, ...).  Nothing here can hang: inputs are length-capped and powers are
size-checked before they are computed (``9^9^9^9`` is "too big", not evaluated).

Equality rules follow math-verify (float_rounding=6): exact for rationals,
rounding to 6 decimals when either side is written as a decimal, and a relative
1e-9 tolerance for irrational constants.

>>> fast_equal("1/2", r"\dfrac{1}{2}")
True
>>> fast_equal("0.333333", r"\frac13")
True
>>> fast_equal("0.333", r"\frac13")
False
>>> fast_equal(r"50\%", "0.5"), fast_equal("5 cm", "5"), fast_equal("x = 3", "3")
(True, True, True)
>>> fast_equal(r"\frac{\sqrt{3}}{2}", r"\frac{1}{2}\sqrt3")
True
>>> fast_equal(r"\{3, 1, 2\}", "1,2,3"), fast_equal("(1, 2]", r"\left(1,2\right]")
(True, True)
>>> fast_equal("9^9^9^9", "1")
False
>>> fast_equal("2x+1", "1+2x"), fast_equal("x^2-1", "(x-1)(x+1)"), fast_equal("2x", "2y")
(True, True, False)
>>> fast_equal(r"\sin^2 x + \cos^2 x", "1") is None  # functions: left to sympy
True
"""

from __future__ import annotations

import math
import random
import re
import string
from fractions import Fraction

from rewards._normalize import CHOICE as _CHOICE, LOWER_CHOICE as _LOWER_CHOICE, normalize

MAX_FAST_LEN = 120  # longer answers go to the symbolic path (or string equality)
_MAX_BITS = 16384  # exact results beyond this are "too big" (2^16384 ~ 10^4932)


class _TooBig(Exception):
    pass


class _NoParse(Exception):
    pass


TOO_BIG = "too big"

# --------------------------------------------------------------------------- evaluate
_TOKEN = re.compile(
    r"(\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)|(\\frac|\\sqrt|\\pi|\\infty)|([-+*/^(){}\[\]])|([a-zA-Z])")
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
    out, i = [], 0
    while i < len(s):
        m = _TOKEN.match(s, i)
        if not m:
            raise _NoParse(s[i:])
        out.append(m.group(0))
        i = m.end()
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


# --------------------------------------------------------------------------- structure
def _split_top(s: str) -> list[str]:
    parts, depth, cur = [], 0, []
    i = 0
    while i < len(s):
        c = s[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        if c == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    return parts


def _wraps(s: str) -> bool:
    """Whether the bracket opening ``s`` closes at its very end ("(1,2),(3,4)": no)."""
    depth = 0
    for i, c in enumerate(s):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0 and i < len(s) - 1:
                return False
    return True


def _shape(s: str):
    """('set', elems) | ('seq', open, elems, close) | ('one', s)."""
    if s.startswith("\\{") and s.endswith("\\}"):
        return ("set", _split_top(s[2:-2]))
    if len(s) >= 2 and s[0] in "([" and s[-1] in ")]" and _wraps(s):
        inner = _split_top(s[1:-1])
        if len(inner) >= 2:
            return ("seq", s[0], inner, s[-1])
    parts = _split_top(s)
    if len(parts) >= 2:
        return ("set", parts)
    return ("one", s)


def _elem_equal(a: str, b: str):
    va, vb = parse_number(a), parse_number(b)
    if va is None or vb is None:
        return None if a != b else True
    if va is VARS or vb is VARS:
        for env in _ENVS:
            va, vb = parse_number(a, env), parse_number(b, env)
            if va in (None, TOO_BIG) or vb in (None, TOO_BIG):
                return None
            if not any(num_equal(x, y) for x in va for y in vb):
                return False
        return True
    if va is TOO_BIG or vb is TOO_BIG:
        return False if (va is TOO_BIG) != (vb is TOO_BIG) else None
    if a.endswith("%") and b.endswith("%"):
        return num_equal(va[-1], vb[-1])
    return any(num_equal(x, y) for x in va for y in vb)


_DECIMAL_COMMA = re.compile(r"^-?(?:0,\d+|\d+,(?:\d{1,2}|\d{4,}))$")


def _strip_assign(e: str) -> str:
    return _ASSIGN_ELEM.sub("", e)


_ASSIGN_ELEM = re.compile(r"^(?:[a-zA-Z]|\\[a-zA-Z]+)(?:_\{?\w+\}?)?=(?=[^=]+$)")


def _assignments(xs: list):
    out = {}
    for x in xs:
        m = _ASSIGN_ELEM.match(x)
        if not m:
            return None
        out[re.sub(r"[{}]", "", m.group(0)[:-1])] = x[m.end():]
    return out if len(out) == len(xs) else None


def _list_equal(a: list, b: list):
    """Unordered lists (sets) of elements, each a number, expression or tuple;
    ``a_3 = 2, a_{37} = 19`` lists compare name by name."""
    a = [normalize(x) for x in a]
    b = [normalize(y) for y in b]
    da, db = _assignments(a), _assignments(b)
    if da is not None and db is not None and len({k[0] for k in da} | {k[0] for k in db}) > 0 and set(da) == set(db):
        res = [fast_equal(da[k], db[k], normalized=True) for k in da]
        return None if None in res else all(res)
    a = [_strip_assign(x) for x in a]
    b = [_strip_assign(y) for y in b]
    res = {}
    for x in dict.fromkeys(a):
        for y in dict.fromkeys(b):
            r = fast_equal(x, y, normalized=True) if x != y else True
            if r is None:
                return None
            res[x, y] = r
    return (all(any(res[x, y] for y in b) for x in a) and all(any(res[x, y] for x in a) for y in b))


SPACE = "\u2423"  # normalize's mark for a space between two digits
_MIXED = re.compile(r"^(-?)(\d+)\u2423(\d+/\d+|\\frac\{\d+\}\{\d+\})$")


_SPACED_DIGITS = re.compile(r"^[-+\d.,/\u2423]+$")


def _spaced(p: str, g: str):
    """Digits separated by a space: a mixed number ``3 1/2`` is 7/2; anything
    else ("1 2 3") is not a number at all -- never 123, 6 or 1."""
    vals = []
    for s in (p, g):
        m = _MIXED.match(s)
        if m:
            frac = parse_number(m.group(3))
            if not isinstance(frac, list):
                return False
            whole = _Num(Fraction(int(m.group(2))), float(m.group(2)))
            v = _arith(whole, frac[0], "+")
            vals.append([_Num(-v.q, -v.f) if m.group(1) else v])
        elif SPACE in s:
            return False if _SPACED_DIGITS.match(s) else None  # \log_2 8: for sympy
        else:
            vals.append(parse_number(s))
    if not all(isinstance(v, list) for v in vals):
        return False
    return any(num_equal(x, y) for x in vals[0] for y in vals[1])


def fast_equal(pred: str, gold: str, normalized: bool = False):
    """True/False when decidable without sympy, else None (see module doc)."""
    p, g = (pred, gold) if normalized else (normalize(pred), normalize(gold))
    if not p or not g:
        return False if (p or g) else None
    if p == g:
        return True
    if _CHOICE.match(g) and _LOWER_CHOICE.match(p):
        return _LOWER_CHOICE.match(p).group(1).upper() == _CHOICE.match(g).group(1)
    if _CHOICE.match(p) and _CHOICE.match(g):
        return False  # two different multiple-choice letters
    if len(p) > MAX_FAST_LEN or len(g) > MAX_FAST_LEN:
        return None
    if SPACE in p or SPACE in g:
        return _spaced(p, g)
    sp, sg = _shape(p), _shape(g)
    if sp[0] == "one" and sg[0] == "one":
        return _elem_equal(p, g)
    if sp[0] == "seq" and sg[0] == "seq":
        if len(sp[2]) != len(sg[2]):
            return False
        res = [_elem_equal(x, y) for x, y in zip(sp[2], sg[2])]
        if None in res:
            return None
        return all(res) and sp[1] == sg[1] and sp[3] == sg[3]
    if sp[0] == "set" and sg[0] == "set":
        return _list_equal(sp[1], sg[1])
    for x, xs, y in ((sp, p, sg), (sg, g, sp)):
        if x[0] == "seq" and y[0] == "set" and (g if xs is p else p).startswith("\\{"):
            return False  # an interval or tuple is not a set {1, 2}
    for one, other, other_s in ((sp, sg, g), (sg, sp, p)):
        if one[0] == "one" and other[0] == "set":
            if _DECIMAL_COMMA.match(other_s):  # 1,22 = 1.22 (decimal comma) next to a number
                return _elem_equal(one[1], other_s.replace(",", "."))
            if parse_number(one[1]) not in (None, TOO_BIG, VARS) and all(
                    parse_number(x) not in (None, TOO_BIG) for x in other[1]):
                return False  # a list of numbers is not one number
    return None
