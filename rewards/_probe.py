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
import re
import threading
from fractions import Fraction

import mpmath

MAX_LEN = 300
MAX_TOKENS = 200
MAX_DEPTH = 40
MAX_VARS = 3
MAX_EXP = 64  # |exponent| at a probe point
MAX_BITS = 4096  # size of an exact intermediate (numerator + denominator bits)
MAX_MAG, MIN_MAG = 1e12, 1e-12  # |value| of any nonzero approximate intermediate
MAX_LITERAL = 10**6  # integer literals in expressions with pi, e, roots or functions
N_PROBES = 8
DIGITS = 50
_REL_EQ, _REL_NE = 1e-35, 1e-20  # at 50 digits; between the two is "unsure"
_PI, _E = object(), object()
_MP_LOCK = threading.Lock()

_TOKEN = re.compile(r"\s*(?:(\d+)|([A-Za-z])|\\([a-zA-Z]+)|([-+*/^(){}\[\]])|(\\[,;:! ]))")
# the reward's normalizer strips spaces, so "\sin x" arrives as "\sinx": a known
# function glued to ONE letter is split ("\sinh" is not "\sin h")
_GLUED = re.compile(r"(sin|cos|tan|log|ln|exp|pi)([a-zA-Z])")
_GLUED_RAW = re.compile(r"\\(?:sin|cos|tan|log|ln|exp|pi)[a-zA-Z]")
_FUNCS = ("sin", "cos", "tan", "exp", "ln", "log")
_SKIP = {"left", "right", "displaystyle"}
_BAD_LETTERS = set("iIE")  # imaginary unit or an ambiguous constant


class Decline(Exception):
    """The probe is unsure; math-verify decides."""


def _tokens(s: str) -> list:
    out, pos = [], 0
    s = s.rstrip()
    while pos < len(s):
        m = _TOKEN.match(s, pos)
        if not m or m.end() == pos:
            raise Decline
        pos = m.end()
        num, var, cmd, op, space = m.groups()
        if space:
            continue
        if num is not None:
            if len(num) > 12:
                raise Decline
            out.append(("num", int(num)))
        elif var is not None:
            if var in _BAD_LETTERS:
                raise Decline
            out.append(("num", _E) if var == "e" else ("var", var))
        elif cmd is not None:
            glued = _GLUED.fullmatch(cmd)
            if glued and cmd not in ("sinh", "cosh", "tanh"):
                cmd, var = glued.groups()
                out.append(("cmd", cmd))
                if var in _BAD_LETTERS:
                    raise Decline
                out.append(("num", _E) if var == "e" else ("var", var))
            elif cmd in _SKIP:
                continue
            else:
                out.append(("cmd", cmd))
        else:
            out.append(("op", op))
        if len(out) > MAX_TOKENS:
            raise Decline
    return out


class _Parser:
    """Recursive descent to a nested-tuple tree; every rule is depth-checked."""

    def __init__(self, toks):
        self.t, self.i, self.depth, self.vars = toks, 0, 0, set()

    def peek(self):
        return self.t[self.i] if self.i < len(self.t) else (None, None)

    def take(self, kind=None, val=None):
        k, v = self.peek()
        if k is None or (kind and k != kind) or (val is not None and v != val):
            raise Decline
        self.i += 1
        return v

    def enter(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise Decline

    def expr(self):
        self.enter()
        neg = self.peek() == ("op", "-")
        if self.peek() in (("op", "+"), ("op", "-")):
            self.take()
        node = self.term()
        if neg:
            node = ("neg", node)
        while self.peek() in (("op", "+"), ("op", "-")):
            op = self.take()
            node = ("add" if op == "+" else "sub", node, self.term())
        self.depth -= 1
        return node

    def term(self):
        self.enter()
        node = self.implicit()
        while True:
            k, v = self.peek()
            if (k, v) in (("op", "*"), ("cmd", "cdot"), ("cmd", "times")):
                self.take()
                node = ("mul", node, self.implicit())
            elif (k, v) == ("op", "/"):
                self.take()
                right = self.power()
                if self._starts_atom():
                    raise Decline  # "1/2x": readers disagree
                node = ("div", node, right)
            else:
                break
        self.depth -= 1
        return node

    def _starts_atom(self):
        k, v = self.peek()
        return k in ("num", "var", "const") or (k == "op" and v == "(") or (k == "cmd" and v not in (
            "cdot", "times"))

    def implicit(self):
        node = self.power()
        while self._starts_atom():
            node = ("mul", node, self.power())
        return node

    def power(self):
        self.enter()
        base = self.atom()
        if self.peek() == ("op", "^"):
            self.take()
            base = ("pow", base, self.group_or_atom())
            if self.peek() == ("op", "^"):
                raise Decline  # x^y^z
        self.depth -= 1
        return base

    def group_or_atom(self):
        if self.peek() == ("op", "{"):
            return self.braced()
        k, v = self.peek()
        if k == "num":
            self.take()
            if isinstance(v, int) and v > 9:
                raise Decline  # x^23 is read x^2 * 3 by TeX
            return ("num", v)
        if k == "var":
            self.take()
            self.vars.add(v)
            return ("var", v)
        raise Decline

    def tex_arg(self):
        """A TeX macro argument: ``{...}``, one digit (``\\frac12``) or one letter."""
        k, v = self.peek()
        if (k, v) == ("op", "{"):
            return self.braced()
        if k == "num" and not isinstance(v, int):
            self.take()
            return ("num", v)
        if k == "num":
            digits = str(v)
            if len(digits) > 1:
                self.t[self.i] = ("num", int(digits[1:])) if digits[1] != "0" else None
                if self.t[self.i] is None:
                    raise Decline  # "\\frac105": leading zero in the rest
            else:
                self.i += 1
            return ("num", int(digits[0]))
        if k == "var":
            self.take()
            self.vars.add(v)
            return ("var", v)
        raise Decline

    def braced(self):
        self.take("op", "{")
        node = self.expr()
        self.take("op", "}")
        return node

    def atom(self):
        self.enter()
        k, v = self.peek()
        if k == "num":
            self.take()
            node = ("num", v)
        elif k == "var":
            self.take()
            self.vars.add(v)
            node = ("var", v)
        elif (k, v) == ("op", "("):
            self.take()
            node = self.expr()
            self.take("op", ")")
        elif (k, v) == ("op", "{"):
            node = self.braced()
        elif k == "cmd":
            node = self.command()
        else:
            raise Decline
        self.depth -= 1
        return node

    def command(self):
        name = self.take("cmd")
        if name == "pi":
            return ("num", _PI)
        if name in ("frac", "dfrac", "tfrac"):
            num = self.tex_arg()
            return ("div", num, self.tex_arg())
        if name == "sqrt":
            index = None
            if self.peek() == ("op", "["):
                self.take()
                index = self.expr()
                self.take("op", "]")
            return ("root", self.tex_arg(), index)
        if name in _FUNCS:
            return self.function(name)
        raise Decline

    def function(self, name):
        exp = None
        if self.peek() == ("op", "^"):
            self.take()
            exp = self.group_or_atom()
        k, v = self.peek()
        if (k, v) in (("op", "("), ("op", "{")):
            arg = self.atom()
        elif k in ("num", "var", "const"):
            arg = self.atom()
            if self.peek() == ("op", "^") or self.peek()[0] in ("num", "var", "const") or self.peek() == ("op", "("):
                raise Decline  # "\sin x^2", "\sin 2x": readers disagree on the argument
        else:
            raise Decline
        node = ("fn", name, arg)
        if self.peek() == ("op", "^"):
            if exp is not None:
                raise Decline
            self.take()
            exp = self.group_or_atom()
        return ("pow", node, exp) if exp is not None else node


def parse(s: str):
    """(tree, variables) of a LaTeX expression; raises :class:`Decline`."""
    if len(s) > MAX_LEN:
        raise Decline
    p = _Parser(_tokens(s))
    if not p.t:
        raise Decline
    tree = p.expr()
    if p.i != len(p.t):
        raise Decline
    return tree, p.vars


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
    if kind == "add":
        return _fit(a + b)
    if kind == "sub":
        return _fit(a - b)
    if kind == "mul":
        return _fit(a * b)
    if kind == "div":
        if b == 0:
            raise Decline
        return _fit(a / b)
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
    if kind == "add":
        return _big(a + b)
    if kind == "sub":
        return _big(a - b)
    if kind == "mul":
        return _big(a * b)
    if kind == "div":
        if b == 0:
            raise Decline
        return _big(a / b)
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
    if any(_GLUED_RAW.search(s) for s in raw):
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
