"""The trainer's few call sites for multi-turn rollouts, kept out of trainer.py.

``wrap_engine`` makes the multi-turn engine the trainer's engine when the recipe sets
``rollout.env``; ``episode_prompts`` hands it each prompt's dataset row; ``env_columns``
gives rewards the episode's env reward (``env_reward`` column, the ``env_reward`` reward).
"""
from __future__ import annotations

from typing import Callable

from rewards import register

from ..config import ConfigError


def wrap_engine(cfg, engine, tok, render: Callable, log: Callable[[str], None] | None = None):
    r = cfg.rollout
    if r.env is None:
        return engine
    if cfg.algorithm.routing_replay:
        raise ConfigError("algorithm.routing_replay with rollout.env is not supported yet")
    from ..rollout.multiturn import MultiTurnEngine
    from .registry import make_env_factory
    if not callable(getattr(engine, "generate_ids", None)):
        raise ConfigError(f"rollout.env needs the hf or vllm engine (rollout.engine={r.engine} "
                          "cannot continue an episode from token ids)")
    if getattr(engine, "synced_gpus", False):
        raise ConfigError("rollout.env with several processes needs rollout.engine=vllm (the hf engine's "
                          "synced generate would wait on ranks whose episodes take fewer turns)")
    return MultiTurnEngine(engine, make_env_factory(r.env), tok, render, r.max_turns, r.episode_tokens,
                           r.env.workers, log)


def episode_prompts(cfg, prompts: list[str], rows: list[dict]) -> list[str]:
    """With an env: the prompts carrying their rows (EnvPrompt); else unchanged."""
    if cfg.rollout.env is None:
        return prompts
    from ..rollout.multiturn import with_rows
    return with_rows(prompts, rows)


def env_columns(comps: list) -> dict:
    """Columns rewards may ask for: ``env_reward`` (the env's summed step rewards) and
    ``tool_calls`` per completion; {} for single-turn completions."""
    if not any(getattr(c, "tools", None) is not None for c in comps):
        return {}
    return {"env_reward": [c.tools.reward if c.tools else 0.0 for c in comps],
            "tool_calls": [c.tools.calls if c.tools else 0 for c in comps]}


@register("env_reward")
def env_reward(prompts, completions, env_reward=None, **kw) -> list[float | None]:
    """The env's own reward for each episode (the sum of what its ``step`` returned)."""
    if env_reward is None:
        return [None] * len(completions)
    return [float(x) for x in env_reward]
