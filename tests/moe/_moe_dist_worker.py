"""Worker bodies for the multi-process (gloo) tests; imported by spawned children.

Kept apart from the test module so children import only torch + grpo.moe
(+ transformers where a scenario needs it), not pytest fixtures.
"""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

ROOT = str(Path(__file__).resolve().parents[2])
for _p in (ROOT, str(Path(ROOT) / "tests")):  # children inherit sys.path: grpo, tests/_gloo_spawn.py
    if _p not in sys.path:
        sys.path.insert(0, _p)
import _gloo_spawn  # noqa: E402

HIDDEN, EXPERTS, TOP_K, INTER, SHARED_INTER = 256, 8, 2, 64, 128
TOKENS_PER_RANK = 12
# FP8 parity tolerance, as a norm-wise relative error ||ep - ref|| / ||ref||.
# Each dispatched element is rounded to e4m3 (3 mantissa bits, round-to-nearest:
# relative error <= 2^-4 w.r.t. its block-scaled value); the expert MLP maps a
# 2^-4-relative input perturbation to (at most about) the same relative output
# perturbation at these scales, and the bf16 combine adds <= 2^-9.  Routing is
# decided on the home rank before quantization, so no expert choice flips.
# Gradients see the same perturbation (expert Jacobians / weight grads are
# evaluated at the dequantized inputs; FP8 rounding is straight-through).
FP8_RTOL = 2.0**-4
EXACT_TOL = 1e-5  # fp8=False, comm_dtype=None: same math, only summation order differs


# Children start from a fresh interpreter (no fork of the pytest process and its
# threads), but via a forkserver that imports torch/transformers once per pytest
# session: with plain "spawn" every child pays ~8 CPU-s of imports, which alone
# breaks the 30 s budget for 4 processes on 2 cores.
_PRELOAD = [
    "torch", "torch.distributed", "transformers.models.qwen2_moe.modeling_qwen2_moe",
    "transformers.models.deepseek_v3.modeling_deepseek_v3", "grpo.moe", "_gloo_spawn", __name__,
]  # fmt: skip


def spawn(fn_name: str, world: int, *args) -> None:
    """Run ``fn_name(rank, world, *args)`` in ``world`` gloo processes; re-raises failures."""
    mp.get_context("forkserver").set_forkserver_preload(_PRELOAD)
    _gloo_spawn.spawn(__name__, fn_name, world, args, start_method="forkserver")


def make_qwen_block(seed: int = 0):
    """Tiny Qwen2-MoE block (hidden 256, 8 experts, top-2) with random weights, seeded."""
    from transformers import Qwen2MoeConfig
    from transformers.models.qwen2_moe.modeling_qwen2_moe import Qwen2MoeSparseMoeBlock

    cfg = Qwen2MoeConfig(
        hidden_size=HIDDEN, num_experts=EXPERTS, num_experts_per_tok=TOP_K, moe_intermediate_size=INTER,
        shared_expert_intermediate_size=SHARED_INTER, norm_topk_prob=True,
    )  # fmt: skip
    cfg._experts_implementation = "eager"
    torch.manual_seed(seed)
    block = Qwen2MoeSparseMoeBlock(cfg)
    with torch.no_grad():  # fused expert params are torch.empty: initialize everything
        for p in block.parameters():
            p.normal_(0.0, 0.05)
    return block


def make_dsv3_block(seed: int = 0, top_k: int = 3):
    """Tiny DeepSeek-V3 MoE block: sigmoid gate, 4 groups of 2 experts, top-2 groups, top-3
    experts, one shared expert, routed scaling 2.5, a non-zero ``e_score_correction_bias``."""
    from transformers import DeepseekV3Config
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3MoE

    cfg = DeepseekV3Config(
        hidden_size=HIDDEN, n_routed_experts=EXPERTS, num_experts_per_tok=top_k, moe_intermediate_size=INTER,
        n_shared_experts=1, n_group=4, topk_group=2, routed_scaling_factor=2.5, norm_topk_prob=True,
    )  # fmt: skip
    cfg._experts_implementation = "eager"
    torch.manual_seed(seed)
    block = DeepseekV3MoE(cfg)
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0.0, 0.05)
        block.gate.e_score_correction_bias.copy_(torch.randn(EXPERTS) * 0.02)
    return block


BLOCKS = {"qwen": make_qwen_block, "dsv3": make_dsv3_block}


def _params(ep, ref_block, kind):
    """(EP param, reference param) of a replicated router and shared expert."""
    if kind == "dsv3":
        return [(ep.gate.weight, ref_block.gate.weight),
                (ep.shared_experts.down_proj.weight, ref_block.shared_experts.down_proj.weight)]  # fmt: skip
    return [(ep.gate.weight, ref_block.gate.weight),
            (ep.shared_expert.down_proj.weight, ref_block.shared_expert.down_proj.weight)]  # fmt: skip


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def parity(rank: int, world: int, kind: str = "qwen") -> None:
    """EP block on W ranks == single-process block: outputs and all gradients, dedup on and off."""
    from grpo.moe import ExpertParallelMoE

    ref_block = BLOCKS[kind]()
    torch.manual_seed(1)
    x_full = torch.randn(world, TOKENS_PER_RANK, HIDDEN)  # [W, T, H] same on every rank
    g_full = torch.randn_like(x_full)  # upstream gradient
    x_ref = x_full.clone().requires_grad_()
    (ref_block(x_ref) * g_full).sum().backward()
    ref_out = ref_block(x_full)[rank].detach()
    lo, hi = rank * EXPERTS // world, (rank + 1) * EXPERTS // world

    cases = [(False, None, EXACT_TOL, True), (True, torch.bfloat16, FP8_RTOL, True), (False, None, EXACT_TOL, False)]
    for fp8, comm_dtype, tol, dedup in cases:
        ep = ExpertParallelMoE(copy.deepcopy(ref_block), dist.group.WORLD, fp8=fp8, comm_dtype=comm_dtype, dedup=dedup)
        assert ep.experts.gate_up_proj.shape[0] == EXPERTS // world  # only local experts kept
        x = x_full[rank : rank + 1].clone().requires_grad_()  # this rank's tokens [1, T, H]
        out = ep(x)
        (out * g_full[rank : rank + 1]).sum().backward()
        checks = {
            "output": (out[0].detach(), ref_out),
            "grad x": (x.grad[0], x_ref.grad[rank]),
            # expert grads already sum every rank's tokens (they came through the all-to-all)
            "grad gate_up": (ep.experts.gate_up_proj.grad, ref_block.experts.gate_up_proj.grad[lo:hi]),
            "grad down": (ep.experts.down_proj.grad, ref_block.experts.down_proj.grad[lo:hi]),
        }
        # replicated params: per-rank grads sum to the reference (what DDP's all-reduce does)
        for name, (p, q) in zip(("grad router", "grad shared"), _params(ep, ref_block, kind)):
            dist.all_reduce(p.grad)
            checks[name] = (p.grad, q.grad)
        for name, (a, b) in checks.items():
            err = rel(a, b)
            if os.environ.get("GRPO_MOE_VERBOSE"):
                print(f"{kind} world={world} rank={rank} fp8={fp8} dedup={dedup} {name}: rel err {err:.2e}", flush=True)
            assert err <= tol, f"{kind} rank {rank} fp8={fp8} dedup={dedup} {name}: rel err {err:.2e} > {tol:.2e}"
            if fp8:  # FP8 must actually perturb (guards against silently sending bf16/fp32)
                assert name != "output" or err > 1e-4, f"fp8 output suspiciously exact ({err:.1e})"


def _dispatch_bytes(x, idx, w, fp8: bool, dedup: bool) -> tuple[int, int]:
    """(dispatch bytes, combine bytes) this rank sent to other ranks."""
    from grpo.moe import CommStats, combine, dispatch

    stats = CommStats()
    recv, _, h = dispatch(x, idx, w, EXPERTS, None, fp8=fp8, comm_dtype=torch.bfloat16, stats=stats, dedup=dedup)
    combine(recv, h)
    return stats.dispatch_bytes, stats.combine_bytes


def bytes_ratio(rank: int, world: int, result_dir: str) -> None:
    """Dispatch bytes: FP8 vs bf16, with and without dedup, for random top-2 routing and
    for a DeepSeek-V3 gate's group-limited top-3 (4 groups, top-2 groups)."""
    torch.manual_seed(0)  # same routing everywhere is fine; each rank still sends to all
    x = torch.randn(32, HIDDEN)
    idx = torch.stack([torch.randperm(EXPERTS)[:TOP_K] for _ in range(32)])  # [32, 2] distinct experts
    w = torch.rand(32, TOP_K)
    gate = make_dsv3_block().gate
    torch.manual_seed(10 + rank)
    xd = torch.randn(64, HIDDEN)
    with torch.no_grad():
        _, wd, idd = gate(xd)
    sent = {}
    for name, (xx, ii, ww) in {"random": (x, idx, w), "dsv3": (xd, idd, wd)}.items():
        for fp8, dedup in [(True, False), (False, False), (True, True)]:
            key = f"{name}_{'fp8' if fp8 else 'bf16'}{'_dedup' if dedup else ''}"
            sent[key], sent[f"combine_{key}"] = _dispatch_bytes(xx, ii, ww, fp8, dedup)
    torch.save(sent, os.path.join(result_dir, f"bytes_{rank}.pt"))


def balance_sync(rank: int, world: int) -> None:
    """Per-rank loads differ, but after update_bias every rank holds the same bias."""
    from grpo.moe import ExpertParallelMoE, update_balancing_biases

    ep = ExpertParallelMoE(make_qwen_block(), dist.group.WORLD, balancing=True, update_rate=0.01).train()
    torch.manual_seed(100 + rank)  # different tokens per rank
    ep(torch.randn(1, TOKENS_PER_RANK, HIDDEN))
    local = ep._load.clone()
    (load,) = update_balancing_biases(ep)
    total = local.clone()
    dist.all_reduce(total)
    assert torch.equal(load, total) and int(load.sum()) == world * TOKENS_PER_RANK * TOP_K
    biases = [torch.empty(EXPERTS) for _ in range(world)]
    dist.all_gather(biases, ep.balancer.bias)
    assert all(torch.equal(b, biases[0]) for b in biases)
    assert torch.equal(ep.balancer.bias, 0.01 * torch.sign(load.float().mean() - load.float()))


def ep_with_dp(rank: int, world: int, ep_size: int) -> None:
    """world = ep_size x dp: EP groups + expert-DP grad sync == DDP-mean reference."""
    from grpo.moe import (
        allreduce_expert_grads,
        apply_expert_parallel,
        clip_grad_norm_ep_,
        expert_parallel_groups,
        gather_expert_state_dict,
    )

    ep_group, edp_group = expert_parallel_groups(ep_size)
    ref_block = make_qwen_block()
    torch.manual_seed(2)
    x_full = torch.randn(world, TOKENS_PER_RANK, HIDDEN)
    x_ref = x_full.clone().requires_grad_()
    (ref_block(x_ref).square().sum() / world).backward()  # DDP objective: mean of per-rank losses

    holder = torch.nn.Sequential(copy.deepcopy(ref_block))
    apply_expert_parallel(holder, ep_group, fp8=False, comm_dtype=None)
    ep = holder[0]
    ep(x_full[rank : rank + 1]).square().sum().backward()
    allreduce_expert_grads(holder, edp_group)
    lo, hi = ep.expert_range
    assert (lo, hi) == ((rank % ep_size) * EXPERTS // ep_size, (rank % ep_size + 1) * EXPERTS // ep_size)
    for got, want in [
        (ep.experts.gate_up_proj.grad, ref_block.experts.gate_up_proj.grad[lo:hi]),
        (ep.experts.down_proj.grad, ref_block.experts.down_proj.grad[lo:hi]),
    ]:
        assert rel(got, want) <= EXACT_TOL, rel(got, want)

    # full checkpoint from the shards == the unsharded weights
    full = gather_expert_state_dict(holder)
    assert torch.equal(full["0.experts.gate_up_proj"], ref_block.experts.gate_up_proj.detach())
    assert torch.equal(full["0.experts.down_proj"], ref_block.experts.down_proj.detach())

    # EP-aware clipping: every rank gets the reference's global norm (DDP-averaged dense grads)
    for p in holder.parameters():
        if p.grad is not None and p.grad.data_ptr() not in {q.grad.data_ptr() for q in ep.experts.parameters()}:
            dist.all_reduce(p.grad)
            p.grad /= world  # what DDP does for the replicated params
    norm = clip_grad_norm_ep_(holder, 1e-3, ep_group)
    ref_norm = torch.cat([p.grad.flatten() for p in ref_block.parameters() if p.grad is not None]).norm()
    assert abs(norm.item() - ref_norm.item()) <= 1e-5 * ref_norm.item(), (norm, ref_norm)
    clipped = torch.cat([p.grad.flatten() for p in ep.experts.parameters()]).norm() ** 2
    dist.all_reduce(clipped, group=ep_group)
    assert clipped.item() <= 1e-6 * 1.01  # the shards' share of a total clipped to 1e-3
