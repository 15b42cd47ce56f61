"""The trainer on a GPU: policy, reference and engine copy live there (skipped without one)."""
from pathlib import Path

import pytest
import torch

from grpo.config import load_config
from grpo.run.metrics import read_metrics
from grpo.train.trainer import Trainer

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("extra", [[], ["rollout.overlap=true", "algorithm.beta=0.02"]])
def test_trains_on_the_gpu(tmp_path, extra):
    cfg = load_config(ROOT / "recipes/tiny/r1_zero.yaml", [
        f"model.path={ROOT / 'data/tiny_model'}", f"output.dir={tmp_path}", "train.steps=2",
        "train.prompts_per_step=4", "rollout.n=4", "rollout.max_new_tokens=32", "output.tensorboard=false",
        "data.num_samples=32", "rewards=[{name: overlong_penalty, kwargs: {max_len: 16, cache_len: 16}}]"] + extra)
    tr = Trainer(cfg)
    assert all(p.is_cuda for p in tr.policy.parameters())
    before = [p.detach().clone() for p in tr.policy.parameters()]
    run = tr.train()
    assert len(read_metrics(run)) == 2
    assert any(not torch.equal(a, b) for a, b in zip(before, tr.policy.parameters()))
