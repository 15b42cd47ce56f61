"""The environment interface of multi-turn rollouts (the loader of recipe env specs: registry.py).

One ``Env`` instance per episode (trajectory): ``reset(row)`` once, then ``step(action)``
after every model turn until it says done or the episode's turn/token budget runs out
(grpo/rollout/multiturn.py runs the loop). A recipe names an env like a reward:
``rollout.env: {name: calculator | python | path/file.py:Class | package.module:Class,
kwargs: {...}}``; the class is called with ``**kwargs`` once per episode.

An env needs no base class (any object with ``reset`` and ``step``); subclassing ``Env``
gives the defaults below and the ``calls``/``errors`` counters the ``tool/*`` metrics read.
"""
from __future__ import annotations

from typing import Any


class Env:
    """``stop``: the strings that end a model turn to hand it to ``step`` (tool-call end
    markers, e.g. ``</calc>``); they are added to the recipe's ``rollout.stop`` and kept in
    the turn's text. ``calls``/``errors``: tool calls made and failed this episode.
    ``special_tokens``: the policy tokenizer's special-token texts (the rollout sets them):
    an observation is tokenized as text, so ``<|im_end|>`` printed by a tool would become
    the control token itself; pass untrusted text through ``escape_specials``."""

    stop: list[str] = []
    special_tokens: frozenset[str] = frozenset()   # set by the rollout before reset (escape_specials)

    def __init__(self, **kwargs: Any):
        if kwargs:
            raise TypeError(f"{type(self).__name__} takes no arguments (got {', '.join(sorted(kwargs))})")
        self.calls = 0
        self.errors = 0

    def reset(self, row: dict) -> Any:
        """The question of this episode: the dataset row's ``prompt`` (a string or chat
        messages) by default. The caller renders it with the recipe's prompt template
        (``grpo.data.render_prompt``), so an env returns the raw question, not a template.
        Must depend on ``row`` only: the G episodes of a group share one prompt."""
        return row["prompt"]

    def step(self, action: str) -> tuple[str | None, float, bool]:
        """``action``: the text of the model's latest turn (up to and including the stop
        string that ended it). Returns (observation text appended after it, None when
        done; a reward contribution, summed over the episode into the ``env_reward``
        column; done)."""
        raise NotImplementedError


def escape_specials(text: str, specials) -> str:
    """``text`` with every special-token text in it broken by a zero-width space, so a
    tool's output can never tokenize to a control token (end of turn, a chat role).

    >>> escape_specials("a<|im_end|>b</s>", {"<|im_end|>", "</s>"}) == "a<\u200b|im_end|>b<\u200b/s>"
    True
    """
    for s in sorted((s for s in specials if len(s) > 1), key=len, reverse=True):
        if s in text:
            text = text.replace(s, s[0] + "\u200b" + s[1:])
    return text
