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
"""
from __future__ import annotations

import torch


def distill_advantage(student_logp: torch.Tensor, teacher_logp: torch.Tensor, mask: torch.Tensor,
                      coef: float = 1.0) -> torch.Tensor:
    """Per-token advantage ``coef * (log q - log pi)`` ``[N, T]``, no gradient, 0 off the mask."""
    return coef * (teacher_logp - student_logp).detach() * mask


def reverse_kl(student_logp: torch.Tensor, teacher_logp: torch.Tensor, mask: torch.Tensor) -> float:
    """The k1 estimate of KL(student || teacher) per token on the student's samples (the
    quantity on-policy distillation drives to 0; a single-sample estimate, so it can be < 0)."""
    mask = mask.float()
    return (((student_logp - teacher_logp).detach() * mask).sum() / mask.sum().clamp(min=1)).item()
