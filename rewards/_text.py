r"""Text helpers shared by the reward functions: turning TRL completions (plain
strings or chat message lists) into text, and pulling out the final answer.

>>> completion_text([{"role": "assistant", "content": "hi"}])
'hi'
>>> extract_answer("<think>2+2</think> <answer>4</answer>")
'4'
>>> extract_answer(r"so the result is \boxed{\frac{1}{2}}.")
'\\frac{1}{2}'
>>> extract_answer("Thus, the final answer is: 12 apples.")
'12 apples'
>>> extract_answer("no answer here") is None
True
"""

from __future__ import annotations

from rewards._boxes import last_boxed  # noqa: F401 (public here too)

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def _text(x, from_list) -> str:
    """A string as it is; a message dict's content; a list of messages by ``from_list``."""
    if x is None:
        return ""
    if isinstance(x, str):
        return x
    if isinstance(x, dict):
        return _content(x.get("content"))
    if isinstance(x, (list, tuple)):
        return from_list(x)
    return str(x)


def _assistant_text(msgs) -> str:
    msgs = [m for m in msgs if isinstance(m, dict)]
    asst = [m for m in msgs if m.get("role", "assistant") == "assistant"] or msgs
    return "".join(_content(m.get("content")) for m in asst)


def _last_text(msgs) -> str:
    if not msgs:
        return str(msgs)
    return _content(msgs[-1].get("content")) if isinstance(msgs[-1], dict) else str(msgs[-1])


def completion_text(c) -> str:
    """Text of one completion: a string, a chat message dict, or a list of
    messages (TRL's conversational format).  For message lists the contents of
    all assistant messages are joined (multi-part ``content`` lists too)."""
    return _text(c, _assistant_text)


def prompt_text(p) -> str:
    """Text of a prompt; for message lists, the content of the last message
    (that is where an R1-Zero style ``Assistant: <think>`` would be)."""
    return _text(p, _last_text)


def _content(content) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multimodal parts: [{"type": "text", "text": ...}]
        return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
    return str(content)


def prompt_opens_think(prompt) -> bool:
    """True when the prompt ends inside an open ``<think>`` block, as the
    R1-Zero template "... Assistant: <think>" does (DeepSeek-R1 paper, Table 1)."""
    t = prompt_text(prompt).rstrip()
    return t.endswith(THINK_OPEN)


def with_think_prefix(text: str, prompt) -> str:
    """Re-attach the ``<think>`` that the prompt already opened, if any."""
    if prompt_opens_think(prompt) and not text.lstrip().startswith(THINK_OPEN):
        return THINK_OPEN + text
    return text


def think_part(text: str, prompt=None) -> str:
    """The chain of thought: the ``<think>`` block (or, when the prompt opened it,
    everything before ``</think>``); otherwise the whole text."""
    text = with_think_prefix(text, prompt)
    start = text.find(THINK_OPEN)
    if start < 0:
        return text
    end = text.find(THINK_CLOSE, start)
    return text[start + len(THINK_OPEN): end if end >= 0 else len(text)]


def extract_answer(text: str, multiple: str = "last") -> str | None:
    """The final answer of a completion, or None (see :mod:`rewards._extract`:
    after ``</think>``, in the last ``<answer>`` block, the last ``\\boxed{}``
    run / "the final answer is X" / ``#### X``).  Unmarked text is no answer."""
    from rewards._extract import final_answer

    ans, kind = final_answer(text or "", multiple=multiple, raw=False)
    return ans if kind == "marked" else None


def extract_gold(gold) -> str | None:
    """Normalize a dataset's gold answer: GSM8K's ``#### 42``, MATH's ``\\boxed{}``
    solutions and "The final answer is" texts are reduced to the answer itself.

    >>> extract_gold("She pays 3*4=12\\n#### 12")
    '12'
    >>> extract_gold(7)
    '7'
    """
    from rewards._extract import MAX_ANSWER, final_answer
    from rewards._rawanswer import raw_answer

    if gold is None:
        return None
    gold = str(gold).strip()
    if not gold:
        return None
    ans, kind = final_answer(gold, multiple="last", raw=False, bare=True)
    if kind == "marked":
        return ans
    return (raw_answer(gold) or gold) if len(gold) > MAX_ANSWER // 4 else gold  # a long solution text
