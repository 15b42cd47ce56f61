r"""Fast answer comparison for the common cases: :func:`fast_equal` returns
True/False when it can decide without sympy and None when the answer needs the
symbolic path (variables with functions, matrices, ...).  Numbers and
expressions are evaluated by :mod:`rewards._numeric`; here is the structure:
lists and sets (unordered), tuples and intervals (ordered, brackets matter),
``name = value`` lists, choice letters, mixed numbers, decimal commas.

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

import re
from fractions import Fraction

from rewards._normalize import CHOICE as _CHOICE, LOWER_CHOICE as _LOWER_CHOICE, normalize
from rewards._numeric import _ENVS, MAX_FAST_LEN, TOO_BIG, VARS, _arith, _Num, num_equal, parse_number


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
    parts = _split_top(s) if "," in s else [s]
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


_WORDS_ONLY = re.compile(r"^[a-zA-Z]{3,}$")


def fast_equal(pred: str, gold: str, normalized: bool = False):
    """True/False when decidable without sympy, else None (see module doc)."""
    p, g = (pred, gold) if normalized else (normalize(pred), normalize(gold))
    if not p or not g:
        return False if (p or g) else None
    if p == g:
        return True
    if _WORDS_ONLY.match(p) and _WORDS_ONLY.match(g):
        return p.lower() == g.lower()  # "Even" = "even"; "odd" != "even"
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
                if not other_s.startswith("\\{") and len(other[1]) <= 4 and all(_elem_equal(x, other[1][0]) for x in other[1][1:]):
                    return _elem_equal(one[1], other[1][0])  # "0.5 or 50%": one value, twice
                return False  # a list of numbers is not one number
    return None
