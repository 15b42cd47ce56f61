r"""Final-answer extraction for the math reward, linear-time and hack-resistant.

The answer region is what follows the last ``</think>`` (an answer only inside
the thinking does not count; an unclosed ``<think>`` has no answer), narrowed
to the last ``<answer>`` block when there is one.  In it, the final answer is
the last of: a run of ``\boxed{}`` that forms one answer (``\boxed{1},
\boxed{2}`` -> ``1,2``), a "final answer is X" / "Final answer: X" / "answer
is X" phrase, a GSM8K ``#### X`` line.  With ``multiple="reject"`` (the
default) boxes with different values that are not one run make the completion
ambiguous: no answer.  A region that is only a formula is its own answer;
other unmarked text is read by :func:`rewards._rawanswer.raw_answer`.

Every step is a bounded scan: no regex here can backtrack over a long run of
whitespace.

>>> final_answer(r"<think>\boxed{7}</think> so \boxed{1}, \boxed{2}")
('1,2', 'marked')
>>> final_answer(r"\boxed{3} wait, \boxed{4}") , final_answer(r"\boxed{3} wait, \boxed{4}", multiple="last")
((None, None), ('4', 'marked'))
>>> final_answer("x = \\boxed{3} is a step. The final answer is 5.")
('5', 'marked')
>>> final_answer("<think>the answer is 5")
(None, None)
>>> final_answer("Natalia sold 48/2 = 24 clips.\n#### 72")
('72', 'marked')
"""

from __future__ import annotations

import collections
import re

from rewards._boxes import boxes  # noqa: F401 (also public here)

MAX_RAW = 4000  # GSM8K-style answers: the last number of the last MAX_RAW characters
MAX_ANSWER = 2000  # a longer extracted "answer" is an essay, not an answer
_PHRASE = re.compile(r"(?:final answer|the answer|answer)(?:[ \t]{0,3}(?:is|=)[ \t]{0,3}:?|[ \t]{0,3}:)"
                     r"(?:[ \t]{0,3}(?:the[ \t]{1,3})?(?:final[ \t]{1,3})?(?:answer[ \t]{1,3}is:?))?", re.I)
_GSM = re.compile(r"^[ \t]*####[ \t]*(\S[^\n]*)", re.M)
# What may stand between two boxes of one answer (after dropping delimiters).
_SEP = re.compile(r"^(?:[,;&]|,?\s*or|(?:[^,;=]{0,30}\s)?,?\s*and)$", re.I)
_DELIMS = re.compile(r"\\[()\[\]]|\$|\\quad|\\qquad|\\text\{|\\textbf\{|\\mathrm\{|[{}]|\\[,;: !]|\*\*")


_NEXT_NAME = re.compile(r"[a-zA-Z](?:_\{?\w+\}?)?\s*=$")


def _joins(between: str) -> bool:
    """Whether the text between two boxes makes them one answer."""
    between = _DELIMS.sub(" ", between).strip()
    core = _NEXT_NAME.sub("", between).strip()
    return len(between) <= 40 and not re.search(r"[\d=]", core) and (not core or bool(_SEP.match(core)))


def _runs(text: str, bx: list) -> list[tuple[int, int, list[str]]]:
    runs: list = []
    for s, e, c in bx:
        if runs and _joins(text[runs[-1][1]:s]):
            runs[-1] = (runs[-1][0], e, runs[-1][2] + [c])
            continue
        runs.append((s, e, [c]))
    return runs


def _distinct(vals: list) -> bool:
    """Whether the stated answers (the last few) are not all the same value."""
    keys = list(dict.fromkeys(_key(v) for v in vals if v))
    if len(keys) <= 1:
        return False
    from rewards._compare import fast_equal

    return not all(fast_equal(k, keys[-1]) for k in keys[:-1])


def _several(runs) -> bool:
    """Whether the box runs hold more than one distinct answer (by value)."""
    keys = list(dict.fromkeys(_key(_run_value(r[2])) for r in runs))
    if len(keys) <= 1:
        return False
    if len(keys) > 4:
        return True
    from rewards._compare import fast_equal

    return not all(fast_equal(k, keys[-1]) for k in keys[:-1])


def _key(s: str) -> str:
    return re.sub(r"\s+|\\[,;:! ]|\\left|\\right|\\dfrac|\\tfrac|\\frac", "", s)


def _run_value(parts: list[str]) -> str:
    uniq = list(dict.fromkeys(p.strip() for p in parts if p.strip()))
    if 1 < len(uniq) <= 8:
        from rewards._compare import fast_equal

        if all(fast_equal(u, uniq[-1]) for u in uniq[:-1]):
            return uniq[-1]  # \boxed{5} \boxed{5.0}: the same answer twice
    return ",".join(uniq)


def _after_phrase(text: str, start: int) -> str | None:
    """The answer written after "the final answer is" at ``start``."""
    rest = text[start:start + MAX_ANSWER].lstrip(" \t*")
    bx = boxes(rest[:MAX_ANSWER])
    if bx and bx[0][0] < 20:
        return bx[0][2]
    q = re.match(r'\\?"(.*?)\\?"', rest)  # quoted: "$12$ and $13$"
    if q:
        rest = q.group(1)
    whole = _whole_math(re.split(r"\.(?:\s|$)|\n", rest, maxsplit=1)[0].strip())
    if whole is not None:
        return whole  # one formula, or several joined by "and" / ","
    for o, c in (("$$", "$$"), ("$", "$"), ("\\[", "\\]"), ("\\(", "\\)")):
        if rest.startswith(o):
            e = rest.find(c, len(o))
            if e > len(o):
                return rest[len(o):e]
    line = rest.split("\n", 1)[0]
    line = re.split(r"\.(?:\s|$)|\s+(?:I hope|because|since|which)\b", line, maxsplit=1)[0]
    # "Final Answer: The largest $n$ is 34" -- a sentence whose answer follows its last "is"
    k = line.rfind(" is ")
    if k >= 0 and re.match(r"\s*(?:The|the|So|Thus|Hence|Therefore)\b", line):
        line = line[k + 4:]
    line = line.strip().strip("*").strip()
    if _SENTENCE.search(line):  # "Jane started growing 3 hours ago": the sentence's one number
        from rewards._rawanswer import raw_answer

        return raw_answer(line) or line
    return line or None


_SENTENCE = re.compile(r"[a-zA-Z]{3,}\s+[a-zA-Z]{3,}\s+[a-zA-Z]{3,}")  # three words in a row


def _region(text: str, think_opened: bool) -> str | None:
    close = text.rfind("</think>")
    if close >= 0:
        return text[close + len("</think>"):]
    if think_opened or "<think>" in text:
        return None  # still thinking: truncated, or an answer only inside <think>
    return text


def final_answer(text: str, multiple: str = "reject", think_opened: bool = False,
                 raw: bool = True, bare: bool | None = None) -> tuple[str | None, str | None]:
    """(answer, "marked"), or (None, None) when there is no answer.
    ``bare`` (default: as ``raw``): a region that is nothing but a formula
    (``4``, ``$\\frac{1}{3}$``) is its own answer; ``raw``: other unmarked text
    is read by :func:`rewards._rawanswer.raw_answer`."""
    bare = raw if bare is None else bare
    if not text:
        return None, None
    region = _region(text, think_opened)
    if region is None:
        return None, None
    a = region.rfind("<answer>")
    if a >= 0 and multiple == "reject" and len(_answer_blocks(region)) > 1:
        return None, None  # several different <answer> blocks
    if a >= 0:
        inner = region[a + len("<answer>"):]
        e = inner.find("</answer>")
        inner = (inner[:e] if e >= 0 else inner).strip()
        ans, kind = final_answer(inner, multiple, raw=False, bare=bare)
        if ans is None and kind is None and multiple == "reject" and len(boxes(inner)) > 1:
            return None, None
        return (ans, kind) if ans is not None else ((inner, "marked") if inner else (None, None))
    return _marked(region, multiple, raw, bare)


def _answer_blocks(region: str) -> set[str]:
    out, i = set(), 0
    while True:
        a = region.find("<answer>", i)
        if a < 0:
            return out
        e = region.find("</answer>", a)
        if e < 0:  # unclosed: it runs to the end, and so would every later one
            out.add(_key(region[a + 8:]))
            return out
        out.add(_key(region[a + 8:e]))
        i = a + 8


def _marked(region: str, multiple: str, raw: bool, bare: bool):
    bx = boxes(region)
    runs = _runs(region, bx)
    cands = []  # (position, answer)
    if runs:
        if multiple == "reject" and _several(runs):
            box_ans = None
        elif multiple == "all":  # a gold solution that boxes each part of its answer
            box_ans = _run_value([c for r in runs for c in r[2]])
        else:
            box_ans = _run_value(runs[-1][2])
        cands.append((runs[-1][0], box_ans))
    last = runs[-1][0] if runs else -1
    phrases = collections.deque((m for m in _PHRASE.finditer(region) if m.start() > last), maxlen=6)
    vals = [_after_phrase(region, m.end()) for m in phrases]
    gsm = collections.deque(_GSM.finditer(region), maxlen=6)
    vals_gsm = [m.group(1).strip() for m in gsm]
    for ms, vs in ((phrases, vals), (gsm, vals_gsm)):
        if ms:
            if multiple == "reject" and _distinct(vs):
                return None, None  # "The answer is 1. ... The answer is 2."
            cands.append((ms[-1].start(), vs[-1]))
    if cands:
        ans = max(cands, key=lambda c: c[0])[1]
        if ans is None or len(ans) > MAX_ANSWER:
            return None, None
        return ans.strip() or None, "marked" if ans.strip() else None
    whole = _whole_math(region.strip()) if bare else None
    if whole is not None:
        return whole, "marked"
    if not raw:
        return None, None
    from rewards._rawanswer import raw_answer

    ans = raw_answer(region)
    return (ans, "marked") if ans else (None, None)


_ENV = re.compile(r"\$\$([^$]*)\$\$|\$([^$\n]*)\$|\\\[(.*?)\\\]|\\\((.*?)\\\)", re.S)
_WORD = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z]{3,}")


def _whole_math(s: str) -> str | None:
    """The text itself when it is nothing but one math expression (one ``$...$``
    environment, or a short formula without words); else None."""
    if not s or len(s) > 300:
        return None
    envs = list(_ENV.finditer(s))
    if envs and envs[0].start() == 0 and envs[-1].end() == len(s) and all(
            _SEP.match(s[x.end():y.start()].strip()) for x, y in zip(envs, envs[1:])):
        inner = ",".join(next(g for g in m.groups() if g is not None).strip() for m in envs)
        return inner or None
    if "$" not in s and "\\(" not in s and "\\[" not in s and not _WORD.search(s):
        return s
    return None


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def gsm8k_answer(text: str, think_opened: bool = False) -> str | None:
    """GSM8K-style answer: the last ``#### N`` line, else the last number of the
    answer region (GSM8K's own evaluation), thousands commas dropped.

    >>> gsm8k_answer("She has 3 + 4 = 7 apples, so 1,200 in all.\\n#### 1,200"), gsm8k_answer("so 5 then 12.")
    ('1200', '12')
    """
    region = _region(text or "", think_opened)
    if region is None:
        return None
    g = None
    for g in _GSM.finditer(region):
        pass
    src = g.group(1) if g is not None else region[-MAX_RAW:]
    nums = _NUMBER.findall(src)
    if not nums:
        return None
    n = (nums[0] if g is not None else nums[-1]).replace(",", "")
    return n.rstrip(".") or None
