r"""The answer of unmarked text (no box, answer tag, "the answer is" or ``####``):
the last math environment or number, read in one linear scan.

Math-verify's own fallback credits whatever number comes last or first, so
"It could be 3, or maybe 4, or 5" and "5 is wrong" earn a 5.  Here candidates
that follow each other with only separators between them (``,``, ``or``,
``and``, ``maybe``) form one list answer -- never equal to a single number --
and a last candidate that the text then calls wrong is no answer.

>>> raw_answer("the number is not 10 which is 1,000.99€")
'1,000.99'
>>> raw_answer("Answer $ 9 $"), raw_answer("Answer $ \n 9 \n $"), raw_answer("28 percent")
('9', None, '28%')
>>> raw_answer("It could be 3, or maybe 4, or 5"), raw_answer("5 is wrong"), raw_answer("AZYUK2A")
('3,4,5', None, None)
"""

from __future__ import annotations

import re

from rewards._normalize import UNIT_WORDS as _UNITS

MAX_SCAN = 4000
# One alternation, tried left to right at each position: display math, inline
# math (one line), \[...\], \(...\), then a number that is not part of a word.
_CAND = re.compile(
    r"\$\$([^$]{1,600}?)\$\$|(?<![\\$])\$((?:\\.|[^$\n\\]){1,500}?)\$|\\\[(.{1,600}?)\\\]|\\\(([^\n]{1,500}?)\\\)"
    # an inline $...$ or \(...\) broken by a newline is not math: skipped whole
    r"|(?<![\\$])\$(?:\\.|[^$\\]){1,500}?\$|\\\(.{1,500}?\\\)"
    # a number (a/b too) not inside a word; a unit may follow (1,000.99m²)
    r"|(?<![\w.,/])(-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:[.,]\d+)?(?:/\d+)?|-?\.\d+)"
    r"(?![.,/]?\d)(?!(?!(?:%s)(?:\b|[²³]))[a-zA-Z0-9_])" % _UNITS,
    re.S)
_PCT = re.compile(r"\s{0,2}(?:%|\\%|percent\b|pct\b|percentage\b)")
_JOIN = re.compile(r"^(?:\s|,|;|\bor\b|\band\b|\bmaybe\b|\bperhaps\b|\beither\b|\bpossibly\b|\\quad)*$", re.I)
_NEGATED = re.compile(r"^[^.\n]{0,40}?\b(?:is|are|was|seems?)\s+(?:not|wrong|incorrect|false)\b|^[^.\n]{0,10}\?",
                      re.I)


_NOT_BEFORE = re.compile(r"(?:\bnot|n't|\bno)\s*$", re.I)


def _candidates(text: str):
    out = []
    for m in _CAND.finditer(text):
        val = next((g for g in m.groups() if g is not None), None)
        if val is None:
            continue  # broken inline math
        val = val.strip()
        end = m.end()
        p = _PCT.match(text, end)
        if p and not val.endswith("%"):
            val, end = val + "%", p.end()
        if val:
            out.append((m.start(), end, val))
    return out


def raw_answer(text: str) -> str | None:
    """The final answer of unmarked text, or None."""
    text = text[-MAX_SCAN:]
    cands = _candidates(text)
    if not cands:
        return None
    run = [cands[-1]]
    for c in reversed(cands[:-1]):
        if not _JOIN.match(text[c[1]:run[0][0]]):
            break
        run.insert(0, c)
    if _NEGATED.match(text[run[-1][1]:]) or _NOT_BEFORE.search(text[max(0, run[0][0] - 12):run[0][0]]):
        return None  # "5 is wrong", "5?", "5, not 6"
    vals = list(dict.fromkeys(v for _, _, v in run))
    return ",".join(vals)
