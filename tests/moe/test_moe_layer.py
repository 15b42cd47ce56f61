"""Single-process tests of ExpertParallelMoE / apply_expert_parallel (group of 1, no comm)."""

import copy
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from grpo.moe import BalancingBias, ExpertParallelMoE, apply_expert_parallel, update_balancing_biases

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _moe_dist_worker import EXPERTS, HIDDEN, TOP_K, make_qwen_block  # noqa: E402


def _init(module, std=0.05):
    torch.manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0.0, std)
    return module


def test_tiny_qwen2_moe_model_swap_matches():
    from transformers import Qwen2MoeConfig, Qwen2MoeForCausalLM

    cfg = Qwen2MoeConfig(
        vocab_size=64, hidden_size=128, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, num_experts=EXPERTS, num_experts_per_tok=TOP_K, moe_intermediate_size=32,
        shared_expert_intermediate_size=64, output_router_logits=True,
    )  # fmt: skip
    torch.manual_seed(0)
    model = Qwen2MoeForCausalLM(cfg).eval()
    _init(model.model.layers)  # fused experts start as torch.empty
    ep_model = apply_expert_parallel(copy.deepcopy(model), None, fp8=False, comm_dtype=None)
    assert sum(isinstance(m, ExpertParallelMoE) for m in ep_model.modules()) == 2
    assert apply_expert_parallel(ep_model) is ep_model  # idempotent
    assert set(ep_model.state_dict()) == set(model.state_dict())  # same checkpoint keys
    ids = torch.randint(0, 64, (2, 9))
    ref, out = model(ids, labels=ids), ep_model(ids, labels=ids)
    torch.testing.assert_close(out.logits, ref.logits, rtol=1e-5, atol=1e-5)
    # router logits are still recorded (aux loss keeps working)
    assert out.aux_loss is not None and torch.allclose(out.aux_loss, ref.aux_loss)


def test_mixtral_block_matches():
    from transformers import MixtralConfig
    from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock

    cfg = MixtralConfig(hidden_size=HIDDEN, num_local_experts=EXPERTS, num_experts_per_tok=TOP_K, intermediate_size=64)
    block = _init(MixtralSparseMoeBlock(cfg)).eval()
    ep = ExpertParallelMoE(copy.deepcopy(block), None, fp8=False, comm_dtype=None).eval()
    x = torch.randn(2, 7, HIDDEN)
    torch.testing.assert_close(ep(x), block(x), rtol=1e-5, atol=1e-5)
    ep8 = ExpertParallelMoE(copy.deepcopy(block), None, fp8=True).eval()  # default FP8 + bf16 combine
    ref = block(x)
    assert (ep8(x) - ref).norm() / ref.norm() < 2.0**-4


class Qwen2MoeSparseMoeBlock(nn.Module):  # noqa: N801 - mimics the transformers 4.x layout by name
    """transformers 4.x style: Linear gate, ModuleList of MLPs, returns (out, router_logits)."""

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.gate_proj, self.up_proj = nn.Linear(HIDDEN, 32, bias=False), nn.Linear(HIDDEN, 32, bias=False)
            self.down_proj, self.act_fn = nn.Linear(32, HIDDEN, bias=False), nn.SiLU()

        def forward(self, x):
            return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))

    def __init__(self):
        super().__init__()
        self.num_experts, self.top_k, self.norm_topk_prob = EXPERTS, TOP_K, False
        self.gate = nn.Linear(HIDDEN, EXPERTS, bias=False)
        self.experts = nn.ModuleList(self.MLP() for _ in range(EXPERTS))

    def forward(self, x):  # dense reference of the 4.x routing
        x2 = x.reshape(-1, HIDDEN)
        logits = self.gate(x2)
        w, idx = torch.topk(logits.softmax(-1), TOP_K, dim=-1)
        all_out = torch.stack([e(x2) for e in self.experts], 1)  # [N, E, H]
        out = (all_out.gather(1, idx[..., None].expand(-1, -1, HIDDEN)) * w[..., None]).sum(1)
        return out.reshape(x.shape), logits


def test_legacy_modulelist_layout():
    block = _init(Qwen2MoeSparseMoeBlock())
    ep = ExpertParallelMoE(copy.deepcopy(block), None, fp8=False, comm_dtype=None)
    assert ep.legacy and ep.experts.gate_up_proj.shape == (EXPERTS, 64, HIDDEN)
    x = torch.randn(3, 5, HIDDEN)
    (out, logits), (ref, ref_logits) = ep(x), block(x)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logits, ref_logits)


def test_unsupported_models_raise():
    with pytest.raises(NotImplementedError, match="no MoE block"):
        apply_expert_parallel(nn.Sequential(nn.Linear(4, 4)))

    class FancyMoE(nn.Module):
        def __init__(self):
            super().__init__()
            self.gate, self.experts = nn.Linear(4, 2), nn.ModuleList([nn.Linear(4, 4)] * 2)

    with pytest.raises(NotImplementedError, match="unsupported MoE blocks.*FancyMoE"):
        apply_expert_parallel(nn.Sequential(FancyMoE()))


def test_balancing_bias_reduces_load_imbalance():
    block = make_qwen_block()
    with torch.no_grad():  # skew the router: experts 0 and 1 win for almost every token
        block.gate.weight[:2] += 0.01
    ep = ExpertParallelMoE(block, None, fp8=False, balancing=True, update_rate=0.01).train()
    gen = torch.Generator().manual_seed(3)
    ratios = []  # max/mean expert load per step
    for _ in range(40):
        x = torch.randn(1, 64, HIDDEN, generator=gen).abs()  # positive inputs: the skewed rows dominate
        with torch.no_grad():
            ep(x)
        (load,) = update_balancing_biases(ep)  # one "optimizer step"
        ratios.append((load.max() / load.float().mean()).item())
    assert ratios[0] >= 3.5  # 8 experts, top-2, all load on 2 experts -> max/mean = 4
    late = ratios[-10:]
    assert sum(late) / 10 < 2.2 and max(late) < 2.8, ratios
    assert ep.balancer.bias[:2].mean() < ep.balancer.bias[2:].mean()  # skewed experts pushed down


def test_bias_changes_selection_not_weights():
    block = make_qwen_block()
    ep = ExpertParallelMoE(block, None, balancing=True)
    x = torch.randn(16, HIDDEN)
    ep.balancer.bias.copy_(torch.tensor([1.0] + [0.0] * (EXPERTS - 1)))  # force expert 0 in
    logits, w, idx = ep.route(x)
    assert (idx == 0).any(-1).all()  # selection follows the biased scores
    probs = logits.float().softmax(-1).gather(-1, idx)
    torch.testing.assert_close(w, probs / probs.sum(-1, keepdim=True))  # weights: unbiased probs
    assert not ep.balancer.bias.requires_grad


def test_balancing_bias_update_rule():
    b = BalancingBias(3, update_rate=0.5)
    b.update(torch.tensor([3, 1, 2]))  # mean 2: over, under, exact
    assert b.bias.tolist() == [-0.5, 0.5, 0.0]
