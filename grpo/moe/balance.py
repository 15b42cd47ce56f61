"""Auxiliary-loss-free load balancing (DeepSeek-V3, arXiv 2412.19437, Sec. 2.1.2).

A per-expert bias is added to the routing scores *for top-k selection only*;
the gate values still come from the unbiased scores.  After each optimizer
step the bias moves by ``gamma * sign(mean_load - load_e)`` (not by gradient):
overloaded experts become less attractive, idle ones more.

Two homes for the bias:

* :class:`BalancingBias` - our own buffer, for softmax routers that have none
  (Qwen2/3-MoE, Mixtral, OLMoE), applied by :func:`route_softmax`;
* :class:`NativeBias` - DeepSeek-V3's own ``gate.e_score_correction_bias``
  buffer (also Moonlight / Kimi-K2 configs): the model's gate applies it, we
  only step it, so checkpoints save and restore it under the model's own key.
"""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["BalancingBias", "NativeBias", "sign_update_", "route_softmax"]


@torch.no_grad()
def sign_update_(bias: torch.Tensor, load_counts: torch.Tensor, rate: float) -> None:
    """``bias_e += rate * sign(mean_load - load_e)`` in place.

    >>> b = torch.zeros(3); sign_update_(b, torch.tensor([4, 1, 1]), 0.5); b.tolist()
    [-0.5, 0.5, 0.5]
    """
    load = load_counts.to(bias.device, torch.float32)
    bias += (rate * torch.sign(load.mean() - load)).to(bias.dtype)


class BalancingBias(nn.Module):
    """Per-expert routing bias for routers without a native one.

    >>> b = BalancingBias(4, update_rate=0.1)
    >>> b.update(torch.tensor([10, 2, 2, 2]))     # expert 0 overloaded
    >>> b.bias.tolist()
    [-0.10000000149011612, 0.10000000149011612, 0.10000000149011612, 0.10000000149011612]
    """

    def __init__(self, num_experts: int, update_rate: float = 1e-3):
        super().__init__()
        self.update_rate = update_rate  # DeepSeek-V3 uses gamma = 0.001 for most of training
        self.register_buffer("bias", torch.zeros(num_experts))  # [E], saved with the model

    def forward(self, scores: torch.Tensor) -> torch.Tensor:  # [N, E] -> [N, E]
        return scores + self.bias

    def update(self, load_counts: torch.Tensor) -> None:
        sign_update_(self.bias, load_counts, self.update_rate)


class NativeBias:
    """Steps a DeepSeek-V3 gate's ``e_score_correction_bias`` (not a module: no duplicate state-dict key).

    >>> class Gate(nn.Module):
    ...     def __init__(self):
    ...         super().__init__(); self.e_score_correction_bias = nn.Buffer(torch.zeros(2))
    >>> g = Gate(); NativeBias(g, 0.25).update(torch.tensor([3, 1])); g.e_score_correction_bias.tolist()
    [-0.25, 0.25]
    """

    def __init__(self, gate: nn.Module, update_rate: float = 1e-3):
        self.gate, self.update_rate = gate, update_rate

    @property
    def bias(self) -> torch.Tensor:
        return self.gate.e_score_correction_bias

    def update(self, load_counts: torch.Tensor) -> None:
        sign_update_(self.gate.e_score_correction_bias, load_counts, self.update_rate)


def route_softmax(logits, top_k: int, norm: bool, bias: BalancingBias | None):
    """Softmax routing; ``bias`` only changes *which* experts win, not their weights."""
    probs = torch.softmax(logits.float(), dim=-1)  # [N, E]
    select = probs if bias is None else bias(probs)
    idx = torch.topk(select, top_k, dim=-1).indices  # [N, k]
    w = probs.gather(-1, idx)  # [N, k] unbiased gate values
    if norm:
        w = w / w.sum(-1, keepdim=True)
    return w, idx
