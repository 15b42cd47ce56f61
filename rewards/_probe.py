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

import cmath
import re

MAX_LEN = 300
MAX_TOKENS = 200
MAX_DEPTH = 40
MAX_VARS = 3
MAX_EXP = 64.0  # |exponent| at a probe point
MAX_MAG = 1e12  # |value| of any intermediate result
_REL_EQ, _REL_NE = 1e-9, 1e-4

_TOKEN = re.compile(r"\s*(?:(\d+)|([A-Za-z])|\\([a-zA-Z]+)|([-+*/^(){}\[\]])|(\\[,;:! ]))")
# the reward's normalizer strips spaces, so "\sin x" arrives as "\sinx": a known
# function glued to ONE letter is split ("\sinh" is not "\sin h")
_GLUED = re.compile(r"(sin|cos|tan|log|ln|exp|pi)([a-zA-Z])")
_GLUED_RAW = re.compile(r"\\(?:sin|cos|tan|log|ln|exp|pi)[a-zA-Z]")
_FUNCS = {"sin": cmath.sin, "cos": cmath.cos, "tan": cmath.tan, "exp": cmath.exp,
          "ln": cmath.log, "log": lambda z: cmath.log(z) / cmath.log(10)}
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
            out.append(("const", cmath.e) if var == "e" else ("var", var))
        elif cmd is not None:
            glued = _GLUED.fullmatch(cmd)
            if glued and cmd not in ("sinh", "cosh", "tanh"):
                cmd, var = glued.groups()
                out.append(("cmd", cmd))
                if var in _BAD_LETTERS:
                    raise Decline
                out.append(("const", cmath.e) if var == "e" else ("var", var))
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
            if v > 9:
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
        elif k == "const":
            self.take()
            node = ("num", v)
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
            return ("num", cmath.pi)
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


def _check(z: complex) -> complex:
    if not (cmath.isfinite(z) and abs(z) <= MAX_MAG):
        raise Decline
    return z


def evaluate(node, env: dict) -> complex:
    """Value of ``node`` at ``env``; raises :class:`Decline` on poles, overflow, big powers."""
    kind = node[0]
    if kind == "num":
        return complex(node[1])
    if kind == "var":
        return env[node[1]]
    if kind == "neg":
        return -evaluate(node[1], env)
    if kind == "fn":
        return _check(_FUNCS[node[1]](_check(evaluate(node[2], env))))
    if kind == "root":
        z = evaluate(node[1], env)
        n = evaluate(node[2], env) if node[2] is not None else 2
        if n == 0:
            raise Decline
        return _check(z ** (1 / n)) if z != 0 else 0j
    a, b = evaluate(node[1], env), evaluate(node[2], env)
    if kind == "add":
        return _check(a + b)
    if kind == "sub":
        return _check(a - b)
    if kind == "mul":
        return _check(a * b)
    if kind == "div":
        if abs(b) < 1e-9:
            raise Decline
        return _check(a / b)
    if abs(b) > MAX_EXP or (a == 0 and b.real <= 0):
        raise Decline
    if b.imag == 0 and b.real == int(b.real):
        return _check(a ** int(b.real))
    return _check(a ** b)


_POINTS = [0.713 + 0.431j, -1.137 + 0.274j, 0.371 - 1.213j, -0.593 - 0.829j, 1.318 + 0j, -0.771 + 0j,
           2.273 + 0.117j]


def _close(a: complex, b: complex, rel: float) -> bool:
    return abs(a - b) <= rel * max(1.0, abs(a), abs(b))


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
        names = sorted(vp | vg)  # a variable only one side has is probed too
        if len(names) > MAX_VARS:
            return None
        points = _POINTS if names else _POINTS[:1]
        same = []
        for j, _ in enumerate(points):
            env = {v: _POINTS[(j + 3 * k) % len(_POINTS)] * (1 + 0.1 * k) for k, v in enumerate(names)}
            a, b = evaluate(tp, env), evaluate(tg, env)
            if _close(a, b, _REL_EQ):
                same.append(True)
            elif not _close(a, b, _REL_NE):
                same.append(False)
            else:
                return None
    except (Decline, ArithmeticError, ValueError, RecursionError):
        return None
    if all(same):
        return True
    return False if not any(same) else None
