"""Single-process pieces of the FSDP2 path (no process group): layer discovery, clipping,
the recipe errors raised before any process group starts."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from grpo.dist import fsdp as F
from grpo.config import ConfigError, load_config
from grpo.dist.parallel import Parallel
from grpo.model.policy import load_policy

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "tiny" / "r1_zero.yaml"


def test_decoder_layers_plain_and_peft():
    _, model = load_policy(str(ROOT / "data" / "tiny_model"))
    layers = F.decoder_layers(model)
    assert [type(m).__name__ for m in layers] == ["LlamaDecoderLayer"] * 4
    from grpo.config import LoraConfig
    _, peft = load_policy(str(ROOT / "data" / "tiny_model"), lora=LoraConfig(r=4))
    assert [type(m).__name__ for m in F.decoder_layers(peft)] == ["LlamaDecoderLayer"] * 4


def test_decoder_layers_fallback_longest_module_list():
    m = torch.nn.Module()
    m.a, m.b = torch.nn.ModuleList([torch.nn.Linear(2, 2)]), torch.nn.ModuleList([torch.nn.Linear(2, 2)] * 3)
    assert len(F.decoder_layers(m)) == 3


def test_clip_matches_torch_without_a_process_group():
    torch.manual_seed(0)
    a, b = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    b.load_state_dict(a.state_dict())
    x = torch.randn(5, 4)
    for m in (a, b):
        (m(x) ** 2).sum().mul(10).backward()
    want = torch.nn.utils.clip_grad_norm_(list(a.parameters()), 0.5)
    got = F.clip_grad_norm_(b, 0.5)
    torch.testing.assert_close(got, want)
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(q.grad, p.grad)


def test_shard_bytes_counts_adamw_state():
    m = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(m.parameters())
    m(torch.randn(2, 4)).sum().backward()
    opt.step()
    assert F.shard_bytes(m, opt) == {"params": 60, "grads": 60, "optimizer": 120}


@pytest.mark.parametrize("sets, msg", [
    (["parallel.fsdp=false"], "parallel.fsdp: false runs one process"),
    (["train.prompts_per_step=3"], "must be divisible by the number of processes"),
    (["rollout.engine=server", "rollout.weight_sync=broadcast"], "weight_sync=http"),
])
def test_several_process_errors_before_any_process_group(monkeypatch, sets, msg):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ConfigError, match=msg):
        Parallel(load_config(RECIPE, sets))
    assert not torch.distributed.is_initialized()


def test_one_process_agreement_helpers_are_identities():
    par = Parallel(load_config(RECIPE, []))
    assert not par.fsdp and not torch.distributed.is_initialized()
    mbs = [torch.arange(2), torch.arange(2, 3)]
    assert par.pad_micro_batches(mbs) == mbs and par.global_counts(7, 2) == (7, 2)
    assert par.reduce_sums({"a": 1.5, "b": None}) == {"a": 1.5, "b": None} and par.any(False) is False
    assert par.loss_scale == 1.0
