r"""Tokenizer and parser of the probe tier (:mod:`rewards._probe`): linear-time,
depth-limited, and strict -- anything it does not know raises :class:`Decline`.

>>> parse("2x+1")
(('add', ('mul', ('num', 2), ('var', 'x')), ('num', 1)), {'x'})
"""

from __future__ import annotations

import re

MAX_LEN = 300
MAX_TOKENS = 200
MAX_DEPTH = 40
PI, E = object(), object()  # the constants, as markers in the tree

_TOKEN = re.compile(r"\s*(?:(\d+)|([A-Za-z])|\\([a-zA-Z]+)|([-+*/^(){}\[\]])|(\\[,;:! ]))")
# the reward's normalizer strips spaces, so "\sin x" arrives as "\sinx": a known
# function glued to ONE letter is split ("\sinh" is not "\sin h")
_GLUED = re.compile(r"(sin|cos|tan|log|ln|exp|pi)([a-zA-Z])")
GLUED_RAW = re.compile(r"\\(?:sin|cos|tan|log|ln|exp|pi)[a-zA-Z]")
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
            out.append(("num", E) if var == "e" else ("var", var))
        elif cmd is not None:
            glued = _GLUED.fullmatch(cmd)
            if glued and cmd not in ("sinh", "cosh", "tanh"):
                cmd, var = glued.groups()
                out.append(("cmd", cmd))
                if var in _BAD_LETTERS:
                    raise Decline
                out.append(("num", E) if var == "e" else ("var", var))
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
        return self.var_or_decline(k, v)

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
        return self.var_or_decline(k, v)

    def var_or_decline(self, k, v):
        """A variable (remembered), else what no atom may be."""
        if k != "var":
            raise Decline
        self.take()
        self.vars.add(v)
        return ("var", v)

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
            return ("num", PI)
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
