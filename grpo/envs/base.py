"""The environment interface of multi-turn rollouts, and the loader of recipe env specs.

One ``Env`` instance per episode (trajectory): ``reset(row)`` once, then ``step(action)``
after every model turn until it says done or the episode's turn/token budget runs out
(grpo/rollout/multiturn.py runs the loop). A recipe names an env like a reward:
``rollout.env: {name: calculator | python | path/file.py:Class | package.module:Class,
kwargs: {...}}``; the class is called with ``**kwargs`` once per episode.

An env needs no base class (any object with ``reset`` and ``step``); subclassing ``Env``
gives the defaults below and the ``calls``/``errors`` counters the ``tool/*`` metrics read.
"""
from __future__ import annotations

import difflib
from typing import Any, Callable

from ..config import ConfigError


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


def builtin_envs() -> dict[str, Callable]:
    from .calculator import Calculator
    from .python_tool import PythonTool
    return {"calculator": Calculator, "python": PythonTool}


def load_env(spec: str) -> Callable:
    """The env class (or factory) a recipe's ``rollout.env.name`` names.

    >>> load_env("calculator").__name__
    'Calculator'
    >>> load_env("calculater")
    Traceback (most recent call last):
    ...
    grpo.recipe.ConfigError: rollout.env: unknown env 'calculater'; did you mean 'calculator'? (built in: calculator, python)
    """
    spec = (spec or "").strip()
    table = builtin_envs()
    if ":" not in spec:
        if spec in table:
            return table[spec]
        hint = difflib.get_close_matches(spec, list(table), n=1, cutoff=0.5)
        raise ConfigError(f"rollout.env: unknown env {spec!r}{f'; did you mean {hint[0]!r}?' if hint else ''} "
                          f"(built in: {', '.join(sorted(table))})")
    from rewards.registry import import_target        # the one loader of users' specs
    module, attr, where = import_target(spec, ConfigError, "rollout.env", "rollout.env: file", "_grpo_user_env",
                                        what="class")
    cls = getattr(module, attr, None)
    if cls is None or not callable(cls):
        public = sorted(n for n, v in vars(module).items() if isinstance(v, type) and not n.startswith("_"))
        raise ConfigError(f"rollout.env: {where} has no class {attr!r} (defines: {', '.join(public) or 'nothing'})")
    return cls


def make_env_factory(env_cfg) -> Callable[[], Any]:
    """A no-argument constructor of one episode's env, checked once now (bad kwargs, a
    missing ``reset``/``step``: one line at start-up, not at step 1)."""
    cls, kwargs = load_env(env_cfg.name), dict(env_cfg.kwargs)
    factory = lambda: cls(**kwargs)  # noqa: E731
    try:
        probe = factory()
    except (TypeError, ValueError) as e:
        raise ConfigError(f"rollout.env {env_cfg.name!r}: {e}") from None
    for m in ("reset", "step"):
        if not callable(getattr(probe, m, None)):
            raise ConfigError(f"rollout.env {env_cfg.name!r}: the env has no {m}() method")
    stops = getattr(probe, "stop", [])
    if not isinstance(stops, (list, tuple)) or not all(isinstance(s, str) for s in stops):
        raise ConfigError(f"rollout.env {env_cfg.name!r}: env.stop must be a list of strings, not {stops!r}")
    return factory
