"""Fine-grained FP8 (e4m3) quantization for MoE dispatch payloads.

DeepSeek-V3 (arXiv 2412.19437, Sec. 3.3.2) scales activations per 1x128 tile:
each token's hidden vector is cut into blocks of 128 channels and every block
gets its own fp32 scale ``amax(|block|) / 448`` (448 = largest finite e4m3fn
value).  Per-block scaling keeps one outlier channel from crushing the
resolution of the whole token, which is what makes a 1-byte format usable for
activations.  The same paper (Sec. 3.4 / "communication") sends the MoE
dispatch in this format and the combine in BF16; :mod:`grpo.moe.dispatch`
does that with the functions here.

Two implementations with identical numerics (fp32 amax, fp32 division,
saturating round-to-nearest cast):

* :func:`quantize_fp8_torch` - pure, vectorized torch; runs anywhere
  (CPU included) and is the reference.
* a Triton kernel (:mod:`grpo.moe._triton_quant`) that fuses the row gather
  ("permute tokens by destination rank") with quantization, so the dispatch
  buffer is written once.  It is used only for CUDA tensors on sm89+ (native
  e4m3 conversion) when triton imports; everything else takes the torch path.

>>> x = torch.randn(3, 200)
>>> q, s = quantize_fp8(x)
>>> q.dtype, tuple(q.shape), tuple(s.shape)    # 200 channels -> 2 blocks
(torch.float8_e4m3fn, (3, 200), (3, 2))
>>> err = (dequantize_fp8(q, s) - x).abs().max() / x.abs().max()
>>> bool(err <= 2 ** -4)
True
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

__all__ = [
    "BLOCK",
    "FP8_DTYPE",
    "FP8_MAX",
    "quantize_fp8",
    "quantize_fp8_torch",
    "dequantize_fp8",
    "triton_available",
]

BLOCK = 128  # channels per scale: DeepSeek-V3's 1x128 activation tile
FP8_DTYPE = torch.float8_e4m3fn
FP8_MAX = float(torch.finfo(FP8_DTYPE).max)  # 448.0
_AMAX_EPS = 1e-12  # all-zero blocks get a tiny scale instead of 0/0


def num_blocks(hidden: int) -> int:
    """Scales per token: ``ceil(hidden / 128)`` (the last block may be short)."""
    return -(-hidden // BLOCK)


def quantize_fp8_torch(
    x: torch.Tensor, row_index: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantize ``x [N, H]`` to e4m3 with one fp32 scale per token per 128 channels.

    ``row_index [M]`` optionally gathers rows first (out row m = x[row_index[m]]);
    quantization is per row, so gather-then-quantize equals quantize-then-gather
    and we quantize the N distinct tokens once, not the M = N*top_k copies.

    Returns ``q [M, H]`` (float8_e4m3fn, padding stripped) and ``scales [M, nb]``.
    """
    n, h = x.shape
    nb = num_blocks(h)
    # H not a multiple of 128: zero-pad the last block; zeros never raise amax.
    xf = x.float()
    xp = (xf if h % BLOCK == 0 else F.pad(xf, (0, nb * BLOCK - h))).reshape(n, nb, BLOCK)  # [N, nb, 128]
    amax = xp.abs().amax(dim=-1).clamp_min(_AMAX_EPS)  # [N, nb]
    scales = amax / FP8_MAX  # [N, nb] fp32
    # clamp: e4m3fn has no inf, an overflowing cast would give NaN.
    q = (xp / scales.unsqueeze(-1)).clamp_(-FP8_MAX, FP8_MAX).to(FP8_DTYPE)
    q = q.view(n, nb * BLOCK)[:, :h]  # [N, H]
    if row_index is not None:
        q, scales = q[row_index], scales[row_index]
    return q.contiguous(), scales.contiguous()


def dequantize_fp8(
    q: torch.Tensor, scales: torch.Tensor, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Inverse of :func:`quantize_fp8`: ``q [M, H]``, ``scales [M, nb]`` -> ``[M, H]``."""
    m, h = q.shape
    nb = scales.shape[-1]
    qf = q.float()
    xp = (qf if h % BLOCK == 0 else F.pad(qf, (0, nb * BLOCK - h))).view(m, nb, BLOCK)
    return (xp * scales.unsqueeze(-1)).view(m, nb * BLOCK)[:, :h].to(dtype)


@functools.lru_cache(maxsize=None)
def triton_available() -> bool:
    """True when the fused Triton kernel can run (CUDA sm89+ and triton importable)."""
    if not torch.cuda.is_available():
        return False
    if torch.cuda.get_device_capability() < (8, 9):  # no native e4m3 cvt before Ada/Hopper
        return False
    try:  # imported lazily: CPU installs usually have no triton
        from grpo.moe import _triton_quant
    except Exception:  # noqa: BLE001 - any import failure means "use torch"
        return False
    return _triton_quant.HAVE_TRITON


def quantize_fp8(
    x: torch.Tensor, row_index: torch.Tensor | None = None, use_triton: bool | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused gather + FP8 quantize; Triton on capable GPUs, torch otherwise.

    Same contract as :func:`quantize_fp8_torch`.  ``use_triton=None`` picks
    automatically; ``True`` forces the kernel (errors if unavailable).
    """
    if use_triton is None:
        use_triton = x.is_cuda and triton_available()
    if use_triton:
        from grpo.moe._triton_quant import quantize_fp8_triton

        return quantize_fp8_triton(x, row_index)
    return quantize_fp8_torch(x, row_index)
