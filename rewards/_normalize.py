r"""Answer normalization for the fast comparison path (:mod:`rewards._compare`):
strip what does not change an answer's value -- ``$``/``\(\)`` delimiters, LaTeX
spacing and sizing, ``\text{}`` wrappers, units, degree signs, currency, ``x =``
prefixes, thousands separators, trailing periods -- and expand LaTeX's one-token
arguments (``\frac12``).  The result is only ever compared or evaluated, never
shown, so it may drop spaces.
"""

from __future__ import annotations

import functools
import re

_REPLACE = [
    ("\\left", ""), ("\\right", ""), ("\\!", ""), ("\\,", ""), ("\\;", ""), ("\\:", ""),
    ("\\ ", " "), ("~", " "), ("\\displaystyle", ""), ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"),
    ("\\cdot", "*"), ("\\times", "*"), ("\\div", "/"), ("**", "^"), ("\u2212", "-"), ("\u00d7", "*"),
    ("\u00f7", "/"), ("\u03c0", "\\pi"), ("\u221e", "\\infty"), ("^{\\circ}", ""), ("^\\circ", ""),
    ("\\circ", ""), ("\u00b0", ""), ("\\%", "%"), ("\\$", ""), ("$", ""), ("\\lbrace", "\\{"),
    ("\\rbrace", "\\}"), ("\\infinity", "\\infty"), ("\\cfrac", "\\frac"), ("{,}", ","),
]
_WRAP = re.compile(r"\\(?:text|textbf|textit|textrm|textnormal|textsf|texttt|mbox|mathrm|mathbf|mathit|operatorname)\s*\{([^{}]*)\}")
UNIT_WORDS = _UNIT_WORDS = (
    "cm|mm|km|m|kg|mg|g|l|ml|s|sec|secs|second|seconds|min|mins|minute|minutes|h|hr|hrs|hour|hours|"
    "day|days|week|weeks|year|years|dollar|dollars|cent|cents|degree|degrees|inch|inches|in|ft|foot|"
    "feet|yard|yards|mile|miles|mph|meter|meters|metre|metres|units?|sq|square|cubic|pounds?|lbs?|oz|"
    "people|students|apples|times|ways|pages|points|marbles|miles/hour|km/h|m/s"
)
# Only known unit words are dropped, and only after a plain number: "5 is wrong",
# "12 or more", "2 x" and "3 + 4 i" keep their tails (and so are not 5, 12, 2, 7).
_UNIT_TAIL = re.compile(
    r"^(-?(?:\d[\d,]*(?:\.\d*)?|\.\d+|\\frac\{\d+\}\{\d+\}|\d+/\d+))\s*(?:(?:%s)(?:\s(?:per\s)?(?:%s)){0,2})"
    r"(?:\^\{?[23]\}?)?\.?$"
    % (_UNIT_WORDS, _UNIT_WORDS))
_TEXT_UNIT = re.compile(r"(?<=[\d}])\s*\\(?:text|textnormal|textrm|mbox|mathrm)\s*\{\s*(?:%s)(?:\s+(?:%s)){0,2}\s*\}"
                        r"(\^\{?[23]\}?)?$" % (_UNIT_WORDS, _UNIT_WORDS))
_TUPLE_ASSIGN = re.compile(r"^\(\s*[a-zA-Z](?:_\{?\w+\}?)?(?:\s*,\s*[a-zA-Z](?:_\{?\w+\}?)?)+\s*\)\s*=\s*(?=[^=]+$)")
_AND = re.compile(r"\s*(?:\\quad|\\qquad)?\s*\\text\{\s*(?:and|or)\s*\}\s*(?:\\quad|\\qquad)?\s*|\s*\\quad\s*")
_ASSIGN = re.compile(r"^(?:[a-zA-Z]|\\[a-zA-Z]+)(?:_\{?\w+\}?)?\s*=\s*(?=[^=]+$)")
_PERCENT = re.compile(r"(?<=[\d}])\s*(?:\\text\{\s*)?(?:percent|percentage|pct)\}?$")
_DELIM_ENDS = re.compile(r"^\\[(\[]|\\[)\]]$")
_DIGIT_SPACE = re.compile(r"\d\s+\d")
_SPACES = re.compile(r"\s+")
_MEMBER = re.compile(r"^[a-zA-Z]\s*\\in\s*(?=[\[(]|\\\{|\\mathbb|\\emptyset|\\varnothing)")
_OPTION = re.compile(r"^(?:option|choice)", re.I)  # "Option B"
_PLAIN = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)$")
CHOICE = re.compile(r"^\(?([A-E])\)?$")
LOWER_CHOICE = re.compile(r"^\(?([a-e])\)?$")
_THOUSANDS = re.compile(r"^-?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?$|^-?[1-9]\d{0,2}(?: \d{3})+(?:\.\d+)?$")


@functools.lru_cache(maxsize=1 << 13)
def normalize(s: str) -> str:
    r"""Canonical text of an answer: LaTeX spacing/sizing, ``$``, ``\text{}``
    units, degree signs, ``x =`` prefixes and trailing periods removed.

    >>> normalize(r" $x = \dfrac{1}{2}\ \text{cm}$. ")
    '\\frac{1}{2}'
    >>> normalize(r"\textbf{(B)}")
    'B'
    """
    s = str(s).strip()
    if _PLAIN.match(s):
        return s.lstrip("+")
    if "\\boxed" in s or "\\fbox" in s:
        from rewards._boxes import last_boxed

        s = last_boxed(s) or s
    if ",\\!" in s:
        s = re.sub(r",\\!\s*", ",", s)  # 32,\! 349: a LaTeX thousands separator
    for a, b in _REPLACE:
        if a in s:
            s = s.replace(a, b)
    if "\\text" in s or "\\quad" in s:
        s = re.sub(r",(?:\s*,)+", ",", _AND.sub(",", s)).strip(",")  # (5, 8) \quad \text{and} \quad (8, 5)
    s = s.strip()
    if s.startswith(("\\(", "\\[")) or s.endswith(("\\)", "\\]")):
        s = _DELIM_ENDS.sub("", s).strip()
    if s.endswith(".") and not s.endswith(".."):
        s = s[:-1].strip()  # a sentence's period; "5 ..." keeps its dots
    if s.startswith(("\\approx", "\u2248")):
        s = s[7 if s.startswith("\\approx") else 1:].strip()
    # A trailing \text{unit} after a number is a unit; otherwise \text{X} -> X.
    s = _TEXT_UNIT.sub("", s)
    for _ in range(3):
        s2 = _WRAP.sub(r"\1", s)
        if s2 == s:
            break
        s = s2
    s = _TUPLE_ASSIGN.sub("", s.strip())  # (p, q) = (3, 2)
    s = _ASSIGN.sub("", s.strip())
    s = _MEMBER.sub("", s)  # x \in [1, 2]: the set is the answer
    s = _PERCENT.sub("%", s)
    m = _UNIT_TAIL.match(s)
    if m:
        s = m.group(1)
    return _compact(s.strip())


def _compact(s: str) -> str:
    """Spaces out (after deciding what they meant), TeX shorthand expanded."""
    if _THOUSANDS.match(s):  # before spaces go: "32, 349" is a list, "1 000" a number
        s = s.replace(",", "").replace(" ", "")
    elif _DIGIT_SPACE.search(s):
        s = s.replace(" ", "\u2423")  # "3 1/2" (mixed number?) must not become "31/2"
    s = _SPACES.sub("", s)
    if "\\frac" in s:  # LaTeX's one-token arguments: \frac12, \frac{a}2
        s = re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", s)
        s = re.sub(r"\\frac(\d)", r"\\frac{\1}", s)
        s = re.sub(r"\\frac(\{[^{}]*\})(\d)", r"\\frac\1{\2}", s)
    if "\\sqrt" in s:
        s = re.sub(r"\\sqrt(\d)", r"\\sqrt{\1}", s)
    if s.startswith("{") and s.endswith("}") and "," in s and _brace_wraps(s):
        s = s[1:-1]  # ${1, 2}$: TeX grouping braces around a list
    m = CHOICE.match(_OPTION.sub("", s))
    return m.group(1) if m else s


def _brace_wraps(s: str) -> bool:
    depth = 0
    for i, c in enumerate(s):
        depth += (c == "{") - (c == "}")
        if depth == 0 and i < len(s) - 1:
            return False
    return True
