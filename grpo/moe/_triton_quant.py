"""Triton kernel: fused row-gather + per-(token, 128-channel) FP8 e4m3 quantize.

Imported lazily by :func:`grpo.moe.quant.quantize_fp8` for CUDA tensors only.
The triton import is guarded so this module also imports (doing nothing) on
CPU-only installs, which ``pytest --doctest-modules`` requires.

Why fuse: dispatch must (1) permute tokens so rows bound for the same rank /
expert are contiguous and (2) quantize them.  Doing both in one pass reads
each hidden vector once and writes the 1-byte payload once, instead of
materializing a permuted bf16 copy first (DeepSeek-V3, arXiv 2412.19437,
Sec. 3.3.2 quantizes right before dispatch for the same reason).

NOTE: written to match :func:`grpo.moe.quant.quantize_fp8_torch`; it has only
been exercised by ``tests/moe/test_moe_gpu.py`` on machines with a GPU.
"""

from __future__ import annotations

import torch

try:
    import triton
    import triton.language as tl

    HAVE_TRITON = True
except ImportError:  # CPU install: the torch path is used instead
    triton = None
    tl = None
    HAVE_TRITON = False

BLOCK = 128
FP8_MAX = 448.0

if HAVE_TRITON:

    @triton.jit
    def _gather_quant_fp8_kernel(
        x_ptr,  # [N, H] bf16/fp16/fp32, row stride stride_x, unit column stride
        idx_ptr,  # [M] int64 source row per output row (unused if not HAS_IDX)
        q_ptr,  # [M, H] float8_e4m3fn, contiguous
        s_ptr,  # [M, NB] fp32, contiguous
        H,
        NB,
        stride_x,
        HAS_IDX: tl.constexpr,
        BLOCK_C: tl.constexpr,
    ):
        # one program = one (output row, 128-channel block) tile
        row = tl.program_id(0).to(tl.int64)
        blk = tl.program_id(1)
        if HAS_IDX:
            src = tl.load(idx_ptr + row).to(tl.int64)
        else:
            src = row
        cols = blk * BLOCK_C + tl.arange(0, BLOCK_C)
        mask = cols < H  # short last block == zero padding (zeros never raise amax)
        x = tl.load(x_ptr + src * stride_x + cols, mask=mask, other=0.0).to(tl.float32)
        amax = tl.maximum(tl.max(tl.abs(x), axis=0), 1e-12)
        scale = amax / FP8_MAX
        q = tl.minimum(tl.maximum(x / scale, -FP8_MAX), FP8_MAX)  # e4m3fn has no inf
        tl.store(q_ptr + row * H + cols, q.to(q_ptr.dtype.element_ty), mask=mask)
        tl.store(s_ptr + row * NB + blk, scale)


def quantize_fp8_triton(
    x: torch.Tensor, row_index: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``x [N, H]`` (CUDA) -> ``q [M, H]`` e4m3, ``scales [M, ceil(H/128)]`` fp32."""
    if not HAVE_TRITON:
        raise RuntimeError("triton is not installed")
    assert x.is_cuda and x.dim() == 2
    if x.stride(1) != 1:
        x = x.contiguous()
    h = x.shape[1]
    nb = -(-h // BLOCK)
    if row_index is not None:
        row_index = row_index.to(device=x.device, dtype=torch.int64).contiguous()
    m = x.shape[0] if row_index is None else row_index.numel()
    q = torch.empty(m, h, dtype=torch.float8_e4m3fn, device=x.device)
    s = torch.empty(m, nb, dtype=torch.float32, device=x.device)
    if m == 0:
        return q, s
    _gather_quant_fp8_kernel[(m, nb)](
        x,
        row_index if row_index is not None else x,  # dummy pointer when unused
        q,
        s,
        h,
        nb,
        x.stride(0),
        HAS_IDX=row_index is not None,
        BLOCK_C=BLOCK,
        num_warps=1,
    )
    return q, s
