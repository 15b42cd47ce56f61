r"""Language-consistency reward of DeepSeek-R1 (paper, section 2.3.2): R1-Zero's
chains of thought mixed languages, so R1 adds a reward "calculated as the
proportion of target language words in the CoT".

Words are counted by script: a run of Latin letters is one word (English,
"en"); Chinese has no spaces, so each Han character counts as
:data:`CJK_CHAR_WEIGHT` of a word (Chinese words average ~1.5 characters).
Maths is not language: LaTeX (``$...$``, ``\[...\]``, ``\commands``), code
spans, digits, punctuation and single letters (variables like ``x``) are
ignored.

>>> language_consistency(["Q"], ["<think>Let x be the number of apples.</think><answer>3</answer>"])
[1.0]
>>> language_consistency(["Q"], ["<think>我们先计算 the sum</think>"])  # 5 Han = 3.33 words vs 2
[0.375]
>>> language_consistency(["Q", "Q"], ["<think>首先计算</think>", "<think>$x^2 = 4$</think>"],
...                      language=["zh", "en"])
[1.0, None]
"""

from __future__ import annotations

import re

from rewards._text import completion_text, think_part
from rewards.registry import register

CJK_CHAR_WEIGHT = 1 / 1.5

_ALIASES = {
    "en": "latin", "english": "latin", "latin": "latin", "fr": "latin", "de": "latin", "es": "latin",
    "zh": "han", "zh-cn": "han", "zh-hans": "han", "zh-tw": "han", "zh-hant": "han", "chinese": "han",
    "cn": "han", "han": "han",
    "ja": "kana", "japanese": "kana", "ko": "hangul", "korean": "hangul",
    "ru": "cyrillic", "russian": "cyrillic", "uk": "cyrillic", "ar": "arabic", "arabic": "arabic",
}

# Stripped before counting: code, LaTeX math and commands.
_MATH = re.compile(
    r"```.*?```|`[^`]*`|\$\$.*?\$\$|\$[^$]*\$|\\\[.*?\\\]|\\\(.*?\\\)|\\[a-zA-Z]+\*?|<[^>]{1,20}>", re.S)
_UNITS = re.compile(
    r"(?P<han>[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff])"
    r"|(?P<kana>[\u3040-\u30ff])"
    r"|(?P<hangul>[\uac00-\ud7af\u1100-\u11ff])"
    r"|(?P<latin>[A-Za-z\u00c0-\u024f]{2,}(?:'[A-Za-z]+)?)"
    r"|(?P<cyrillic>[\u0400-\u04ff]{2,})"
    r"|(?P<arabic>[\u0600-\u06ff]{2,})")


def script_counts(text: str) -> dict[str, float]:
    """Weighted word counts per script, maths and symbols removed.

    >>> script_counts("计算 2+2 = four, $\\frac{a}{b}$ and x")
    {'han': 1.3333333333333333, 'latin': 2.0}
    """
    text = _MATH.sub(" ", text)
    counts: dict[str, float] = {}
    for m in _UNITS.finditer(text):
        kind = m.lastgroup
        w = CJK_CHAR_WEIGHT if kind in ("han", "kana", "hangul") else 1.0
        counts[kind] = counts.get(kind, 0.0) + w
    return counts


def _script(lang) -> str:
    key = str(lang).strip().lower().replace("_", "-")
    if key in _ALIASES:
        return _ALIASES[key]
    base = key.split("-")[0]
    if base in _ALIASES:
        return _ALIASES[base]
    raise ValueError(f"unsupported language {lang!r}; known: {sorted(_ALIASES)}")


def consistency(text: str, target: str = "en") -> float | None:
    """Fraction of the words of ``text`` in ``target``'s script; None if no words.
    Japanese counts kanji (Han) as its own too."""
    script = _script(target)
    counts = script_counts(text)
    total = sum(counts.values())
    if total == 0:
        return None
    own = counts.get(script, 0.0) + (counts.get("han", 0.0) if script == "kana" else 0.0)
    return own / total


@register("language_consistency")
def language_consistency(prompts, completions, language=None, target: str = "en", **kwargs):
    """Proportion of the chain of thought (``<think>`` block, else the whole
    completion) written in the target language: the per-sample ``language``
    column when given, else ``target``.  None when the CoT has no words."""
    n = len(completions)
    langs = language if language is not None else [None] * n
    prompts = prompts if prompts is not None else [None] * n
    out = []
    for p, c, lang in zip(prompts, completions, langs):
        cot = think_part(completion_text(c), p)
        out.append(consistency(cot, lang or target))
    return out
