"""Environments for multi-turn, tool-using rollouts (docs/TOOLS.md): the interface and
loader (base.py, registry.py), and the built-in ``calculator`` (calculator.py) and ``python`` (python_tool.py)."""
from .base import Env, escape_specials
from .registry import builtin_envs, load_env, make_env_factory

__all__ = ["Env", "builtin_envs", "escape_specials", "load_env", "make_env_factory"]
