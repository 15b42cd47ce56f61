r"""Middle tier of the math reward: decide symbolic equivalence by probing.

A bounded, pure-Python parser for common LaTeX expressions (single-letter
variables, ``+ - * / ^``, implicit multiplication, ``\frac``/``\dfrac``,
``\sqrt[n]{}``, ``\pi``, ``e``, ``\sin \cos \tan \log \ln \exp`` and powers such
as ``\sin^2 x``, parentheses, ``\left``/``\right``, ``\cdot``, ``\times``)
evaluates both answers at several fixed complex points (real points of both
signs and complex ones, which separate ``\sqrt{x^2}`` from ``x`` and
``\log(x^2)`` from ``2\log x``).  :func:`probe_equal` returns True only when
every probe agrees to 1e-9, False only when every probe disagrees clearly, and
None -- "ask math-verify" -- for anything else: an unknown command, a
relation, a decimal, a pole or overflow at a probe, a large exponent, mixed
agreement between probes.  Linear-time tokenizer, depth-limited parser, sizes
checked before arithmetic.

>>> probe_equal("x^2+2x+1", "(x+1)^2"), probe_equal(r"\frac{\sqrt{3}}{2}", r"\frac12\sqrt3")
(True, True)
>>> probe_equal(r"\sqrt{x^2}", "x"), probe_equal(r"2\sin x\cos x", r"\sin(2x)")
(None, True)
>>> probe_equal("x+1", "y+1"), probe_equal("x^{10^9}", "x"), probe_equal("x = 1", "1")
(False, None, None)
"""

from __future__ import annotations

import random
import threading
from fractions import Fraction

import mpmath

from rewards._probe_parse import GLUED_RAW, E as _E, PI as _PI, Decline, parse

MAX_VARS = 3
MAX_EXP = 64  # |exponent| at a probe point
MAX_BITS = 4096  # size of an exact intermediate (numerator + denominator bits)
MAX_MAG, MIN_MAG = 1e12, 1e-12  # |value| of any nonzero approximate intermediate
MAX_LITERAL = 10**6  # integer literals in expressions with pi, e, roots or functions
N_PROBES = 8
DIGITS = 50
_REL_EQ, _REL_NE = 1e-35, 1e-20  # at 50 digits; between the two is "unsure"
_MP_LOCK = threading.Lock()


def _is_rational(node) -> bool:
    """Only + - * / and powers of integers and variables: evaluated exactly."""
    kind = node[0]
    if kind == "num":
        return isinstance(node[1], int)
    if kind == "var":
        return True
    if kind in ("fn", "root"):
        return False
    return all(_is_rational(n) for n in node[1:])


def _fit(q: Fraction) -> Fraction:
    if q.numerator.bit_length() + q.denominator.bit_length() > MAX_BITS:
        raise Decline
    return q


_FOUR = ("add", "sub", "mul", "div")


def _four(kind: str, a, b, check):
    """``a kind b`` for the four operations of both evaluators; ``check`` bounds the result
    (_fit: exact size, _big: magnitude); a division by zero declines."""
    if kind == "div" and b == 0:
        raise Decline
    return check(a + b if kind == "add" else a - b if kind == "sub" else a * b if kind == "mul" else a / b)


def _exact(node, env: dict) -> Fraction:
    """Exact value of a rational ``node``; sizes checked before every product and power."""
    kind = node[0]
    if kind == "num":
        return Fraction(node[1])
    if kind == "var":
        return env[node[1]]
    if kind == "neg":
        return -_exact(node[1], env)
    a, b = _exact(node[1], env), _exact(node[2], env)
    if kind in _FOUR:
        return _four(kind, a, b, _fit)
    if b.denominator != 1 or abs(b) > MAX_EXP or (a == 0 and b <= 0):
        raise Decline
    bits = a.numerator.bit_length() + a.denominator.bit_length()
    if bits * abs(int(b)) > MAX_BITS:
        raise Decline  # checked before the power is computed
    return a ** int(b)


def _big(z):
    m = abs(z)
    if not mpmath.isfinite(m) or m > MAX_MAG or (m != 0 and m < MIN_MAG):
        raise Decline  # overflow, or a near-cancellation whose precision is unknown
    return z


_MPFUNCS = {"sin": mpmath.sin, "cos": mpmath.cos, "tan": mpmath.tan, "exp": mpmath.exp, "ln": mpmath.log,
            "log": lambda z: mpmath.log(z) / mpmath.log(10)}


def _approx(node, env: dict):
    """Value of ``node`` at ``env`` in 50-digit complex arithmetic (principal branches)."""
    kind = node[0]
    if kind == "num":
        v = node[1]
        if isinstance(v, int) and v > MAX_LITERAL:
            raise Decline  # big literals make near-coincidences cheap
        return mpmath.pi if v is _PI else mpmath.e if v is _E else mpmath.mpc(v)
    if kind == "var":
        return env[node[1]]
    if kind == "neg":
        return -_approx(node[1], env)
    if kind == "fn":
        arg = _approx(node[2], env)
        if node[1] in ("ln", "log") and arg == 0:
            raise Decline
        return _big(_MPFUNCS[node[1]](arg))
    if kind == "root":
        z = _approx(node[1], env)
        n = _approx(node[2], env) if node[2] is not None else mpmath.mpc(2)
        if n == 0:
            raise Decline
        return _big(mpmath.power(z, 1 / n)) if z != 0 else mpmath.mpc(0)
    a, b = _approx(node[1], env), _approx(node[2], env)
    if kind in _FOUR:
        return _four(kind, a, b, _big)
    if abs(b) > MAX_EXP or (a == 0 and b.real <= 0):
        raise Decline
    return _big(mpmath.power(a, b))


# (sign of Re, |Im| range) per probe: real points of both signs, every variable
# just above / below the negative axis (so arg sums wrap: ln(xy) vs ln x + ln y),
# |Im| > pi (ln(e^x) vs x), then independent random quadrants per variable
_PATTERNS = [(1, None), (-1, None), (-1, (0.1, 0.6)), (-1, (-0.6, -0.1)), (1, (3.5, 4.5)), (-1, (-4.5, -3.5)),
             (0, (0.2, 1.5)), (0, (0.2, 1.5))]


def _points(n_vars: int, exact: bool) -> list:
    """Fresh random probe points: a hostile answer cannot be built to vanish at them."""
    rng = random.SystemRandom()
    pts = []
    for j, (sign, im_range) in enumerate(_PATTERNS[:N_PROBES]):
        env = []
        for _ in range(n_vars):
            re_ = Fraction(rng.randrange(200_000, 2_000_000), rng.randrange(1_000_000, 1_300_000))
            if exact:
                env.append(re_ if j % 2 == 0 else -re_)
                continue
            s_re = sign or rng.choice((-1, 1))
            im = 0.0 if im_range is None else rng.uniform(*im_range) * (rng.choice((-1, 1)) if not sign else 1)
            env.append(mpmath.mpc(float(re_) * s_re, im))
        pts.append(env)
    return pts


def _compare(a, b):
    """True (equal), False (clearly different) or None, for two values."""
    if a == b:
        return True
    scale = max(abs(a), abs(b))
    if scale < MIN_MAG:
        return None
    rel = abs(a - b) / scale
    return True if rel < _REL_EQ else False if rel > _REL_NE else None


def probe_equal(pred: str, gold: str, raw: tuple = ()):
    """True / False when every probe agrees, else None (fall through to math-verify).

    ``raw``: the strings before normalization; one with a glued command such as
    ``\\sinx`` as the model wrote it is left to math-verify.

    >>> probe_equal(r"\\sinx", r"\\sin(x)"), probe_equal(r"\\sinx", r"\\sin(x)", raw=(r"\\sinx",))
    (True, None)
    """
    if any(GLUED_RAW.search(s) for s in raw):
        return None
    try:
        (tp, vp), (tg, vg) = parse(pred), parse(gold)
        if tp[0] == "var" or tg[0] == "var":
            return None  # math-verify reads a lone letter as a choice ("x" vs "x^1" is False)
        names = sorted(vp | vg)  # a variable only one side has is probed too
        if len(names) > MAX_VARS:
            return None
        exact = _is_rational(tp) and _is_rational(tg)
        points = _points(len(names), exact) if names else [[]]
        same = set()
        with _MP_LOCK, mpmath.workdps(DIGITS):  # mpmath's precision is process-global
            for pt in points:
                env = dict(zip(names, pt))
                if exact:
                    same.add(_exact(tp, env) == _exact(tg, env))
                else:
                    same.add(_compare(_approx(tp, env), _approx(tg, env)))
    except (Decline, ArithmeticError, ValueError, RecursionError):
        return None
    return same.pop() if len(same) == 1 else None
