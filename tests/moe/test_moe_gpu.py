"""GPU checks: Triton fused gather+quantize kernel vs the torch reference (skipped on CPU)."""

import pytest
import torch

from grpo.moe import dequantize_fp8, dispatch, combine, quantize_fp8, quantize_fp8_torch, triton_available

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize("hidden", [256, 7168, 200])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_triton_quant_matches_torch(hidden, dtype):
    if not triton_available():
        pytest.skip("triton or sm89+ GPU not available")
    torch.manual_seed(0)
    x = (torch.randn(513, hidden, device="cuda") * 3).to(dtype)
    idx = torch.randint(0, 513, (1000,), device="cuda")
    qt, st = quantize_fp8(x, idx, use_triton=True)
    qr, sr = quantize_fp8_torch(x, idx)
    torch.testing.assert_close(st, sr, rtol=1e-6, atol=0)
    yt, yr = dequantize_fp8(qt, st), dequantize_fp8(qr, sr)
    # identical up to a rare one-ulp difference (fp32 division rounding on device): 2^-3 relative
    s = sr.repeat_interleave(128, 1)[:, :hidden]
    assert ((yt - yr).abs() <= 2.0**-3 * yr.abs() + 2.0**-9 * s).all()
    assert (qt.view(torch.uint8) != qr.view(torch.uint8)).float().mean() < 1e-3


def test_local_dispatch_on_cuda():
    x = torch.randn(64, 256, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    idx = torch.randint(0, 8, (64, 2), device="cuda")
    w = torch.rand(64, 2, device="cuda")
    recv, per_expert, h = dispatch(x, idx, w, 8, None, fp8=True)
    out = combine(recv, h)
    want = x.float() * w.sum(1, keepdim=True)
    assert ((out.float() - want).abs() <= 2.0**-4 * want.abs() * 2 + 0.02).all()
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
