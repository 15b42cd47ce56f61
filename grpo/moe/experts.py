"""Local expert weights of an expert-parallel block and their grouped GEMM.

``_expert_weights`` slices experts ``[lo, hi)`` out of a transformers experts
container; :class:`LocalExperts` runs them on rows grouped by expert with one
grouped GEMM per projection (``torch._grouped_mm``) instead of a Python loop
over experts; :func:`grouped_linear` falls back to the loop where the grouped
kernel is unavailable.

>>> x = torch.randn(5, 4); w = torch.randn(2, 3, 4)        # 2 experts, [out=3, in=4]
>>> y = grouped_linear(x, w, [2, 3])
>>> torch.allclose(y, torch.cat([x[:2] @ w[0].T, x[2:] @ w[1].T]), atol=1e-6)
True
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["LocalExperts", "grouped_linear", "expert_weights"]

_GROUPED = hasattr(torch, "_grouped_mm")
_GROUPED_DTYPES = (torch.float32, torch.bfloat16, torch.float16)  # what the kernel accepts


def _contiguous_grad(g: torch.Tensor) -> torch.Tensor:
    return g.contiguous()  # _grouped_mm's backward rejects expanded (stride-0) grads


def _grouped_ok(x: torch.Tensor, w: torch.Tensor) -> bool:
    if not _GROUPED or x.shape[0] == 0 or x.dtype != w.dtype or x.dtype not in _GROUPED_DTYPES:
        return False
    if x.is_cuda:  # the CUDA kernel: bf16 on sm90+ only (untested here: no GPU)
        return x.dtype == torch.bfloat16 and torch.cuda.get_device_capability(x.device) >= (9, 0)
    return x.device.type == "cpu"


def grouped_linear(x: torch.Tensor, w: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """``x [R, in]`` grouped by expert (``sizes[e]`` rows each), ``w [E, out, in]`` -> ``[R, out]``.

    One ``torch._grouped_mm`` call (CUTLASS on sm90, a CPU kernel elsewhere);
    a loop of ``F.linear`` when it is missing, the input is empty or of another dtype.
    """
    if _grouped_ok(x, w):
        offs = torch.tensor(sizes, device=x.device).cumsum(0).to(torch.int32)
        y = torch._grouped_mm(x.contiguous(), w.transpose(1, 2), offs=offs)
        if y.requires_grad:
            y.register_hook(_contiguous_grad)
        return y
    outs = [F.linear(xe, w[e]) for e, xe in enumerate(x.split(sizes))]
    return torch.cat(outs) if outs else x.new_zeros(0, w.shape[1])


def expert_weights(experts: nn.Module, lo: int, hi: int):
    """Slice experts [lo, hi) into ``gate_up [E_l, 2I, H]``, ``down [E_l, H, I]``, act."""
    if hasattr(experts, "gate_up_proj"):  # transformers 5.x fused layout
        if getattr(experts, "has_bias", False) or not getattr(experts, "is_concatenated", True):
            raise NotImplementedError("fused experts with bias / interleaved gate-up are not supported")
        gu, dn = experts.gate_up_proj, experts.down_proj
        if getattr(experts, "is_transposed", False):  # stored [E, H, 2I] / [E, I, H]
            gu, dn = gu.transpose(1, 2), dn.transpose(1, 2)
        return gu[lo:hi], dn[lo:hi], experts.act_fn
    if isinstance(experts, nn.ModuleList):  # transformers 4.x: one MLP module per expert
        names = ("gate_proj", "up_proj", "down_proj") if hasattr(experts[0], "gate_proj") else ("w1", "w3", "w2")
        mods = [experts[e] for e in range(lo, hi)]
        g, u, d = ([getattr(m, n).weight for m in mods] for n in names)
        gu = torch.stack([torch.cat([a, b], 0) for a, b in zip(g, u)])
        return gu, torch.stack(d), experts[0].act_fn
    raise NotImplementedError(f"unknown experts container {type(experts).__name__}")


class LocalExperts(nn.Module):
    """The ``E/W`` experts owned by this rank, fused like transformers 5.x stores them."""

    # CPU: torch's grouped kernel beats the loop with many small groups, loses with few large
    # ones (bench/bench_moe.py --section gemm on the 2-core dev box: 2.76x faster at 64 experts x
    # 128 rows, 0.36x at 8 experts x 2048 rows), so "auto" uses it from this many local experts.
    CPU_GROUPED_MIN_EXPERTS = 16

    def __init__(self, gate_up: torch.Tensor, down: torch.Tensor, act_fn, requires_grad: bool,
                 grouped: bool | None = None):
        super().__init__()
        self.gate_up_proj = nn.Parameter(gate_up.detach().clone(), requires_grad=requires_grad)
        self.down_proj = nn.Parameter(down.detach().clone(), requires_grad=requires_grad)
        self.act_fn = act_fn
        self.grouped = grouped  # True: grouped GEMM, False: loop, None: auto

    def forward(self, x: torch.Tensor, tokens_per_expert: list[int]) -> torch.Tensor:
        """``x [R, H]`` grouped by local expert -> ``[R, H]``."""
        grouped = self.grouped
        if grouped is None:
            grouped = x.is_cuda or len(tokens_per_expert) >= self.CPU_GROUPED_MIN_EXPERTS
        if grouped:
            gate, up = grouped_linear(x, self.gate_up_proj, tokens_per_expert).chunk(2, dim=-1)  # [R, I] x2
            return grouped_linear(self.act_fn(gate) * up, self.down_proj, tokens_per_expert)
        outs = []  # reference path: one pair of GEMMs per expert
        for e, xe in enumerate(x.split(tokens_per_expert)):
            gate, up = F.linear(xe, self.gate_up_proj[e]).chunk(2, dim=-1)
            outs.append(F.linear(self.act_fn(gate) * up, self.down_proj[e]))
        return torch.cat(outs) if outs else x
