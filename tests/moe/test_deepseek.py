"""DeepSeek-V3 MoE blocks in one process: the EP swap, native-bias balancing, grouped GEMM."""

import copy
import sys
from pathlib import Path

import pytest
import torch

from grpo.moe import ExpertParallelMoE, apply_expert_parallel, update_balancing_biases
from grpo.moe.experts import LocalExperts, grouped_linear

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _moe_dist_worker import EXPERTS, HIDDEN, make_dsv3_block  # noqa: E402


def tiny_dsv3_model(vocab=64, layers=3, seed=0):
    """DeepseekV3ForCausalLM: MLA attention, first layer dense, 8 experts in 4 groups."""
    from transformers import DeepseekV3Config, DeepseekV3ForCausalLM

    cfg = DeepseekV3Config(
        vocab_size=vocab, hidden_size=64, intermediate_size=96, moe_intermediate_size=32, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=4, n_routed_experts=EXPERTS, num_experts_per_tok=3,
        n_shared_experts=1, n_group=4, topk_group=2, first_k_dense_replace=1, q_lora_rank=32, kv_lora_rank=16,
        qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16, max_position_embeddings=128,
    )  # fmt: skip
    torch.manual_seed(seed)
    return DeepseekV3ForCausalLM(cfg).eval()


def test_tiny_deepseek_v3_model_swap_matches():
    model = tiny_dsv3_model()
    ep_model = apply_expert_parallel(copy.deepcopy(model), None, fp8=False, comm_dtype=None)
    assert sum(isinstance(m, ExpertParallelMoE) for m in ep_model.modules()) == 2  # layer 0 stays dense
    assert set(ep_model.state_dict()) == set(model.state_dict())  # same checkpoint keys, bias included
    ids = torch.randint(0, 64, (2, 9))
    torch.testing.assert_close(ep_model(ids).logits, model(ids).logits, rtol=1e-5, atol=1e-5)
    fp8 = apply_expert_parallel(copy.deepcopy(model), None).eval()  # FP8 dispatch, bf16 combine
    ref = model(ids).logits
    assert 0 < (fp8(ids).logits - ref).norm() / ref.norm() < 2.0**-4


def test_native_bias_balancer_reduces_load_imbalance():
    block = make_dsv3_block()
    with torch.no_grad():  # skew the router: experts 0 and 1 (group 0) win for almost every token
        block.gate.weight[:2] += 0.05
        block.gate.e_score_correction_bias.zero_()
    ep = ExpertParallelMoE(block, None, fp8=False, balancing=True, update_rate=0.01).train()
    assert ep.balancer is None and ep.bias_updater.bias is ep.gate.e_score_correction_bias  # the model's own
    assert not any("balancer" in k for k in ep.state_dict())
    gen = torch.Generator().manual_seed(3)
    ratios = []
    for _ in range(60):
        x = torch.randn(1, 64, HIDDEN, generator=gen).abs()
        with torch.no_grad():
            ep(x)
        (load,) = update_balancing_biases(ep)
        ratios.append((load.max() / load.float().mean()).item())
    bias = ep.gate.e_score_correction_bias
    assert ratios[0] > 2.0, ratios[0]  # skewed: experts 0, 1 take most of the top-3 slots
    assert max(ratios[-10:]) < 0.6 * ratios[0], (ratios[0], ratios[-10:])
    assert bias[:2].max() < 0 < bias[2:].max()  # the overloaded experts were pushed down
    # the stepped bias is the state-dict buffer: saving the model saves it, loading restores it
    fresh = make_dsv3_block()
    missing = fresh.load_state_dict({k: v for k, v in ep.state_dict().items() if "experts." not in k}, strict=False)
    assert "gate.e_score_correction_bias" not in missing.missing_keys
    assert torch.equal(fresh.gate.e_score_correction_bias, bias)


def test_balancing_off_leaves_native_bias_alone():
    block = make_dsv3_block()
    before = block.gate.e_score_correction_bias.clone()
    ep = ExpertParallelMoE(block, None, fp8=False).train()
    ep(torch.randn(1, 8, HIDDEN))
    assert update_balancing_biases(ep) == [] and torch.equal(ep.gate.e_score_correction_bias, before)


@pytest.mark.parametrize("sizes", [[3, 0, 5, 1], [0, 0, 0, 4], [0, 0, 0, 0], [7, 7, 7, 7]])
def test_grouped_gemm_matches_expert_loop(sizes):
    torch.manual_seed(0)
    gu, dn = torch.randn(4, 2 * 16, 32), torch.randn(4, 32, 16)
    grouped = LocalExperts(gu, dn, torch.nn.functional.silu, requires_grad=True, grouped=True)
    loop = LocalExperts(gu, dn, torch.nn.functional.silu, requires_grad=True, grouped=False)
    x = torch.randn(sum(sizes), 32)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = grouped(xa, sizes), loop(xb, sizes)
    torch.testing.assert_close(ya, yb, rtol=1e-5, atol=1e-5)
    ya.sum().backward()  # an expanded (stride-0) grad: the kernel's backward needs it contiguous
    yb.sum().backward()
    for a, b in [(xa.grad, xb.grad), (grouped.gate_up_proj.grad, loop.gate_up_proj.grad),
                 (grouped.down_proj.grad, loop.down_proj.grad)]:  # fmt: skip
        if b is None:
            assert a is None or a.abs().sum() == 0
        else:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_grouped_linear_bf16_and_float64():
    x, w = torch.randn(6, 8), torch.randn(2, 4, 8)
    ref = grouped_linear(x, w, [2, 4])
    torch.testing.assert_close(grouped_linear(x.bfloat16(), w.bfloat16(), [2, 4]).float(), ref, rtol=3e-2, atol=3e-2)
    torch.testing.assert_close(grouped_linear(x.double(), w.double(), [2, 4]).float(), ref)


def _blocks():
    from transformers import DeepseekV2Config, OlmoeConfig
    from transformers.models.deepseek_v2.modeling_deepseek_v2 import DeepseekV2Moe
    from transformers.models.olmoe.modeling_olmoe import OlmoeSparseMoeBlock

    v2 = DeepseekV2Config(hidden_size=HIDDEN, n_routed_experts=EXPERTS, num_experts_per_tok=3, moe_intermediate_size=32,
                          n_shared_experts=2, n_group=4, topk_group=2, topk_method="group_limited_greedy",
                          routed_scaling_factor=1.5)  # fmt: skip
    olmoe = OlmoeConfig(hidden_size=HIDDEN, num_experts=EXPERTS, num_experts_per_tok=2, intermediate_size=32)
    return {"deepseek_v2": lambda: DeepseekV2Moe(v2), "olmoe": lambda: OlmoeSparseMoeBlock(olmoe)}


@pytest.mark.parametrize("name", ["deepseek_v2", "olmoe"])
def test_other_family_blocks_match(name):
    torch.manual_seed(0)
    block = _blocks()[name]()
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0.0, 0.05)
    x = torch.randn(2, 7, HIDDEN)
    ep = ExpertParallelMoE(copy.deepcopy(block), None, fp8=False, comm_dtype=None)
    torch.testing.assert_close(ep(x), block(x), rtol=1e-5, atol=1e-5)
    assert set(ep.state_dict()) == set(block.state_dict())


def test_dedup_dispatch_equals_pairwise_with_hostile_routing():
    """Duplicate experts in a token's top-k, dropped ids (-1, E), all-dropped tokens, 1-rank group."""
    from grpo.moe import combine, dispatch

    torch.manual_seed(0)
    x = torch.randn(6, 200)
    idx = torch.tensor([[0, 0, 3], [7, -1, 8], [1, 2, 3], [-1, -1, -1], [5, 5, 5], [6, 7, 0]])
    w = torch.rand(6, 3)
    outs = {}
    for dedup in (False, True):
        xx, ww = x.clone().requires_grad_(), w.clone().requires_grad_()
        recv, per_expert, h = dispatch(xx, idx, ww, 8, None, fp8=False, comm_dtype=None, dedup=dedup)
        y = combine(recv * 2.0, h)  # "experts" double their input
        y.square().sum().backward()
        outs[dedup] = (y.detach(), xx.grad, ww.grad, sum(per_expert))
    (y0, gx0, gw0, n0), (y1, gx1, gw1, n1) = outs[False], outs[True]
    torch.testing.assert_close(y1, y0)
    torch.testing.assert_close(gx1, gx0)
    torch.testing.assert_close(gw1, gw0)  # a merged duplicate pair passes its grad to both weights
    assert n0 == 13 and n1 == 10  # token 0 -> {0, 3}, token 4 -> {5}: duplicates merged
    assert torch.equal(y0[3], torch.zeros(200))  # every expert dropped: no contribution


def test_single_process_balancing_through_parallel_wiring():
    """parallel.expert=1 + expert_balance_rate: blocks swapped (1 rank, no FP8), bias stepped per step."""
    from grpo.config import load_config
    from grpo.dist.parallel import Parallel

    root = Path(__file__).resolve().parents[2]
    cfg = load_config(root / "recipes/tiny/r1_zero.yaml", ["parallel.expert_balance_rate=0.01"])
    par = Parallel(cfg)
    model = par.prepare(tiny_dsv3_model().train())
    blocks = [m for m in model.modules() if isinstance(m, ExpertParallelMoE)]
    assert len(blocks) == 2 and not blocks[0].fp8
    model(torch.randint(0, 64, (2, 9))).logits.sum().backward()
    par.sync_and_clip(model, 1.0)
    for b in blocks:
        assert b.gate.e_score_correction_bias.abs().max().item() == pytest.approx(0.01)
    sd = par.full_state_dict(model)
    assert sd is not None and not any("balancer" in k for k in sd)
    assert all(torch.equal(sd[f"{n}.gate.e_score_correction_bias"], m.gate.e_score_correction_bias)
               for n, m in model.named_modules() if isinstance(m, ExpertParallelMoE))  # fmt: skip
