"""GRPO's maths as small pure tensor functions, chosen by name from registries.

Shapes: ``B`` prompts, ``G`` samples per prompt, ``N = B*G`` completions, ``T`` tokens.
Rewards arrive flat ``[N]`` in prompt-major order (the G samples of a prompt adjacent).

>>> import torch
>>> r = torch.tensor([1., 0., 0., 0.,   1., 1., 1., 1.])          # B=2, G=4
>>> ADVANTAGES["dr_grpo"](r, 4)
tensor([ 0.7500, -0.2500, -0.2500, -0.2500,  0.0000,  0.0000,  0.0000,  0.0000])
>>> ADVANTAGES["rloo"](r, 4)[:2]
tensor([ 1.0000, -0.3333])
"""
from __future__ import annotations

import difflib
from typing import Callable

import torch

ADVANTAGES: dict[str, Callable] = {}
KL_ESTIMATORS: dict[str, Callable] = {}
AGGREGATIONS: dict[str, Callable] = {}


def _register(table: dict, name: str):
    def deco(fn):
        table[name] = fn
        return fn
    return deco


# --------------------------------------------------------------------------- advantages
@_register(ADVANTAGES, "grpo")
def grpo_advantage(rewards: torch.Tensor, group_size: int, eps: float = 1e-4) -> torch.Tensor:
    """(r - group mean) / (group std + eps): DeepSeekMath's outcome supervision (Shao et al. 2024).

    The std is the unbiased sample std, as in TRL; a group whose rewards are all equal
    gets zero advantage (and so no gradient).
    """
    r = rewards.view(-1, group_size)                                   # [B, G]
    adv = (r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + eps)
    return adv.view(-1)


@_register(ADVANTAGES, "dr_grpo")
def dr_grpo_advantage(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """r - group mean, no std scaling: Dr. GRPO (Liu et al. 2025, "Understanding R1-Zero-Like
    Training") shows the std division over-weights nearly-solved and nearly-failed prompts."""
    r = rewards.view(-1, group_size)
    return (r - r.mean(1, keepdim=True)).view(-1)


@_register(ADVANTAGES, "rloo")
def rloo_advantage(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """r minus the mean of the *other* G-1 samples (leave-one-out baseline, Ahmadian et al. 2024):
    an unbiased baseline, equal to G/(G-1) times the Dr. GRPO advantage."""
    r = rewards.view(-1, group_size)
    others = (r.sum(1, keepdim=True) - r) / (group_size - 1)
    return (r - others).view(-1)


def zero_std_groups(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """[B] bool: groups whose G rewards are all equal (no learning signal; DAPO filters them).

    >>> zero_std_groups(torch.tensor([1., 1., 0., 1.]), 2)
    tensor([ True, False])
    """
    r = rewards.view(-1, group_size)
    return (r.max(1).values - r.min(1).values) == 0


# --------------------------------------------------------------------------- policy loss
def clipped_surrogate(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor,
                      clip_low: float, clip_high: float) -> tuple[torch.Tensor, dict]:
    """PPO's clipped objective per token, as a loss to minimise; ``[N, T]`` in, ``[N, T]`` out.

    Separate ``clip_low``/``clip_high`` is DAPO's clip-higher (Yu et al. 2025): a larger
    upper bound lets low-probability tokens grow, which keeps entropy from collapsing.

    >>> lp = torch.log(torch.tensor([[1.5, 0.5]])); old = torch.zeros(1, 2)
    >>> loss, m = clipped_surrogate(lp, old, torch.tensor([1.0]), 0.2, 0.2)
    >>> loss                      # ratio 1.5 clipped to 1.2; ratio 0.5 unclipped for A>0
    tensor([[-1.2000, -0.5000]])
    >>> m["clip_high"], m["clip_low"]
    (tensor([[ True, False]]), tensor([[False, False]]))
    """
    ratio = torch.exp(logp - old_logp)
    a = adv.unsqueeze(-1) if adv.dim() == 1 else adv                    # [N, 1], or per token [N, T]
    unclipped = ratio * a
    clipped = torch.clamp(ratio, 1 - clip_low, 1 + clip_high) * a
    loss = -torch.minimum(unclipped, clipped)
    # A token is "clipped" when the clipped branch is the active one (its gradient is zero).
    is_clipped = clipped < unclipped
    metrics = {"clip_high": is_clipped & (a > 0) & (ratio > 1 + clip_high),
               "clip_low": is_clipped & (a < 0) & (ratio < 1 - clip_low),
               "ratio": ratio.detach()}
    return loss, metrics


# --------------------------------------------------------------------------- KL estimators
# Schulman, "Approximating KL Divergence" (2020). Inputs are per-token log-probs under the
# policy and the reference, for tokens sampled from the policy.
@_register(KL_ESTIMATORS, "k1")
def kl_k1(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    return logp - ref_logp


@_register(KL_ESTIMATORS, "k2")
def kl_k2(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    return 0.5 * (logp - ref_logp) ** 2


@_register(KL_ESTIMATORS, "k3")
def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Unbiased and always >= 0; the estimator of DeepSeekMath's GRPO objective (eq. 4).

    >>> kl_k3(torch.tensor([0.0]), torch.tensor([0.0]))
    tensor([0.])
    """
    d = ref_logp - logp
    return torch.exp(d) - d - 1


# --------------------------------------------------------------------------- aggregation
# Each takes the per-token loss and mask of one micro-batch plus totals of the *whole*
# batch, and returns that micro-batch's share, so summing the micro-batches' gradients
# gives exactly the full-batch loss: gradient accumulation needs no extra scaling.
@_register(AGGREGATIONS, "token_mean")
def agg_token_mean(loss, mask, n_tokens: int, n_seqs: int, constant: int) -> torch.Tensor:
    """Every token weighs the same across the batch (DAPO's token-level loss)."""
    return (loss * mask).sum() / max(n_tokens, 1)


@_register(AGGREGATIONS, "seq_mean")
def agg_seq_mean(loss, mask, n_tokens: int, n_seqs: int, constant: int) -> torch.Tensor:
    """Mean over each sequence, then over sequences: the original GRPO objective. Dr. GRPO
    notes it favours long wrong answers (their per-token penalty is diluted)."""
    per_seq = (loss * mask).sum(-1) / mask.sum(-1).clamp(min=1)
    return per_seq.sum() / max(n_seqs, 1)


@_register(AGGREGATIONS, "constant")
def agg_constant(loss, mask, n_tokens: int, n_seqs: int, constant: int) -> torch.Tensor:
    """Sum over tokens divided by a constant (N * max length): Dr. GRPO's unbiased variant."""
    return (loss * mask).sum() / (max(n_seqs, 1) * constant)


# --------------------------------------------------------------------------- token utilities
def token_logprobs(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """log p(ids) from ``[N, T, V]`` logits, without materialising a second [N, T, V] tensor.

    >>> token_logprobs(torch.zeros(1, 2, 4), torch.tensor([[0, 3]]))
    tensor([[-1.3863, -1.3863]])
    """
    picked = torch.gather(logits, -1, ids.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Per-token entropy ``[N, T]`` of the sampling distribution.

    >>> entropy_from_logits(torch.zeros(1, 1, 4))
    tensor([[1.3863]])
    """
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


def get(table: dict, name: str, kind: str) -> Callable:
    """The function a recipe names: a registry name, ``path/file.py:fn`` or ``module:fn``
    (a user's own advantage estimator, policy loss or aggregation, as for rewards). Bad
    names raise a one-line ValueError.

    >>> get(ADVANTAGES, "rloo", "advantage").__name__
    'rloo_advantage'
    >>> get(ADVANTAGES, "rlo", "advantage")
    Traceback (most recent call last):
    ...
    ValueError: unknown advantage 'rlo'; did you mean 'rloo'? (known: dr_grpo, grpo, rloo; or path/file.py:fn, module:fn)
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{kind} must be a non-empty name, got {name!r}")
    if name in table:
        return table[name]
    if ":" not in name:
        near = difflib.get_close_matches(name, list(table), n=1, cutoff=0.5)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise ValueError(f"unknown {kind} {name!r}{hint} (known: {', '.join(sorted(table))}; "
                         "or path/file.py:fn, module:fn)")
    return _load_user_fn(name, kind)


_USER_FILES: dict[str, object] = {}     # absolute path -> module: a user's file runs once per process


def _load_user_fn(spec: str, kind: str) -> Callable:
    from rewards.registry import import_target          # the one loader of users' specs (rewards, envs)
    module, attr, where = import_target(spec, ValueError, kind, f"{kind} file",
                                        f"_grpo_user_{kind.replace(' ', '_')}", cache=_USER_FILES)
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ValueError(f"{kind} {spec!r}: {where} has no function {attr!r}")
    return fn
