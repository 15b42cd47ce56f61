"""The policy update of one GRPO step: ``mu`` optimizer passes over one batch.

Per pass, per micro-batch: score (log-probs, entropies; with ``distill_loss: full|forward`` the
teacher's logits too) -> per-token advantage terms (on-policy distillation, rollout
correction) -> policy loss -> KL -> aggregation -> backward; then one optimizer step whose
non-finite losses or gradients are skipped and said. ``update(trainer, ...)`` is
``Trainer._update``; it reads the trainer's policy, optimizer, reference and teacher.
Shapes: ``N`` completions (B prompts x G samples), ``C`` completion tokens, ``V`` vocabulary.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Callable

import torch
from tqdm.auto import tqdm

from ..algos import core as A
from ..run import checkpoint
from ..algos import distill
from ..algos import losses as L
from ..moe.replay import ReplayStats, replay_batch
from ..model.policy import (completion_logits, completion_logits_shared_prompt, micro_batches, score, score_all,
                     score_shared_prompt)

# Logged as null on a step whose groups were all filtered out (no update happened).
CORRECTION_KEYS = ("rollout_correction/mismatch_kl", "rollout_correction/is_ratio_max",
                   "rollout_correction/is_ratio_mean", "rollout_correction/masked_frac")
UPDATE_KEYS = ("loss", "kl", "entropy", "clip_frac", "clip_low_frac", "clip_high_frac", "grad_norm",
               "update_tokens", "micro_batches", *CORRECTION_KEYS)


@dataclass
class _Plan:
    """What every micro-batch of one update shares."""
    batch: object
    adv: torch.Tensor                     # [N] (or [N, C])
    old: torch.Tensor | None              # [N, C] proximal log-probs; None: the live ones, detached
    ref: torch.Tensor | None              # [N, C] reference log-probs
    teach: torch.Tensor | None            # [N, C] teacher log-probs of the sampled tokens (sampled mode)
    behav: torch.Tensor | None            # [N, C] the sampler's log-probs
    method: str                           # rollout correction: tis | mis | coupled | off
    full: bool                            # distill_loss: full | forward (the teacher runs per micro-batch)
    n_tokens: int                         # global token / sequence counts: the loss divides by them
    n_seqs: int
    policy_loss: Callable
    agg: Callable
    kl_fn: Callable
    score_fn: Callable
    logits_fn: Callable
    teacher_logits: dict | None = None    # full mode, mu > 1: the teacher's logits per micro-batch


def update(tr, batch, adv: torch.Tensor, behav: torch.Tensor | None = None, stale: int = 0,
           teacher_cache: dict | None = None) -> dict:
    """mu optimizer steps on one batch. ``behav``: the sampler's per-token log-probs
    ``[N, C]`` (the behaviour policy: another engine's kernels, or weights ``stale`` steps
    old); with a rollout correction they enter only through its IS weight (decoupled PPO:
    the clip is anchored at the proximal policy, the weights before this update).
    ``teacher_cache``: the teacher's logits per micro-batch of this batch, filled on first
    use and reused (``distill_replay`` keeps it with the batch)."""
    a, t = tr.cfg.algorithm, tr.cfg.train
    plan = _plan(tr, batch, adv, behav, stale)
    if teacher_cache is not None and plan.full:
        plan.teacher_logits = teacher_cache
    mbs = tr.par.pad_micro_batches(micro_batches(batch, t.micro_batch_size, t.micro_batch_tokens))
    sums = dict.fromkeys(("loss", "kl", "entropy", "clip_frac", "clip_low_frac", "clip_high_frac"), 0.0)
    extra = dict.fromkeys(CORRECTION_KEYS, 0.0) | ({_kl_key(a): 0.0} if tr.teacher is not None else {})
    grad_norm, skipped, lr = 0.0, 0, tr.opt.param_groups[0]["lr"]
    replayed = ReplayStats()
    with tr.par.gathered(tr.teacher if plan.full else None):     # full: teacher forwards in the loop
        for _ in range(a.mu):
            losses = []
            for idx in mbs:
                if idx is None:                  # this rank has fewer micro-batches than another
                    tr.par.zero_backward(tr.policy, plan.score_fn, tr.tok.pad_token_id)
                    continue
                losses.append(_micro_batch(tr, plan, idx, sums, extra, replayed))
            grad_norm, stepped_lr = optimizer_step(tr, losses)
            skipped, lr = skipped + (stepped_lr is None), lr if stepped_lr is None else stepped_lr
    sums, extra = tr.par.reduce_sums(sums), tr.par.reduce_sums(extra)   # shares summed over ranks
    if tr.ref is None:                     # (a rank with no rows scores no reference: ref None)
        sums["kl"] = None
    if plan.method not in ("tis", "mis"):
        extra.update(dict.fromkeys(CORRECTION_KEYS))
    return {**sums, **extra, "grad_norm": grad_norm, "update_tokens": plan.n_tokens, "micro_batches": len(mbs),
            "skipped_steps": skipped, "lr": lr,
            **({"moe/routing_mismatch": replayed.value()} if a.routing_replay else {})}


def _plan(tr, batch, adv, behav, stale: int) -> _Plan:
    a, t = tr.cfg.algorithm, tr.cfg.train
    method = tr._correction(stale) if behav is not None else "off"
    old = behav if method == "coupled" else None
    n_tokens, n_seqs = tr.par.global_counts(int(batch.mask.sum().item()), len(batch))
    # With mu=1 the rollout policy *is* the current policy: old log-probs are the current
    # ones detached (ratio 1), saving a forward pass. With mu>1 they are fixed up front.
    if old is None and a.mu > 1:                # the proximal policy
        with tr.par.gathered(tr.policy):
            old = score_all(tr.policy, batch, t.micro_batch_size, t.micro_batch_tokens, t.share_prompt)
    full = tr.teacher is not None and a.distill_loss in distill.KL_FORMS
    return _Plan(
        batch=batch, adv=adv, old=old, behav=behav, method=method, full=full,
        ref=tr._ref_logprobs(batch) if tr.ref is not None else None,
        teach=(tr._score_frozen(tr.teacher, batch, a.teacher_temperature)
               if tr.teacher is not None and not full else None),
        n_tokens=n_tokens, n_seqs=n_seqs,
        policy_loss=L.bind(a),                  # the loss with its paper (or the recipe's) hyperparameters
        agg=A.get(A.AGGREGATIONS, a.loss_agg, "loss aggregation"),
        kl_fn=A.get(A.KL_ESTIMATORS, a.kl_estimator, "KL estimator"),
        score_fn=score_shared_prompt if t.share_prompt else score,
        logits_fn=completion_logits_shared_prompt if t.share_prompt else completion_logits,
        teacher_logits={} if full and a.mu > 1 else None)


def _micro_batch(tr, p: _Plan, idx, sums: dict, extra: dict, replayed: ReplayStats) -> torch.Tensor:
    """Forward and backward of the rows ``idx``; returns the (detached) loss."""
    a = tr.cfg.algorithm
    sub = p.batch.slice(idx).trim()            # [n, C'], C' <= C
    C = sub.mask.shape[1]
    with replay_batch(tr.policy, sub, tr._routing and [tr._routing[i] for i in idx.tolist()]) as rep:
        if p.full:                             # [n, C] each; kl_t: the exact KL per position
            logp, ent, kl_t = distill.score_with_teacher(p.logits_fn, tr.policy, tr.teacher, sub, p.teacher_logits,
                                                         tuple(idx.tolist()), a.teacher_temperature, a.distill_loss)
        else:
            (logp, ent), kl_t = p.score_fn(tr.policy, sub, with_entropy=True), None
    replayed.add(rep)
    dev = logp.device
    mask, adv = sub.mask.to(dev), p.adv[idx].to(dev)
    old_lp = p.old[idx.to(p.old.device), :C].to(dev) if p.old is not None else logp.detach()
    share = mask.sum().item() / max(p.n_tokens, 1) / a.mu
    adv, w = token_terms(a, p, idx, old_lp, mask, adv, share, extra)
    loss_tok, cm = p.policy_loss(logp, old_lp, adv, mask)
    if w is not None:
        loss_tok = loss_tok * w
    if kl_t is not None:
        loss_tok = loss_tok + a.distill_coef * kl_t
        extra[_kl_key(a)] += (kl_t.detach() * mask).sum().item() / max(p.n_tokens, 1) / a.mu
    if p.ref is not None:
        kl = p.kl_fn(logp, p.ref[idx.to(p.ref.device), :C].to(dev))
        if a.beta > 0:
            loss_tok = loss_tok + a.beta * kl
        sums["kl"] += (kl.detach() * mask).sum().item() / max(p.n_tokens, 1) / a.mu
    loss = p.agg(loss_tok, mask, p.n_tokens, p.n_seqs, a.constant_norm or tr.cfg.rollout.max_new_tokens)
    (loss * tr.par.loss_scale).backward()
    _accumulate(sums, loss, ent, cm, mask, p.n_tokens, a.mu)
    return loss.detach()


def replay(tr, batch, cache: dict, upd: dict) -> dict:
    """``algorithm.distill_replay = k``: mu passes over each of the last k steps' scored
    batches (oldest first), their teacher logits ``cache`` reused, then this step's batch
    joins them and the oldest leaves. The per-position KL is exact at any state the student
    visited, so an older sample stays a valid target; only the state distribution lags the
    student by up to k steps (as GKD mixes fixed data with on-policy samples: Agarwal et al.
    2024). No teacher forward, so no new teacher tokens. Returns ``upd`` (this step's own
    update metrics) with the replays' KL and skipped optimizer steps added."""
    key, kls, skipped = _kl_key(tr.cfg.algorithm), [], 0
    routing, tr._routing = tr._routing, None      # MoE routing replay: this step's rows only
    try:
        for old, old_cache in list(tr.replay):
            out = update(tr, old, torch.zeros(len(old)), teacher_cache=old_cache)
            kls, skipped = kls + [out[key]], skipped + out["skipped_steps"]
    finally:
        tr._routing = routing
    tr.replay.append((batch, cache))
    return {**upd, "skipped_steps": upd["skipped_steps"] + skipped, "distill/replay_batches": len(kls),
            f"{key}_replayed": sum(kls) / len(kls) if kls else None}


def token_terms(a, p: _Plan, idx, old_lp, mask, adv, share: float, stats: dict):
    """One micro-batch's advantage, plus the teacher's per-token term (on-policy
    distillation, sampled form), and its rollout-correction weights (None: no correction);
    their metrics accumulate into ``stats``, each weighted by the micro-batch's token ``share``."""
    C, dev = mask.shape[1], old_lp.device
    if p.teach is not None:
        t_lp = p.teach[idx.to(p.teach.device), :C].to(dev)
        adv = adv.unsqueeze(-1) + distill.distill_advantage(old_lp, t_lp, mask, a.distill_coef)
        stats["distill/reverse_kl"] += distill.reverse_kl(old_lp, t_lp, mask) * share
    if p.method not in ("tis", "mis"):
        return adv, None
    w, met = L.rollout_correction(old_lp, p.behav[idx.to(p.behav.device), :C].to(dev), mask, p.method,
                                  a.rollout_correction_level, a.rollout_is_low, a.rollout_is_high)
    for k in ("mismatch_kl", "is_ratio_mean", "masked_frac"):
        stats[f"rollout_correction/{k}"] += met[k] * share
    stats["rollout_correction/is_ratio_max"] = max(stats["rollout_correction/is_ratio_max"], met["is_ratio_max"])
    return adv, w


def optimizer_step(tr, losses: list[torch.Tensor]) -> tuple[float, float | None]:
    """Reduce and clip the gradients, then step, unless the loss or the gradient norm is
    non-finite: no non-finite value reaches the weights; the step (and the lr schedule)
    is skipped and said. Returns the grad norm and the lr stepped with (None: skipped)."""
    grad_norm = tr.par.sync_and_clip(tr.policy, tr.cfg.train.max_grad_norm)
    bad_loss = not all(bool(torch.isfinite(x)) for x in losses)
    lr = None
    if (bad_loss and not tr.par.enabled) or not math.isfinite(float(grad_norm)):
        tqdm.write(f"grpo: warning: non-finite {'loss' if bad_loss else 'gradient norm'} "
                   f"(grad norm {float(grad_norm)}); optimizer step skipped", file=sys.stderr)
    else:
        lr = tr.opt.param_groups[0]["lr"]
        tr.opt.step()
        tr.sched.step()
        check_weights(tr, lr)
    tr.opt.zero_grad(set_to_none=True)
    return grad_norm, lr


def check_weights(tr, lr: float) -> None:
    """Finite gradients can still step the weights out of range (an lr far too high):
    stop before such weights sample, train or are saved."""
    bad = checkpoint.non_finite(tr.par.local_parameters(tr.policy))
    if bad:
        have = checkpoint.all_steps(tr.ckpt_root)
        raise checkpoint.NonFiniteError(
            f"the weights became non-finite in an optimizer step with lr {lr:g} ({len(bad)} tensors, first "
            f"{bad[0]}); nothing was saved; the last checkpoint is "
            f"{f'step-{have[-1]}' if have else 'none'}: lower train.lr and start over with --overwrite")


def _accumulate(sums: dict, loss, ent, cm: dict, mask, n_tokens: int, mu: int) -> None:
    """Add one micro-batch's loss and token-weighted entropy / clip fractions to ``sums``, so
    they end as per-token means over the update's ``n_tokens`` and its ``mu`` iterations."""
    share = lambda x: (x.float() * mask).sum().item() / max(n_tokens, 1) / mu  # noqa: E731
    sums["loss"] += loss.item() / mu
    sums["entropy"] += share(ent)
    sums["clip_low_frac"] += share(cm["clip_low"])
    sums["clip_high_frac"] += share(cm["clip_high"])
    sums["clip_frac"] += share(cm["clip_low"] | cm["clip_high"])


def _kl_key(a) -> str:
    """The metric of the teacher's term: the KL that ``distill_loss`` trains on."""
    return "distill/forward_kl" if a.distill_loss == "forward" else "distill/reverse_kl"


def nothing_to_learn(adv: torch.Tensor, mask: torch.Tensor, beta: float, teacher: bool = False) -> bool:
    """True when an update could not change the policy's loss: no completion token left to
    train on, or (without a KL term or a teacher's distillation term) every advantage zero
    (all groups zero-variance). The forward and backward are skipped and the update metrics
    logged as null; a zero-gradient AdamW step would still move the weights by its momentum.

    >>> nothing_to_learn(torch.zeros(4), torch.ones(4, 3), 0.0), nothing_to_learn(torch.zeros(4), torch.ones(4, 3), 0.1)
    (True, False)
    >>> nothing_to_learn(torch.zeros(4), torch.ones(4, 3), 0.0, teacher=True)
    False
    >>> nothing_to_learn(torch.tensor([1., -1.]), torch.zeros(2, 3), 0.0), nothing_to_learn(torch.zeros(0), torch.zeros(0, 3), 0.0)
    (True, True)
    """
    if adv.numel() == 0 or not bool(mask.sum() > 0):
        return True
    return beta == 0 and not teacher and not bool(adv.abs().max() > 0)
