"""Policy losses by name and rollout/trainer mismatch correction: small pure tensor functions.

Every policy loss maps per-token log-probs under the current policy ``logp`` and the
proximal ("old") policy ``old_logp`` ``[N, T]``, the advantages ``[N]`` and the loss mask
``[N, T]`` to a per-token loss to minimise ``[N, T]`` and metrics (boolean clip masks and the
ratio). On-policy (``logp == old_logp`` in value) every one of them has the gradient
``-A * grad log pi``; they differ in how they damp off-policy tokens.

>>> lp = torch.log(torch.tensor([[1.5, 0.5]])); old = torch.zeros(1, 2); m = torch.ones(1, 2)
>>> POLICY_LOSSES["ppo_clip"](lp, old, torch.tensor([1.0]), m, 0.2, 0.2)[0]
tensor([[-1.2000, -0.5000]])
"""
from __future__ import annotations

from typing import Callable

import torch

from . import core as _A
from .core import _register

POLICY_LOSSES: dict[str, Callable] = {}


def _seq_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked mean over the last dim, ``[N, T] -> [N]``."""
    return (x * mask).sum(-1) / mask.sum(-1).clamp(min=1)


@_register(POLICY_LOSSES, "ppo_clip")
def ppo_clip_loss(logp, old_logp, adv, mask, clip_low: float, clip_high: float):
    """PPO's token-level clipped surrogate (Schulman et al. 2017) with DAPO's clip-higher
    (looked up on the module at call time: one home, algorithms.clipped_surrogate)."""
    return _A.clipped_surrogate(logp, old_logp, adv, clip_low, clip_high)


@_register(POLICY_LOSSES, "gspo")
def gspo_loss(logp, old_logp, adv, mask, clip_low: float, clip_high: float):
    """GSPO (Zheng et al. 2025, Qwen3 team, "Group Sequence Policy Optimization"): one ratio per
    sequence, the length-normalised s_i = exp(mean_t log(pi/pi_old)), clipped as a whole.

    Written as GSPO-token (their eq. 13): every token carries the value s_i and the gradient
    s_i * grad log pi_t, so ``loss_agg: seq_mean`` gives the paper's objective exactly (with
    token_mean longer sequences weigh more). The paper clips far tighter than PPO
    (clip_low 3e-4, clip_high 4e-4): the ratio is a geometric mean.

    >>> lp = torch.log(torch.tensor([[2.0, 0.5]])); old = torch.zeros(1, 2); m = torch.ones(1, 2)
    >>> loss, met = gspo_loss(lp, old, torch.tensor([1.0]), m, 0.2, 0.2)
    >>> loss                      # s = exp(mean(log 2, log .5)) = 1: inside the band
    tensor([[-1., -1.]])
    >>> gspo_loss(lp, old, torch.tensor([1.0]), torch.tensor([[1., 0.]]), 0.2, 0.2)[0]  # s = 2 -> 1.2
    tensor([[-1.2000, -1.2000]])
    """
    log_s = _seq_mean(logp - old_logp, mask).unsqueeze(-1)                 # [N, 1]
    # value s_i, gradient s_i * grad log pi_t (stop-gradient trick of GSPO-token)
    s_tok = torch.exp(log_s.detach() + logp - logp.detach())               # [N, T]
    a = adv.unsqueeze(-1) if adv.dim() == 1 else adv      # [N, 1], or per token [N, T]
    unclipped = s_tok * a
    clipped = torch.clamp(s_tok, 1 - clip_low, 1 + clip_high) * a
    loss = -torch.minimum(unclipped, clipped)
    is_clipped = clipped < unclipped
    s = torch.exp(log_s.detach()).expand_as(logp)
    return loss, {"clip_high": is_clipped & (a > 0) & (s > 1 + clip_high),
                  "clip_low": is_clipped & (a < 0) & (s < 1 - clip_low), "ratio": s}


@_register(POLICY_LOSSES, "cispo")
def cispo_loss(logp, old_logp, adv, mask, clip_low: float, clip_high: float):
    """CISPO (MiniMax-M1, 2025): REINFORCE with a clipped, stop-gradient IS weight,
    ``-sg(min(r, 1 + clip_high)) * A * log pi``. Unlike PPO no token loses its gradient: a
    clipped token still learns, with a bounded weight. Only the upper bound is applied, as
    in the paper (``clip_low`` is unused).

    >>> lp = torch.log(torch.tensor([[1.5, 0.5]])); old = torch.zeros(1, 2); m = torch.ones(1, 2)
    >>> loss, met = cispo_loss(lp, old, torch.tensor([1.0]), m, 0.2, 0.2)
    >>> loss                      # -(1.2 * log 1.5), -(0.5 * log 0.5)
    tensor([[-0.4866,  0.3466]])
    >>> met["clip_high"]
    tensor([[ True, False]])
    """
    ratio = torch.exp(logp - old_logp).detach()
    w = torch.clamp(ratio, max=1 + clip_high)
    a = adv.unsqueeze(-1) if adv.dim() == 1 else adv      # [N, 1], or per token [N, T]
    loss = -(w * a) * logp
    return loss, {"clip_high": ratio > 1 + clip_high, "clip_low": torch.zeros_like(ratio, dtype=torch.bool),
                  "ratio": ratio}


@_register(POLICY_LOSSES, "sapo")
def sapo_loss(logp, old_logp, adv, mask, clip_low: float, clip_high: float,
              tau_pos: float = 1.0, tau_neg: float = 1.05):
    """SAPO (Gao et al. 2025, Qwen, "Soft Adaptive Policy Optimization"): a smooth gate
    instead of the hard clip, ``-A * (4 / tau) * sigmoid(tau * (r - 1))``, whose gradient
    weight ``4 sigma'(tau (r-1)) r`` is 1 on-policy and decays smoothly off-policy (tau_neg >
    tau_pos damps negative-advantage tokens faster). ``clip_*`` only set the reported
    "clipped" tokens (gradient weight below one half).

    >>> lp = torch.zeros(1, 2, requires_grad=True); m = torch.ones(1, 2)
    >>> loss, _ = sapo_loss(lp, lp.detach(), torch.tensor([1.0]), m, 0.2, 0.2)
    >>> loss.sum().backward(); lp.grad          # on-policy: exactly -A per token
    tensor([[-1., -1.]])
    """
    ratio = torch.exp(logp - old_logp)
    a = adv.unsqueeze(-1) if adv.dim() == 1 else adv      # [N, 1], or per token [N, T]
    tau = torch.where(a > 0, torch.full_like(a, tau_pos), torch.full_like(a, tau_neg))
    gate = torch.sigmoid(tau * (ratio - 1)) * 4 / tau
    loss = -gate * a
    r = ratio.detach()
    sg = torch.sigmoid(tau * (r - 1))
    weak = 4 * sg * (1 - sg) * r < 0.5
    return loss, {"clip_high": weak & (r > 1), "clip_low": weak & (r < 1), "ratio": r}


# Each loss's own paper defaults, used where a recipe leaves ``algorithm.clip_low`` /
# ``clip_high`` unset (a user's ``file.py:fn`` gets PPO's).
LOSS_DEFAULTS: dict[str, tuple[float, float]] = {
    "ppo_clip": (0.2, 0.2),        # PPO (Schulman et al. 2017); DAPO raises clip_high to 0.28
    "gspo": (3e-4, 4e-4),          # GSPO (Zheng et al. 2025, sec. 5.1): the ratio is a geometric mean
    "cispo": (0.2, 4.0),           # CISPO: weight cap 1 + 4 = 5 (ScaleRL's eps_max; TRL's recipe); low unused
    "sapo": (0.2, 0.2),            # SAPO: no clip; the bounds only name the tokens reported as damped
}


def clip_defaults(name: str) -> tuple[float, float]:
    """``(clip_low, clip_high)`` for a policy loss by name.

    >>> clip_defaults("gspo"), clip_defaults("my_losses.py:fn")
    ((0.0003, 0.0004), (0.2, 0.2))
    """
    return LOSS_DEFAULTS.get(name, LOSS_DEFAULTS["ppo_clip"])


def bind(algo) -> Callable:
    """The recipe's policy loss with its hyperparameters bound: ``fn(logp, old_logp, adv, mask)``.
    ``algo``: the recipe's ``algorithm`` section (clip bounds already filled by the config)."""
    fn = _A.get(POLICY_LOSSES, algo.policy_loss, "policy loss")
    kw = {"tau_pos": algo.sapo_tau_pos, "tau_neg": algo.sapo_tau_neg} if fn is sapo_loss else {}
    return lambda logp, old_logp, adv, mask: fn(logp, old_logp, adv, mask, algo.clip_low, algo.clip_high, **kw)


# --------------------------------------------------------------------------- rollout correction
ROLLOUT_CORRECTIONS = ("none", "tis", "mis")
CORRECTION_LEVELS = ("token", "sequence", "geometric")


def level_log_ratio(log_ratio: torch.Tensor, mask: torch.Tensor, level: str) -> torch.Tensor:
    """log(pi_train / pi_sampler) at a level, ``[N, T]`` (a sequence's value on all its tokens):
    ``token`` per token, ``sequence`` the sum (the product of the token ratios), ``geometric``
    the mean (their geometric mean, length-independent).

    >>> lr = torch.tensor([[0.2, -0.1, 5.0]]); m = torch.tensor([[1., 1., 0.]])
    >>> level_log_ratio(lr, m, "sequence")
    tensor([[0.1000, 0.1000, 0.1000]])
    >>> level_log_ratio(lr, m, "geometric")
    tensor([[0.0500, 0.0500, 0.0500]])
    """
    lr = log_ratio * mask
    if level == "token":
        return lr
    if level == "sequence":
        return lr.sum(-1, keepdim=True).expand_as(lr)
    if level == "geometric":
        return _seq_mean(lr, mask).unsqueeze(-1).expand_as(lr)
    raise ValueError(f"unknown rollout correction level {level!r}; known: {list(CORRECTION_LEVELS)}")


def rollout_correction(train_logp: torch.Tensor, sampler_logp: torch.Tensor, mask: torch.Tensor,
                       method: str = "tis", level: str = "token", low: float = 0.5,
                       high: float = 2.0) -> tuple[torch.Tensor, dict]:
    """Per-token weights ``[N, T]`` (no gradient) that correct for the sampler's distribution
    differing from the trainer's (vLLM kernels, another dtype, older weights), and metrics.

    ``tis``: truncated importance sampling, ``min(pi_train / pi_sampler, high)`` (Yao et al.
    2025, "Your efficient RL framework secretly brings you off-policy RL training"; Ionides
    2008). ``mis``: masked IS, the ratio where it lies in ``[low, high]`` and 0 elsewhere: tokens
    or whole sequences (per ``level``) that the sampler and trainer disagree on are dropped
    (verl's rollout rejection sampling; TRL's ``sequence_mask``). ``none``: weights 1.

    Metrics: ``mismatch_kl`` the k3 estimate of KL(sampler || trainer) per token, the ratio's
    ``max`` and ``mean`` (at ``level``), ``masked_frac`` the share of tokens truncated (tis) or
    dropped (mis).

    >>> tr = torch.log(torch.tensor([[3.0, 1.0, 0.25]])); sa = torch.zeros(1, 3); m = torch.ones(1, 3)
    >>> rollout_correction(tr, sa, m, "tis")[0]
    tensor([[2.0000, 1.0000, 0.2500]])
    >>> w, met = rollout_correction(tr, sa, m, "mis")
    >>> w, round(met["masked_frac"], 4)
    (tensor([[0., 1., 0.]]), 0.6667)
    """
    if method not in ROLLOUT_CORRECTIONS:
        raise ValueError(f"unknown rollout correction {method!r}; known: {list(ROLLOUT_CORRECTIONS)}")
    mask = mask.float()
    d = (train_logp - sampler_logp).detach().float() * mask
    n = mask.sum().clamp(min=1)
    ratio = torch.exp(level_log_ratio(d, mask, level))
    on = mask > 0
    if method == "tis":
        w, cut = torch.clamp(ratio, max=high), ratio > high
    elif method == "mis":
        cut = (ratio < low) | (ratio > high)
        w = torch.where(cut, torch.zeros_like(ratio), ratio)
    else:
        w, cut = torch.ones_like(ratio), torch.zeros_like(ratio, dtype=torch.bool)
    k3 = (torch.exp(d) - d - 1).clamp(min=0)         # tokens were drawn from the sampler; >= 0 (float32 rounds below)
    live = ratio[on]
    metrics = {"mismatch_kl": ((k3 * mask).sum() / n).item(),
               "is_ratio_max": live.max().item() if live.numel() else 1.0,
               "is_ratio_mean": live.mean().item() if live.numel() else 1.0,
               "masked_frac": ((cut & on).float().sum() / n).item()}
    return w * mask, metrics
