"""On-policy distillation: a teacher scores the student's own samples, token by token.

The student samples as in GRPO; a frozen teacher (any causal LM with the student's
tokenizer, e.g. a previous pipeline stage's model) scores the sampled tokens, and each
token's advantage is the negative per-token reverse KL, ``log q_teacher - log pi_student``
(Agarwal et al. 2024, "On-Policy Distillation of Language Models" (GKD); Gu et al. 2024,
MiniLLM; Thinking Machines 2025, "On-Policy Distillation", which uses exactly this
per-token, discount-0 advantage). Minimising it is minimising KL(pi || q) on the student's
own distribution: the student learns where it actually goes, not on the teacher's paths
(SFT-distillation's exposure bias), with a dense signal on every token instead of one
reward per sequence.

>>> s = torch.log(torch.tensor([[0.5, 0.25]])); t = torch.log(torch.tensor([[0.5, 0.5]]))
>>> distill_advantage(s, t, torch.ones(1, 2))          # 0 where they agree, + where the teacher likes it more
tensor([[0.0000, 0.6931]])
>>> round(reverse_kl(s, t, torch.ones(1, 2)), 4)         # mean over tokens of log pi - log q
-0.3466

Two forms, ``algorithm.distill_loss``: ``sampled`` (above: the sampled token's log-ratio as
its advantage, through the policy loss; needs only the teacher's log-prob of that token, so
any vocabulary size) and ``full`` (:func:`full_reverse_kl`: the exact KL(pi || q) over the
whole vocabulary at every position the student visited, added to the loss: GKD's on-policy
objective with beta = 1, Agarwal et al. 2024, sec. 3; no sampling noise in the per-position
term, at the cost of the teacher's ``[n, C, V]`` logits per micro-batch), and ``forward``
(:func:`full_forward_kl`: the same positions, KL(q || pi), GKD with beta = 0).
"""
from __future__ import annotations

import torch

from ..model.policy import logp_entropy, tempered


def distill_advantage(student_logp: torch.Tensor, teacher_logp: torch.Tensor, mask: torch.Tensor,
                      coef: float = 1.0) -> torch.Tensor:
    """Per-token advantage ``coef * (log q - log pi)`` ``[N, T]``, no gradient, 0 off the mask."""
    return coef * (teacher_logp - student_logp).detach() * mask


def reverse_kl(student_logp: torch.Tensor, teacher_logp: torch.Tensor, mask: torch.Tensor) -> float:
    """The k1 estimate of KL(student || teacher) per token on the student's samples (the
    quantity on-policy distillation drives to 0; a single-sample estimate, so it can be < 0)."""
    mask = mask.float()
    return (((student_logp - teacher_logp).detach() * mask).sum() / mask.sum().clamp(min=1)).item()


def full_reverse_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Per-position KL(pi || q) = sum_v pi_v (log pi_v - log q_v) ``[n, C]`` from logits
    ``[n, C, V]``; the gradient flows into the student's logits only.

    >>> st = torch.log(torch.tensor([[[0.5, 0.5]]])); te = torch.log(torch.tensor([[[0.9, 0.1]]]))
    >>> full_reverse_kl(st, te)      # 0.5 log(0.5/0.9) + 0.5 log(0.5/0.1)
    tensor([[0.5108]])
    >>> full_reverse_kl(te, te)
    tensor([[0.]])
    """
    logp = torch.log_softmax(student_logits.float(), dim=-1)
    logq = torch.log_softmax(teacher_logits.float().detach(), dim=-1)
    c = (logp.exp() * (logp - logq)).detach()                            # [n, C, V]
    kl = c.sum(-1)
    # The gradient through sum_v c_v log pi_v is pi_k (d_k - KL), KL's exact gradient; unlike
    # autograd through pi * (log pi - log q) it is exactly 0 where the two agree (that form
    # leaves float noise ~1e-8, which Adam's normalisation turns into steps of ~lr/10).
    surrogate = (c * logp).sum(-1)
    return surrogate - surrogate.detach() + kl


def full_forward_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Per-position KL(q || pi) = sum_v q_v (log q_v - log pi_v) ``[n, C]``: the forward KL
    at the positions the student visited (GKD with beta = 0, Agarwal et al. 2024; TRL's
    ``generalized_jsd_loss`` at beta 0): cross-entropy to the teacher's whole distribution,
    gradient ``pi - q`` into the student's logits, which does not vanish where the student
    gives a teacher's token little mass (reverse KL's gradient ``pi (d - KL)`` does).

    >>> st = torch.log(torch.tensor([[[0.5, 0.5]]])); te = torch.log(torch.tensor([[[0.9, 0.1]]]))
    >>> full_forward_kl(st, te)      # 0.9 log(0.9/0.5) + 0.1 log(0.1/0.5)
    tensor([[0.3681]])
    >>> full_forward_kl(te, te)
    tensor([[0.]])
    """
    z = student_logits.float()
    logp = torch.log_softmax(z, dim=-1)
    logq = torch.log_softmax(teacher_logits.float().detach(), dim=-1)
    q = logq.exp()
    kl = (q * (logq - logp)).sum(-1).detach()
    # The gradient as the explicit pi - q (exactly 0 where the two agree: autograd through
    # log_softmax leaves pi * (1 - sum q) ~ 1e-7 there, as full_reverse_kl's note says).
    surrogate = ((logp.exp() - q).detach() * z).sum(-1)
    return surrogate - surrogate.detach() + kl


KL_FORMS = {"full": full_reverse_kl, "forward": full_forward_kl}    # distill_loss -> per-position KL


def score_with_teacher(logits_fn, policy, teacher, sub, cache: dict | None = None, key=None,
                       temperature: float = 1.0, form: str = "full"):
    """One micro-batch ``sub`` for ``distill_loss: full | forward``: the student's log-probs
    of the sampled tokens ``[n, C]`` (with grad), its entropies (no grad) and the
    per-position KL ``[n, C]`` (``KL_FORMS[form]``: KL(pi || q) or KL(q || pi); grad into
    the student only). ``logits_fn(model, batch)``: e.g.
    policy.completion_logits. ``cache``: the teacher's logits by ``key``, so that ``mu > 1``
    passes over one batch score it with the teacher once (``[n, C, V]`` kept per micro-batch).
    ``temperature``: the target is the teacher's logits / it (``algorithm.teacher_temperature``)."""
    logits = logits_fn(policy, sub)
    logp, ent = logp_entropy(logits, sub.completion_ids.to(logits.device), with_entropy=True)
    with torch.no_grad():
        t_logits = cache.get(key) if cache is not None else None
        if t_logits is None:
            t_logits = tempered(logits_fn(teacher, sub).to(logits.device), temperature)
            if cache is not None:
                cache[key] = t_logits
    return logp, ent, KL_FORMS[form](logits, t_logits)
