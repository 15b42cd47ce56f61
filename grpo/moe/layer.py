"""Expert-parallel drop-in replacement for transformers MoE blocks.

``apply_expert_parallel(model, group)`` swaps every supported sparse-MoE block
for an :class:`ExpertParallelMoE` that keeps the router (and shared expert)
replicated but only the ``E/W`` local experts' weights, and moves tokens with
:func:`grpo.moe.dispatch.dispatch` / :func:`~grpo.moe.dispatch.combine`.

Supported (by class name, so no transformers import is needed here):
``Qwen2MoeSparseMoeBlock``, ``Qwen3MoeSparseMoeBlock``, ``MixtralSparseMoeBlock``,
``OlmoeSparseMoeBlock``, ``DeepseekV3MoE`` (DeepSeek-V3, Moonlight, Kimi-K2 configs:
the model's own sigmoid + group-limited gate, shared experts, native
``e_score_correction_bias``) and ``DeepseekV2Moe`` (V2 / V2-Lite), in both expert layouts transformers has used - fused 3-D parameters
``experts.gate_up_proj [E, 2I, H]`` / ``experts.down_proj [E, H, I]``
(transformers 5.x) and an ``nn.ModuleList`` of per-expert MLPs (4.x;
``gate_proj/up_proj/down_proj`` or Mixtral's ``w1/w3/w2``).  Only the fused
layout is exercised by the tests (the installed transformers is 5.x).

Optional auxiliary-loss-free load balancing (DeepSeek-V3, arXiv 2412.19437,
Sec. 2.1.2): a per-expert bias is added to the routing scores *for top-k
selection only*; the gate values still come from the unbiased scores, and
after each optimizer step the bias moves by ``update_rate * sign(mean_load -
load_e)`` (not by gradient), see :mod:`grpo.moe.balance`.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn as nn

from grpo.moe.balance import BalancingBias, NativeBias, route_softmax
from grpo.moe.dispatch import combine, dispatch
from grpo.moe.experts import LocalExperts, expert_weights

__all__ = [
    "SUPPORTED_BLOCKS",
    "BalancingBias",
    "ExpertParallelMoE",
    "apply_expert_parallel",
    "update_balancing_biases",
    "expert_parallel_groups",
    "expert_parameter_names",
    "allreduce_expert_grads",
    "clip_grad_norm_ep_",
    "gather_expert_state_dict",
]

SUPPORTED_BLOCKS = (
    "Qwen2MoeSparseMoeBlock", "Qwen3MoeSparseMoeBlock", "MixtralSparseMoeBlock", "OlmoeSparseMoeBlock",
    "DeepseekV3MoE", "DeepseekV2Moe",
)  # fmt: skip
# blocks whose gate carries its own aux-loss-free bias (DeepSeek-V3 and its family)
_SHARED_NAMES = ("shared_expert", "shared_experts")  # Qwen2-MoE (gated) / DeepSeek (always on)


class ExpertParallelMoE(nn.Module):
    """Expert-parallel version of a transformers sparse-MoE block (same outputs).

    Keeps ``gate`` and the shared expert(s) (``shared_expert`` + ``shared_expert_gate``
    for Qwen2-MoE, ``shared_experts`` for DeepSeek) as they are - so state-dict keys,
    the ``router_logits`` recorder and the model's own routing (DeepSeek-V3's sigmoid
    scores, group-limited top-k and ``e_score_correction_bias``) are untouched - and
    ``experts.gate_up_proj`` / ``experts.down_proj`` sliced to ``expert_range``.
    Shared experts run locally on the home rank.

    ``balancing=True``: aux-loss-free balancing; a gate with a native
    ``e_score_correction_bias`` has that buffer stepped (:class:`NativeBias`),
    other routers get a :class:`BalancingBias` of ours.
    ``dedup=True`` sends each token once per destination rank (see ``dispatch``).
    """

    def __init__(
        self,
        block: nn.Module,
        group: dist.ProcessGroup | None = None,
        *,
        fp8: bool = True,
        comm_dtype: torch.dtype | None = torch.bfloat16,
        fp8_grad: bool = False,
        balancing: bool = False,
        update_rate: float = 1e-3,
        balance_group: dist.ProcessGroup | None = None,
        dedup: bool = True,
        grouped_gemm: bool | None = None,
    ):
        super().__init__()
        if type(block).__name__ not in SUPPORTED_BLOCKS:
            raise NotImplementedError(f"{type(block).__name__} is not supported; supported: {SUPPORTED_BLOCKS}")
        gate = block.gate
        self.legacy = isinstance(gate, nn.Linear)  # 4.x: gate is a Linear and block returns (out, logits)
        self.num_experts = getattr(gate, "num_experts", None) or getattr(block, "num_experts", None) or gate.weight.shape[0]
        self.top_k = getattr(gate, "top_k", None) or block.top_k
        self.norm_topk_prob = getattr(gate, "norm_topk_prob", getattr(block, "norm_topk_prob", True))  # Mixtral: always
        self.jitter_noise = getattr(block, "jitter_noise", 0.0)
        self.group, self.fp8, self.comm_dtype, self.fp8_grad, self.dedup = group, fp8, comm_dtype, fp8_grad, dedup
        inited = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank(group) if inited else 0
        self.world = dist.get_world_size(group) if inited else 1
        if self.num_experts % self.world:
            raise ValueError(f"{self.num_experts} experts cannot be split over {self.world} ranks")
        e_local = self.num_experts // self.world
        self.expert_range = (self.rank * e_local, (self.rank + 1) * e_local)
        self.gate = gate
        gu, dn, act = expert_weights(block.experts, *self.expert_range)
        self.experts = LocalExperts(gu, dn, act, requires_grad=gu.requires_grad, grouped=grouped_gemm)
        self._shared_name = next((n for n in _SHARED_NAMES if getattr(block, n, None) is not None), None)
        if self._shared_name:
            setattr(self, self._shared_name, getattr(block, self._shared_name))  # keeps its state-dict key
        self.shared_expert_gate = getattr(block, "shared_expert_gate", None)
        native = hasattr(gate, "e_score_correction_bias")
        self.balancer = BalancingBias(self.num_experts, update_rate) if balancing and not native else None
        self.bias_updater = NativeBias(gate, update_rate) if balancing and native else self.balancer
        self.balance_group = balance_group
        self._load: torch.Tensor | None = None  # [E] tokens routed per expert since last update (not a buffer: per-rank)
        self.route_hook = None  # set by grpo.moe.replay: record / force the routing

    def route(self, x: torch.Tensor):
        """``x [N, H]`` -> ``logits [N, E]``, ``weights [N, k]``, ``idx [N, k]``."""
        out = self.gate(x)  # calling the module keeps transformers' router-logit hooks working
        if isinstance(out, tuple) and self.balancer is None:
            return out
        logits = out[0] if isinstance(out, tuple) else out
        w, idx = route_softmax(logits, self.top_k, self.norm_topk_prob, self.balancer)
        return logits, w, idx  # fp32 gate values; combine casts the weighted rows to x.dtype

    def forward(self, hidden_states: torch.Tensor):
        shape = hidden_states.shape
        x = hidden_states.reshape(-1, shape[-1])  # [N, H]
        if self.training and self.jitter_noise > 0:  # Mixtral's multiplicative router jitter
            x = x * torch.empty_like(x).uniform_(1.0 - self.jitter_noise, 1.0 + self.jitter_noise)
        logits, weights, idx = self.route(x)
        if self.route_hook is not None:
            weights, idx = self.route_hook(self, logits, weights, idx)
        recv, per_expert, handle = dispatch(
            x, idx, weights, self.num_experts, self.group, self.fp8,
            comm_dtype=self.comm_dtype, fp8_grad=self.fp8_grad, dedup=self.dedup,
        )  # fmt: skip
        if self.bias_updater is not None and self.training:
            load = handle.send_counts.detach()
            self._load = load.clone() if self._load is None else self._load + load
        out = combine(self.experts(recv, per_expert), handle)  # [N, H]
        if self._shared_name:
            shared = getattr(self, self._shared_name)(x)  # local: no communication
            if self.shared_expert_gate is not None:  # Qwen2-MoE: sigmoid-gated
                shared = torch.sigmoid(self.shared_expert_gate(x)) * shared
            out = out + shared
        out = out.reshape(shape)
        return (out, logits) if self.legacy else out

    @torch.no_grad()
    def update_bias(self) -> torch.Tensor | None:
        """All-reduce the accumulated load, step the bias, reset.  Returns the global load [E]."""
        if self.bias_updater is None:
            return None
        # a rank that saw no training forward still joins the all-reduce (no hang)
        load = self._load.clone() if self._load is not None else torch.zeros(self.num_experts, dtype=torch.long)
        load = load.to(self.bias_updater.bias.device)
        if dist.is_available() and dist.is_initialized():
            # the bias must be identical on every replica of this layer -> reduce over all of them
            dist.all_reduce(load, group=self.balance_group)
        self.bias_updater.update(load)
        self._load = None
        return load


def _parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    *path, leaf = name.split(".")
    mod = model
    for p in path:
        mod = getattr(mod, p)
    return mod, leaf


def apply_expert_parallel(model: nn.Module, group: dist.ProcessGroup | None = None, **kwargs) -> nn.Module:
    """Replace every supported MoE block of ``model`` in place; returns ``model``.

    ``kwargs`` go to :class:`ExpertParallelMoE` (``fp8``, ``comm_dtype``,
    ``fp8_grad``, ``balancing``, ``update_rate``, ``balance_group``).  Call it on
    every rank of ``group`` with identically initialized weights (same checkpoint
    or seed), before wrapping in DDP and before building the optimizer.

    Raises ``NotImplementedError`` if the model has an MoE-looking block of an
    unsupported class, or no supported block at all.
    """
    blocks = [n for n, m in model.named_modules() if type(m).__name__ in SUPPORTED_BLOCKS]
    unsupported = [
        f"{n} ({type(m).__name__})"
        for n, m in model.named_modules()
        if type(m).__name__ not in SUPPORTED_BLOCKS
        and not isinstance(m, ExpertParallelMoE)
        and hasattr(m, "experts")
        and (hasattr(m, "gate") or hasattr(m, "router"))
    ]
    if not blocks and not unsupported and any(isinstance(m, ExpertParallelMoE) for m in model.modules()):
        return model  # already converted: idempotent
    if unsupported or not blocks:
        raise NotImplementedError(
            f"apply_expert_parallel: {type(model).__name__} has "
            + (f"unsupported MoE blocks {unsupported[:3]}" if unsupported else "no MoE block")
            + f"; supported blocks: {', '.join(SUPPORTED_BLOCKS)}"
        )
    for name in blocks:
        parent, leaf = _parent(model, name)
        setattr(parent, leaf, ExpertParallelMoE(getattr(parent, leaf), group, **kwargs))
    return model


def update_balancing_biases(model: nn.Module) -> list[torch.Tensor]:
    """Step every layer's balancing bias (call once per optimizer step, on all ranks)."""
    loads = [m.update_bias() for m in model.modules() if isinstance(m, ExpertParallelMoE)]
    return [x for x in loads if x is not None]


def expert_parameter_names(model: nn.Module) -> list[str]:
    """Names of the sharded expert parameters (exclude them from DDP's all-reduce)."""
    return [
        f"{n}.experts.{p}"
        for n, m in model.named_modules()
        if isinstance(m, ExpertParallelMoE)
        for p, _ in m.experts.named_parameters()
    ]


def expert_parallel_groups(ep_size: int):
    """Create (on every rank, collectively) the EP group and the expert-data-parallel group.

    EP groups are contiguous rank blocks ``[i*ep, (i+1)*ep)`` (so with ep <= GPUs
    per node dispatch stays on NVLink; DeepSeek-V3 likewise bounds cross-node
    traffic); the expert-DP group links ranks holding the same expert shard.
    Returns ``(ep_group, expert_dp_group)`` for this rank.
    """
    world, rank = dist.get_world_size(), dist.get_rank()
    if world % ep_size:
        raise ValueError(f"world size {world} is not divisible by parallel.expert={ep_size}")
    ep_group = edp_group = None
    for i in range(world // ep_size):  # all ranks must create all groups, same order
        g = dist.new_group(list(range(i * ep_size, (i + 1) * ep_size)))
        ep_group = g if rank // ep_size == i else ep_group
    for j in range(ep_size):
        g = dist.new_group(list(range(j, world, ep_size)))
        edp_group = g if rank % ep_size == j else edp_group
    return ep_group, edp_group


@torch.no_grad()
def allreduce_expert_grads(model: nn.Module, expert_dp_group=None, world_size: int | None = None) -> None:
    """Make expert grads match DDP's mean-over-ranks convention.

    After backward an expert shard's grad already sums the loss of every token in its
    EP group (the all-to-all brought them).  Sum over the expert-DP replicas, then divide
    by the total world size - exactly what DDP does to the replicated parameters.
    """
    world_size = world_size or dist.get_world_size()
    for m in model.modules():
        if isinstance(m, ExpertParallelMoE):
            for p in m.experts.parameters():
                if p.grad is None:
                    continue
                if expert_dp_group is not None and dist.get_world_size(expert_dp_group) > 1:
                    dist.all_reduce(p.grad, group=expert_dp_group)
                p.grad.div_(world_size)


def _expert_params(model: nn.Module):
    return [p for m in model.modules() if isinstance(m, ExpertParallelMoE) for p in m.experts.parameters()]


@torch.no_grad()
def clip_grad_norm_ep_(model: nn.Module, max_norm: float, ep_group=None) -> torch.Tensor:
    """``clip_grad_norm_`` whose norm counts every expert shard of the EP group once.

    Plain ``clip_grad_norm_`` would see only the local shard, so ranks would compute
    different norms and scale the replicated parameters differently (they'd drift).
    Call after :func:`allreduce_expert_grads`.  Returns the global norm.
    """
    experts = {id(p) for p in _expert_params(model)}
    grads = [(p.grad, id(p) in experts) for p in model.parameters() if p.grad is not None]
    dev = grads[0][0].device if grads else torch.device("cpu")
    dense = torch.zeros((), device=dev, dtype=torch.float32)
    sharded = torch.zeros((), device=dev, dtype=torch.float32)
    for g, is_expert in grads:
        sq = g.detach().float().square().sum()
        sharded, dense = (sharded + sq, dense) if is_expert else (sharded, dense + sq)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(sharded, group=ep_group)  # each EP rank holds different experts
    total = (dense + sharded).sqrt()
    coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for g, _ in grads:
        g.mul_(coef.to(g.dtype))
    return total


@torch.no_grad()
def gather_expert_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """All-gather the expert shards into full ``[E, ...]`` tensors (collective over each EP group).

    Keys match the unsharded transformers 5.x model (``...mlp.experts.gate_up_proj``),
    so ``{**model.state_dict(), **gather_expert_state_dict(model)}`` is a full
    checkpoint / what a rollout engine (vLLM) needs for a weight sync.
    """
    out = {}
    for name, m in model.named_modules():
        if not isinstance(m, ExpertParallelMoE):
            continue
        for pname, p in m.experts.named_parameters():
            parts = [torch.empty_like(p) for _ in range(m.world)]
            if m.world > 1:
                dist.all_gather(parts, p.detach().contiguous(), group=m.group)
            else:
                parts = [p.detach().clone()]
            out[f"{name}.experts.{pname}"] = torch.cat(parts)
    return out
