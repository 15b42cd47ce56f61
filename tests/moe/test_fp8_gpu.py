"""torchao float8 training on an H100-class GPU (skipped elsewhere)."""
import pytest
import torch

pytestmark = pytest.mark.gpu


@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.get_device_capability() < (8, 9),
                    reason="needs an FP8-capable GPU (sm89+)")
def test_fp8_linear_trains():
    pytest.importorskip("torchao")
    from grpo.train.fp8 import enable_fp8_training
    model = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256)).cuda().bfloat16()
    enable_fp8_training(model)
    assert "Float8" in type(model[0]).__name__
    x = torch.randn(64, 256, device="cuda", dtype=torch.bfloat16)
    loss = model(x).float().pow(2).mean()
    loss.backward()
    assert model[0].weight.grad is not None
