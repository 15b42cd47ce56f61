"""The env loader: built-in envs by name, users' by ``file.py:Class`` (``rollout.env.name``),
and the checked factory of one episode's env. Apart from base.py so that the built-in envs
(which subclass ``base.Env``) and their loader import in one direction only."""
from __future__ import annotations

import difflib
from typing import Any, Callable

from ..config import ConfigError
from .calculator import Calculator
from .python_tool import PythonTool


def builtin_envs() -> dict[str, Callable]:
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
