"""FSDP2 (``torch.distributed.fsdp.fully_shard``) for the policy, the reference and the teacher.

Every decoder layer is its own FSDP unit, then the root (embeddings, final norm, head):
parameters, gradients and AdamW state live as 1/N shards (``DTensor``) on each of N ranks,
and a layer's full weights exist only while it runs (all-gather before, reduce-scatter of
its gradient after). Expert-parallel MoE weights (``parallel.expert``) are left out of FSDP
(``ignored_params``): they are already split over the EP group and reduced by
``grpo.moe.allreduce_expert_grads``; FSDP shards everything else over all ranks.

Generation and no-grad scoring run inside :func:`gathered`: the whole model unsharded once,
so that ranks sampling different numbers of tokens, or scoring different numbers of
micro-batches, issue no collective at all meanwhile (cost: one all-gather of the weights
and a full copy of them for that phase; measured in bench/bench_scaling.py).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor import DTensor

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def decoder_layers(model: nn.Module) -> list[nn.Module]:
    """The repeated blocks to shard one by one: the classes transformers names in
    ``_no_split_modules`` (``LlamaDecoderLayer``...), else the longest ``nn.ModuleList``'s items.
    Works through a peft wrapper (its base model's attribute)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    names = set(getattr(base, "_no_split_modules", None) or ())
    found = [m for m in model.modules() if type(m).__name__ in names]
    if found:
        return found
    lists = [m for m in model.modules() if isinstance(m, nn.ModuleList)]
    return list(max(lists, key=len)) if lists else []


def mp_policy(param_dtype: str | None, reduce_dtype: str | None) -> MixedPrecisionPolicy:
    """FSDP's mixed precision: compute in ``param_dtype``, reduce gradients in ``reduce_dtype``
    (None: the parameters' own dtype, no cast).

    >>> mp_policy("bfloat16", "float32").param_dtype, mp_policy(None, None).reduce_dtype
    (torch.bfloat16, None)
    """
    return MixedPrecisionPolicy(param_dtype=DTYPES.get(param_dtype or ""),
                                reduce_dtype=DTYPES.get(reduce_dtype or ""))


def shard_model(model: nn.Module, mp: MixedPrecisionPolicy | None = None,
                ignored: Iterable[nn.Parameter] = (), mesh=None) -> nn.Module:
    """``fully_shard`` each decoder layer, then the root; in place, returns ``model``.
    Call on every rank with identical weights, before building the optimizer."""
    if is_sharded(model):
        return model
    mp = mp or MixedPrecisionPolicy()
    ignored = set(ignored)
    layers = decoder_layers(model)
    if not layers:
        raise ValueError(f"parallel.fsdp: found no decoder layers to shard in {type(model).__name__}")
    broadcast_from_rank0(model, skip=ignored)
    for layer in layers:
        fully_shard(layer, mesh=mesh, mp_policy=mp, ignored_params=ignored or None)
    fully_shard(model, mesh=mesh, mp_policy=mp, ignored_params=ignored or None)
    return model


@torch.no_grad()
def broadcast_from_rank0(model: nn.Module, skip: set = frozenset()) -> None:
    """Rank 0's parameters and buffers on every rank (as DDP does on construction): weights
    drawn at random after loading (a LoRA adapter's A, a new head) differ by rank otherwise,
    since every rank seeds its sampling differently. ``skip``: per-rank shards (experts)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return
    ids = {id(p) for p in skip}
    for t in [*model.parameters(), *model.buffers()]:
        if id(t) not in ids:
            dist.broadcast(t.data, src=0)


def is_sharded(model: nn.Module | None) -> bool:
    return isinstance(model, FSDPModule)


def fsdp_modules(model: nn.Module) -> list[FSDPModule]:
    return [m for m in model.modules() if isinstance(m, FSDPModule)]


@contextmanager
def gathered(model: nn.Module | None) -> Iterator[None]:
    """Every FSDP unit of ``model`` unsharded for the block and not resharded after each
    forward, so forwards inside issue no collective (generation, no-grad scoring). A no-op
    for a model that is not sharded. Collective on entry and exit: every rank must enter."""
    mods = fsdp_modules(model) if model is not None else []
    if not mods:
        yield
        return
    for m in mods:
        m.unshard()
        m.set_reshard_after_forward(False, recurse=False)
    try:
        yield
    finally:
        for m in mods:          # back to FSDP's defaults: layers reshard after forward, the root not
            m.reshard()
            m.set_reshard_after_forward(m is not model, recurse=False)


def local(t: torch.Tensor) -> torch.Tensor:
    """This rank's shard of a DTensor (a plain tensor is its own)."""
    return t.to_local() if isinstance(t, DTensor) else t


def full_named_parameters(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """``(name, full tensor)`` for every parameter; collective per sharded tensor (every rank
    must consume the whole iterator in the same order)."""
    for name, p in model.named_parameters():
        yield name, (p.full_tensor() if isinstance(p, DTensor) else p).detach()


@torch.no_grad()
def clip_grad_norm_(model: nn.Module, max_norm: float, experts: set[int] = frozenset(),
                    ep_group=None) -> torch.Tensor:
    """Clip by the global L2 norm of all gradients: FSDP shards (their squares summed over all
    ranks: each holds a disjoint 1/N) plus expert-parallel shards (summed over the EP group,
    which holds every expert once). ``experts``: ids of the expert parameters. Returns the norm.
    """
    grads = [(p.grad, id(p) in experts) for p in model.parameters() if p.grad is not None]
    dev = local(grads[0][0]).device if grads else torch.device("cpu")
    sq = torch.zeros(2, device=dev, dtype=torch.float32)          # [FSDP-sharded, expert-sharded]
    for g, is_expert in grads:
        sq[int(is_expert)] += local(g).detach().float().square().sum()
    if dist.is_initialized():
        dense, expert = sq[:1].clone(), sq[1:].clone()
        dist.all_reduce(dense)
        if experts and ep_group is not None:
            dist.all_reduce(expert, group=ep_group)
        sq = torch.cat([dense, expert])
    total = sq.sum().sqrt()
    coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for g, _ in grads:
        local(g).mul_(coef.to(g.dtype))
    return total


def shard_bytes(model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> dict[str, int]:
    """Bytes this rank holds of parameters, gradients and optimizer state (local shards)."""
    nbytes = lambda t: local(t).numel() * local(t).element_size()  # noqa: E731
    params = list(model.parameters())
    out = {"params": sum(nbytes(p) for p in params),
           "grads": sum(nbytes(p.grad) for p in params if p.grad is not None), "optimizer": 0}
    if optimizer is not None:
        out["optimizer"] = sum(nbytes(v) for st in optimizer.state.values() for v in st.values()
                               if torch.is_tensor(v) and v.dim() > 0)
    return out
