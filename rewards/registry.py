"""Reward registry and loader.

A reward function has the TRL signature ``fn(prompts, completions, **columns)
-> list[float | None]``.  Built-ins register themselves by name with
:func:`register`; :func:`load` resolves a spec that is either a registry name,
``package.module:fn`` or ``path/to/file.py:fn`` (so a recipe can point at a
user's own file without packaging it).

>>> @register("always_one")
... def always_one(prompts, completions, **kw):
...     return [1.0] * len(completions)
>>> load("always_one") is always_one
True
>>> sorted(required_columns(lambda prompts, completions, answer, k=1, **kw: 0))
['answer']
>>> del REGISTRY["always_one"]
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
import warnings
from typing import Callable

REGISTRY: dict[str, Callable] = {}

# Parameters the trainer always passes itself; they are never dataset columns.
_NOT_COLUMNS = frozenset({"prompts", "completions"})


class RewardLoadError(ValueError):
    """A reward spec could not be resolved.  The message is always one line."""

    def __init__(self, msg: str):
        super().__init__(" ".join(str(msg).split()))


def register(name: str):
    """Decorator: add a reward function to :data:`REGISTRY` under ``name``.

    Re-registering the same name from a different module warns (a user's file
    silently replacing a built-in would be hard to debug) and then replaces it.
    """
    if not isinstance(name, str) or not name:
        raise ValueError("reward name must be a non-empty string")

    def deco(fn: Callable) -> Callable:
        old = REGISTRY.get(name)
        if old is not None and old is not fn and _origin(old) != _origin(fn):
            warnings.warn(f"reward {name!r} re-registered: {_origin(old)} replaced by {_origin(fn)}",
                          stacklevel=2)
        REGISTRY[name] = fn
        return fn

    return deco


def _origin(fn) -> str:
    fn = _unwrap(fn)
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def _unwrap(fn):
    while isinstance(fn, functools.partial):
        fn = fn.func
    return fn


def _known() -> str:
    return ", ".join(sorted(REGISTRY))


def load(spec: str) -> Callable:
    """Resolve ``spec`` to a reward function.

    >>> load("math_acc")
    Traceback (most recent call last):
    ...
    rewards.registry.RewardLoadError: unknown reward 'math_acc'; did you mean 'math_accuracy'? (known: ...)
    """
    if callable(spec):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise RewardLoadError(f"reward spec must be a non-empty string, got {spec!r}")
    spec = spec.strip()
    if ":" not in spec:
        return _load_registered(spec)
    module, attr, where = import_target(spec, RewardLoadError, "reward spec", "reward file", "_grpo_user_reward")
    fn = getattr(module, attr, None)
    if fn is None:
        public = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                        and getattr(v, "__module__", None) == module.__name__)
        hint = difflib.get_close_matches(attr, public, n=1)
        extra = f"; did you mean {hint[0]!r}?" if hint else ""
        raise RewardLoadError(f"reward {where} has no function {attr!r}{extra} "
                              f"(defines: {', '.join(public) or 'nothing'})")
    if not callable(fn):
        raise RewardLoadError(f"reward {where}: {attr!r} is a {type(fn).__name__}, not a function")
    return fn


def _load_registered(name: str) -> Callable:
    if name in REGISTRY:
        return REGISTRY[name]
    close = difflib.get_close_matches(name, list(REGISTRY), n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise RewardLoadError(f"unknown reward {name!r}{hint} (known: {_known()})")


def import_target(spec: str, error: type[Exception], label: str, file_label: str, prefix: str,
                  what: str = "function", cache: dict | None = None):
    """``path/file.py:name`` or ``package.module:name`` -> (module, name, where): the one
    parser and importer of users' specs (rewards, ``rollout.env``, the algorithm registries);
    the caller looks ``name`` up with its own message. Failures are one ``error`` line:
    ``"{label} {spec!r}: ..."``, ``"cannot import module ... for {label} {spec!r}"``,
    ``"{file_label} {path!r} ..."``; ``where`` is ``"file 'path'"`` or ``"module 'name'"``.
    ``cache``: files already imported, by absolute path (a registry resolved every step runs
    the user's file once).

    >>> import_target("os.path:join", ValueError, "reward spec", "reward file", "_p")[1:]
    ('join', "module 'os.path'")
    >>> import_target("my_rewards.py:f", ValueError, "reward spec", "reward file", "_p")
    Traceback (most recent call last):
    ...
    ValueError: reward file 'my_rewards.py' not found (from spec 'my_rewards.py:f'; looked at ...)
    >>> import_target("os.path:1x", ValueError, "reward spec", "reward file", "_p")
    Traceback (most recent call last):
    ...
    ValueError: reward spec 'os.path:1x': '1x' after ':' is not a function name
    """
    target, _, attr = spec.strip().rpartition(":")
    if not attr.isidentifier():
        raise error(f"{label} {spec!r}: {attr!r} after ':' is not a {what} name")
    if not (target.endswith(".py") or "/" in target or os.sep in target):
        try:
            return importlib.import_module(target), attr, f"module {target!r}"
        except ImportError as e:
            raise error(f"cannot import module {target!r} for {label} {spec!r}: {e}") from None
    full = os.path.abspath(os.path.expanduser(target))
    module = cache.get(full) if cache is not None else None
    if module is None:
        module = import_user_file(target, f"spec {spec!r}", prefix, error, file_label)
        if cache is not None:
            cache[full] = module
    return module, attr, f"file {target!r}"


def import_user_file(path: str, origin: str, prefix: str, error: type[Exception], label: str):
    """Import the user's Python file ``path`` as a module (rewards, envs: ``file.py:name``
    specs); failures are one ``error`` line ``"{label} {path!r} ..."`` naming ``origin``.
    A stable, unique module name per file (``prefix`` + stem + path hash) so that pickling
    and re-loading work and two user files both called rewards.py do not clash in sys.modules."""
    full = os.path.abspath(os.path.expanduser(path))
    if not os.path.isfile(full):
        raise error(f"{label} {path!r} not found (from {origin}; looked at {full})")
    stem = os.path.splitext(os.path.basename(full))[0]
    modname = f"{prefix}_{stem}_{hashlib.sha1(full.encode()).hexdigest()[:8]}"
    mspec = importlib.util.spec_from_file_location(modname, full)
    if mspec is None or mspec.loader is None:
        raise error(f"{label} {path!r} cannot be imported as Python")
    module = importlib.util.module_from_spec(mspec)
    sys.modules[modname] = module
    try:
        mspec.loader.exec_module(module)
    except Exception as e:
        sys.modules.pop(modname, None)
        raise error(f"{label} {path!r} failed to import: {type(e).__name__}: {e}") from e
    return module


def required_columns(fn: Callable) -> set[str]:
    """Dataset columns ``fn`` needs: its parameters without defaults other than
    ``prompts``/``completions`` and ``*args``/``**kwargs``.  Arguments already
    bound by :func:`functools.partial` are not required.

    >>> def f(prompts, completions, answer, tests=None, **kw): ...
    >>> required_columns(f)
    {'answer'}
    >>> required_columns(functools.partial(f, answer="1"))
    set()
    """
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return set()
    out = set()
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in _NOT_COLUMNS:
            continue
        if p.default is p.empty:
            out.add(p.name)
    return out
