r"""Format reward of DeepSeek-R1-Zero: "enforces the model to put its thinking
process between '<think>' and '</think>' tags" (DeepSeek-R1 paper, 2.2.2), with
the answer in ``<answer>...</answer>`` as in the R1-Zero template (Table 1).

The R1-Zero prompt ends with "Assistant: <think>", so the completion starts
*inside* the think block; when ``prompts[i]`` ends with ``<think>`` the tag is
put back before checking (``think_in_prompt`` forces it for chat templates
that add it invisibly, e.g. the DeepSeek-R1-Distill ones).

>>> think_format(["Q"], ["<think>a</think>\n<answer>1</answer>"])
[1.0]
>>> think_format(["User: Q\nAssistant: <think>"], ["a</think> <answer>1</answer>"])
[1.0]
>>> think_format(["Q"], ["<think>a</think><answer>1</answer> extra"]),\
... think_format_soft(["Q"], ["intro <think>a</think> <answer>1</answer> extra"])
([0.0], [1.0])
>>> think_format(["Q"], ["<think>a</think><think>b</think><answer>1</answer>"])
[0.0]
"""

from __future__ import annotations

import re

from rewards._text import completion_text, prompt_opens_think, THINK_OPEN
from rewards.registry import register

# Exactly one think block then one answer block, nothing but whitespace around;
# the tempered dots forbid a second <think>/<answer> tag inside either block.
_STRICT = re.compile(
    r"\s*<think>(?:(?!</?think>|</?answer>).)*</think>\s*<answer>(?:(?!</?answer>|</?think>).)*</answer>\s*",
    re.S)
_SOFT = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.S)


def _text(prompt, completion, think_in_prompt) -> str:
    text = completion_text(completion)
    opened = prompt_opens_think(prompt) if think_in_prompt is None else think_in_prompt
    if opened and not text.lstrip().startswith(THINK_OPEN):
        text = THINK_OPEN + text
    return text


@register("think_format")
def think_format(prompts, completions, strict: bool = True, think_in_prompt: bool | None = None, **kwargs):
    """1.0 if the completion is ``<think>...</think> <answer>...</answer>``, else 0.0.

    strict: the whole completion must be exactly that (one think block, nothing
    after the answer); otherwise the pattern may appear anywhere.
    think_in_prompt: None = detect from the prompt text; True/False to force.
    """
    pat = _STRICT if strict else _SOFT
    prompts = prompts if prompts is not None else [None] * len(completions)
    out = []
    for p, c in zip(prompts, completions):
        t = _text(p, c, think_in_prompt)
        ok = pat.fullmatch(t) if strict else pat.search(t)
        out.append(1.0 if ok else 0.0)
    return out


@register("think_format_soft")
def think_format_soft(prompts, completions, think_in_prompt: bool | None = None, **kwargs):
    """:func:`think_format` with ``strict=False``."""
    return think_format(prompts, completions, strict=False, think_in_prompt=think_in_prompt)
