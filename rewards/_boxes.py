r"""``\boxed{...}`` / ``\fbox{...}`` with balanced braces: a leaf module (the answer
extractor, the normalizer and the text helpers all need it, and it needs none of them)."""
from __future__ import annotations

import re

_BOX = re.compile(r"\\(?:boxed|fbox)\b")


def _brace_end(text: str, j: int) -> int:
    """Index just past the ``}`` closing the ``{`` at ``j``, or -1."""
    depth = 0
    for k in range(j, len(text)):
        c = text[k]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return k + 1
        elif c == "\\" and k + 1 < len(text) and text[k + 1] in "{}":
            pass  # \{ counts like {: braces must still balance for \boxed{\{1\}}
    return -1


def boxes(text: str) -> list[tuple[int, int, str]]:
    r"""All ``\boxed{...}`` / ``\fbox{...}`` as (start, end, content), in order;
    ``\boxed 5`` too.  One pass: a box's content is skipped, never rescanned.

    >>> [b[2] for b in boxes(r"\boxed{1} and \boxed{\frac{a}{b}} \boxed 7")]
    ['1', '\\frac{a}{b}', '7']
    """
    out, i = [], 0
    while True:
        m = _BOX.search(text, i)
        if not m:
            return out
        j = m.end()
        while j < len(text) and text[j] == " ":
            j += 1
        if j < len(text) and text[j] == "{":
            e = _brace_end(text, j)
            if e < 0:
                return out  # unclosed: nothing after it is balanced either
            out.append((m.start(), e, text[j + 1:e - 1]))
            i = e
        else:
            k = j
            while k < len(text) and not text[k].isspace() and text[k] != "$":
                k += 1
            if k > j:
                out.append((m.start(), k, text[j:k]))
            i = max(k, m.end())


def last_boxed(text: str) -> str | None:
    r"""Content of the last ``\boxed{...}`` / ``\fbox{...}`` with balanced braces
    (``\boxed 5`` is accepted too); None when there is none.  Linear time.

    >>> last_boxed(r"\boxed{1} then \boxed{\frac{a}{b}}")
    '\\frac{a}{b}'
    """
    bx = boxes(text)
    return bx[-1][2] if bx else None
