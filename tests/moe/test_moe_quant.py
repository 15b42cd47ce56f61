"""FP8 1x128-block quantizer and the local (no process group) dispatch/combine path."""

import pytest
import torch

from grpo.moe import FP8_MAX, bytes_per_row, combine, dequantize_fp8, dispatch, quantize_fp8, quantize_fp8_torch


def _fp8_bound(x, scales):
    """Per-element worst case of one e4m3 round-to-nearest, in x units.

    e4m3 keeps 3 mantissa bits, so a normal value v = x/scale is off by at most half
    an ulp = 2^-4 * |v| (relative error <= 2^-4 against the block-amax scaling);
    below 2^-6 (subnormals) the ulp is fixed at 2^-9, i.e. <= 2^-10 absolute.
    Times the fp32 scale, plus fp32 rounding slack.
    """
    h = x.shape[1]
    s = scales.repeat_interleave(128, dim=1)[:, :h]  # [N, H] scale of each element
    return 2.0**-4 * x.abs() + 2.0**-10 * s + 1e-6 * x.abs()


@pytest.mark.parametrize("hidden", [256, 200, 128, 7])
def test_roundtrip_error_bound(hidden):
    torch.manual_seed(0)
    x = torch.randn(64, hidden) * torch.logspace(-3, 2, 64).unsqueeze(1)  # 5 decades of magnitude
    x[3, :5] = 1000.0  # outlier channels
    q, s = quantize_fp8(x)
    assert q.dtype == torch.float8_e4m3fn and q.shape == x.shape
    assert s.dtype == torch.float32 and s.shape == (64, -(-hidden // 128))
    y = dequantize_fp8(q, s)
    assert ((y - x).abs() <= _fp8_bound(x, s)).all()
    # amax scaling: every block's largest element maps onto the e4m3 maximum
    blocks = torch.nn.functional.pad(q.float().abs(), (0, s.shape[1] * 128 - hidden)).view(64, -1, 128)
    assert torch.equal(blocks.amax(-1), torch.full_like(s, FP8_MAX))


def test_scales_are_per_block_so_outliers_stay_local():
    x = torch.randn(4, 256)
    x[:, 0] = 1e4  # outlier in block 0 only
    q, s = quantize_fp8(x)
    y = dequantize_fp8(q, s)
    assert torch.allclose(s[:, 0], torch.full((4,), 1e4 / FP8_MAX))
    # block 1 keeps its own resolution: relative error still <= 2^-4 (+ subnormal slack)
    assert ((y[:, 128:] - x[:, 128:]).abs() <= _fp8_bound(x[:, 128:], s[:, 1:])).all()


def test_zero_block_and_gather():
    x = torch.randn(5, 256)
    x[2] = 0.0
    q, s = quantize_fp8(x)
    assert torch.equal(dequantize_fp8(q, s)[2], torch.zeros(256)) and torch.isfinite(s).all()
    idx = torch.tensor([4, 0, 0, 2])
    qg, sg = quantize_fp8_torch(x, idx)  # fused-gather contract == gather after quantize
    assert torch.equal(qg.view(torch.uint8), q[idx].view(torch.uint8)) and torch.equal(sg, s[idx])


def test_non_contiguous_input():
    x = torch.randn(256, 6).t()  # [6, 256] transposed view (e.g. a gradient)
    q, s = quantize_fp8(x)
    assert ((dequantize_fp8(q, s) - x).abs() <= _fp8_bound(x, s)).all()


def test_bytes_per_row():
    assert bytes_per_row(256, fp8=True) == 264 and bytes_per_row(256, fp8=False) == 512
    assert bytes_per_row(256, fp8=True) / bytes_per_row(256, fp8=False) < 0.55


def test_local_dispatch_combine_exact_and_differentiable():
    torch.manual_seed(0)
    x = torch.randn(10, 256, dtype=torch.float64, requires_grad=True)
    idx = torch.randint(0, 4, (10, 2))
    idx[0, 1] = -1  # dropped pair
    w = torch.rand(10, 2, dtype=torch.float64, requires_grad=True)
    recv, per_expert, h = dispatch(x, idx, w, 4, None, fp8=False, comm_dtype=None)
    assert sum(per_expert) == 19 and recv.shape == (19, 256)
    scale = torch.arange(1.0, 5.0, dtype=torch.float64).repeat_interleave(torch.tensor(per_expert))
    out = combine(recv * scale[:, None], h)  # "expert e" multiplies by e+1
    valid = (idx >= 0).double()
    want = x * ((w * valid) * (idx.clamp_min(0) + 1)).sum(1, keepdim=True)
    assert torch.allclose(out, want)

    def moe(x_, w_):  # identity experts; small H keeps gradcheck fast
        recv_, _, h_ = dispatch(x_, idx, w_, 4, None, fp8=False, comm_dtype=None)
        return combine(recv_.sin(), h_)

    assert torch.autograd.gradcheck(moe, (x[:, :8].detach().requires_grad_(), w))
