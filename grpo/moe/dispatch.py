"""Expert-parallel all-to-all: FP8 dispatch, BF16 combine (DeepSeek-V3 style).

Experts are sharded contiguously: rank ``r`` of a ``W``-rank group holds global
experts ``[r*E/W, (r+1)*E/W)``.  Every (token, expert) pair chosen by the
router becomes one row that travels to the owning rank:

1. ``dispatch``: sort pairs by expert (hence by destination rank), exchange
   per-expert counts (one small ``all_to_all_single``), then the payload (one
   more).  With ``fp8=True`` the payload is e4m3 with one fp32 scale per token
   per 128 channels (:mod:`grpo.moe.quant`), packed as raw bytes - gloo has no
   float8 dtypes - so a row costs ``H + 4*ceil(H/128)`` bytes instead of
   ``2*H`` in bf16 (~0.52x at H=256).  DeepSeek-V3 (arXiv 2412.19437,
   Sec. 3.3.2 "Low-Precision Communication") quantizes exactly here, because
   the first expert GEMM consumes FP8 anyway.
2. experts run on the received rows (grouped by local expert);
3. ``combine``: rows go back in ``comm_dtype`` (bf16 by default; DeepSeek-V3
   keeps combine in BF16 for accuracy) and are summed with the routing
   weights on the token's home rank, so the routing-weight gradient is local.

By default one row per (token, expert) pair: a token with two experts on the
same rank is sent twice.  ``dedup=True`` (what :class:`grpo.moe.ExpertParallelMoE`
uses) sends it once per destination rank with a bitmask of its experts there
(and its routing weights, fp32), and combine sums a token's experts on the
expert side so it comes back once per rank too -
DeepSeek-V3 sends each token at most once per node, which with group-limited
routing (``topk_group`` of ``n_group`` expert groups, one group per rank)
bounds a token's rows by ``topk_group`` instead of ``top_k``.  (The intra-node
NVLink forwarding of DeepSeek-V3's two-hop scheme is not done here: one EP
group is one flat all-to-all.)

Autograd: both directions are ``torch.autograd.Function`` s whose backward is
the reverse all-to-all of the gradients.  Dispatch's backward sends grads in
``comm_dtype``; the FP8 rounding is straight-through (identity gradient).
Combine's backward is dispatch-like and may send FP8 (``fp8_grad=True``;
DeepSeek-V3 quantizes the gradient entering the down-projection backward), by
default bf16.  Every rank of the group must call dispatch/combine (and their
backwards) the same number of times, like any collective.

Without an initialized process group (or with a 1-rank group) everything runs
locally, FP8 rounding included:

>>> x = torch.randn(5, 256)
>>> idx = torch.tensor([[0, 1], [1, 2], [3, 0], [2, 3], [1, 0]])
>>> w = torch.full((5, 2), 0.5)
>>> recv, per_expert, handle = dispatch(x, idx, w, num_experts=4, group=None)
>>> per_expert
[3, 3, 2, 2]
>>> out = combine(recv, handle)          # identity "experts": out ~= x
>>> bool(((out - x).abs() <= 2 ** -4 * x.abs() + 1e-3).all())
True
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

from grpo.moe.quant import dequantize_fp8, num_blocks, quantize_fp8

__all__ = ["CommStats", "COMM_STATS", "DispatchHandle", "dispatch", "combine"]


@dataclass
class CommStats:
    """Bytes this rank sent to *other* ranks (self-traffic is free), per direction.

    Includes the count exchange.  ``grpo.moe.COMM_STATS`` is the default sink;
    call ``reset()`` before measuring.
    """

    dispatch_bytes: int = 0
    combine_bytes: int = 0
    dispatch_grad_bytes: int = 0  # backward of dispatch (combine-like, comm_dtype)
    combine_grad_bytes: int = 0  # backward of combine (dispatch-like)
    dispatch_calls: int = 0
    combine_calls: int = 0

    def reset(self) -> None:
        for f in self.__dataclass_fields__:
            setattr(self, f, 0)


COMM_STATS = CommStats()


@dataclass
class DispatchHandle:
    """Everything ``combine`` (and the backwards) need to route rows home.

    Dispatch moves *rows* (one per (token, expert) pair, or with ``dedup`` one per
    (token, destination rank)); experts and combine work on *pairs*.
    """

    group: dist.ProcessGroup | None
    rank: int
    world: int
    num_tokens: int  # N
    send_token: torch.Tensor  # [S] source token of each dispatched row (rows sorted by destination)
    send_splits: list[int]  # [W] rows sent to each rank
    recv_splits: list[int]  # [W] rows received from each rank
    expand: torch.Tensor  # [P_in] received row of each local (row, expert) pair, expert-major
    inv_perm: torch.Tensor  # [P_in] expert-major pair order -> source-major pair order
    pair_token: torch.Tensor  # [P_out] home token of each pair coming back (combine order)
    pair_weight: torch.Tensor  # [P_out] its routing weight (keeps autograd)
    pair_send_splits: list[int]  # [W] pairs this rank routed to each rank (= combine rows back)
    pair_recv_splits: list[int]  # [W] pairs this rank computes for each source
    send_counts: torch.Tensor  # [E] this rank's tokens per global expert (its load)
    comm_dtype: torch.dtype | None
    fp8_grad: bool
    stats: CommStats
    pair_row: torch.Tensor | None = None  # dedup: [P_in] received row of each pair, source-major

    def combine_splits(self) -> tuple[list[int], list[int]]:
        """(sent by the expert side, received home): one row per pair, or per dispatched row (dedup)."""
        if self.pair_row is not None:
            return self.recv_splits, self.send_splits
        return self.pair_recv_splits, self.pair_send_splits


def _group_info(group) -> tuple[int, int]:
    if not dist.is_available() or not dist.is_initialized():
        return 0, 1
    return dist.get_rank(group), dist.get_world_size(group)


def _all_to_all(x: torch.Tensor, send_splits, recv_splits, group, world) -> torch.Tensor:
    """Variable-size ``all_to_all_single`` along dim 0 (identity when world == 1)."""
    if world == 1:
        return x.clone()
    out = x.new_empty((sum(recv_splits),) + tuple(x.shape[1:]))
    dist.all_to_all_single(out, x.contiguous(), recv_splits, send_splits, group=group)
    return out


def _sent_bytes(splits: list[int], rank: int, row_bytes: int) -> int:
    return (sum(splits) - splits[rank]) * row_bytes


def _send_rows(x, row_index, send_splits, recv_splits, h: DispatchHandle, fp8: bool):
    """Gather ``x[row_index]``, ship it (FP8+scales or comm dtype), return [R, H] in x.dtype.

    Returns (received rows, bytes sent to other ranks).
    """
    n_rows, hidden = x.shape
    if fp8:
        q, s = quantize_fp8(x, row_index)  # [S, H] e4m3, [S, nb] fp32 (fused on GPU)
        # pack both into one uint8 row: one collective, and gloo-safe (no float8).
        payload = torch.cat([q.view(torch.uint8), s.view(torch.uint8)], dim=1)  # [S, H+4nb]
        recv = _all_to_all(payload, send_splits, recv_splits, h.group, h.world)
        rq = recv[:, :hidden].contiguous().view(q.dtype)  # [R, H]
        rs = recv[:, hidden:].contiguous().view(torch.float32)  # [R, nb]
        out = dequantize_fp8(rq, rs, x.dtype)
        return out, _sent_bytes(send_splits, h.rank, payload.shape[1])
    rows = x if row_index is None else x[row_index]
    wire = rows.to(h.comm_dtype or x.dtype).contiguous()  # [S, H]
    raw = wire.view(torch.uint8)  # [S, H*itemsize] raw bytes: any backend, any dtype
    recv = _all_to_all(raw, send_splits, recv_splits, h.group, h.world)
    out = recv.view(wire.dtype).to(x.dtype)
    return out, _sent_bytes(send_splits, h.rank, raw.shape[1])


class _DispatchA2A(torch.autograd.Function):
    """Forward: gather + (FP8) all-to-all.  Backward: reverse all-to-all + scatter-add."""

    @staticmethod
    def forward(ctx, x, handle: DispatchHandle, fp8: bool):  # x [N, H] -> [R, H]
        out, nbytes = _send_rows(x, handle.send_token, handle.send_splits, handle.recv_splits, handle, fp8)
        handle.stats.dispatch_bytes += nbytes
        handle.stats.dispatch_calls += 1
        ctx.handle, ctx.n = handle, x.shape[0]
        return out

    @staticmethod
    def backward(ctx, grad):  # grad [R, H] -> [N, H]; straight-through for FP8 rounding
        h = ctx.handle
        g, nbytes = _send_rows(grad, None, h.recv_splits, h.send_splits, h, fp8=False)
        h.stats.dispatch_grad_bytes += nbytes
        grad_x = grad.new_zeros(ctx.n, grad.shape[1]).index_add_(0, h.send_token, g)
        return grad_x, None, None


def _reverse(h: DispatchHandle) -> tuple[list[int], list[int]]:
    send, recv = h.combine_splits()
    return recv, send


class _WeightsA2A(torch.autograd.Function):
    """Dedup: routing weights ``[P_out]`` travel to the expert side (fp32, 4 B per pair), grads back."""

    @staticmethod
    def forward(ctx, w, handle: DispatchHandle):
        out = _all_to_all(w.float(), handle.pair_send_splits, handle.pair_recv_splits, handle.group, handle.world)
        handle.stats.dispatch_bytes += _sent_bytes(handle.pair_send_splits, handle.rank, 4)
        ctx.handle, ctx.dtype = handle, w.dtype
        return out

    @staticmethod
    def backward(ctx, grad):
        h = ctx.handle
        g = _all_to_all(grad.float().contiguous(), h.pair_recv_splits, h.pair_send_splits, h.group, h.world)
        h.stats.dispatch_grad_bytes += _sent_bytes(h.pair_recv_splits, h.rank, 4)
        return g.to(ctx.dtype), None


class _CombineA2A(torch.autograd.Function):
    """Forward: comm-dtype all-to-all back home.  Backward: dispatch-like (FP8 optional)."""

    @staticmethod
    def forward(ctx, y, handle: DispatchHandle):  # y [P_in, H] source-major -> [P_out, H]
        out, nbytes = _send_rows(y, None, *handle.combine_splits(), handle, fp8=False)
        handle.stats.combine_bytes += nbytes
        handle.stats.combine_calls += 1
        ctx.handle = handle
        return out

    @staticmethod
    def backward(ctx, grad):  # grad [P_out, H] -> [P_in, H]
        h = ctx.handle
        g, nbytes = _send_rows(grad, None, *_reverse(h), h, fp8=h.fp8_grad)
        h.stats.combine_grad_bytes += nbytes
        return g, None


def _pack_bits(mask: torch.Tensor) -> torch.Tensor:
    """``[S, E_l]`` bool -> ``[S, ceil(E_l/8)]`` uint8 (little-endian bits)."""
    s, e = mask.shape
    m = torch.nn.functional.pad(mask.to(torch.uint8), (0, -e % 8)).view(s, -1, 8)
    shifts = torch.arange(8, device=mask.device, dtype=torch.uint8)
    return (m << shifts).sum(-1, dtype=torch.uint8)


def _unpack_bits(packed: torch.Tensor, e: int) -> torch.Tensor:
    shifts = torch.arange(8, device=packed.device, dtype=torch.uint8)
    return ((packed.unsqueeze(-1) >> shifts) & 1).view(packed.shape[0], -1)[:, :e].bool()


def _plan_pairs(flat, order, send_counts, topk_weights, k, e_local, group, rank, world, stats):
    """One row per (token, expert) pair: exchange per-expert counts, rows == pairs."""
    num_experts = e_local * world
    recv_counts = _all_to_all(send_counts, [e_local] * world, [e_local] * world, group, world)  # [W*E_l]
    stats.dispatch_bytes += (num_experts - e_local) * 8 if world > 1 else 0
    host = torch.cat(
        [send_counts.view(world, e_local).sum(1), recv_counts.view(world, e_local).sum(1), recv_counts.view(world, e_local).sum(0)]
    ).tolist()  # the only host sync: all_to_all splits must live on the host
    send_splits, recv_splits, per_expert = host[:world], host[world : 2 * world], host[2 * world :]
    order = order[: sum(send_splits)]  # [S] drop the sentinel (dropped) pairs at the end
    # received rows are source-major, expert-sorted within a source; regroup expert-major.
    local_e = torch.arange(e_local, device=flat.device).repeat(world)  # [W*E_l]
    local_e = local_e.repeat_interleave(recv_counts, output_size=sum(recv_splits))  # [R], no extra sync
    recv_perm = torch.argsort(local_e, stable=True)
    token = torch.div(order, k, rounding_mode="floor")
    rows = dict(send_token=token, send_splits=send_splits, recv_splits=recv_splits)
    pairs = dict(
        expand=recv_perm, inv_perm=torch.argsort(recv_perm), pair_token=token,
        pair_weight=topk_weights.reshape(-1)[order], pair_send_splits=send_splits, pair_recv_splits=recv_splits,
    )  # fmt: skip
    return rows, pairs, per_expert


def _plan_dedup(flat, n, topk_weights, k, e_local, group, rank, world, stats):
    """One row per (token, destination rank); a bitmask per row names its local experts.

    Pairs are ordered (rank, token, local expert) on the home side and (source,
    row, local expert) on the receiving side - the same order, so combine needs
    no extra metadata.  Duplicate (token, expert) pairs merge (weights summed).
    """
    num_experts = e_local * world
    dev = flat.device
    tok = torch.arange(n, device=dev).repeat_interleave(k)  # [N*k]
    dense_w = torch.zeros(n, num_experts + 1, dtype=topk_weights.dtype, device=dev)
    dense_w = dense_w.scatter_add(1, flat.view(n, k), topk_weights.reshape(n, k))[:, :num_experts]  # [N, E]
    mask = torch.zeros(n, num_experts + 1, dtype=torch.bool, device=dev)
    mask[tok, flat] = True
    mask = mask[:, :num_experts].view(n, world, e_local)  # [N, W, E_l]
    row_r, row_n = mask.any(-1).t().nonzero(as_tuple=True)  # rows sorted by (rank, token)
    send_rows = torch.bincount(row_r, minlength=world)  # [W]
    recv_rows = _all_to_all(send_rows, [1] * world, [1] * world, group, world)  # [W]
    stats.dispatch_bytes += (world - 1) * 8 if world > 1 else 0
    pr, pn, pe = mask.permute(1, 0, 2).nonzero(as_tuple=True)  # pairs sorted by (rank, token, expert)
    host = torch.cat([send_rows, recv_rows, torch.bincount(pr, minlength=world)]).tolist()
    send_splits, recv_splits, pair_send = host[:world], host[world : 2 * world], host[2 * world :]
    bits = _pack_bits(mask[row_n, row_r])  # [S, ceil(E_l/8)]
    rbits = _all_to_all(bits, send_splits, recv_splits, group, world)
    stats.dispatch_bytes += _sent_bytes(send_splits, rank, bits.shape[1])
    r_row, r_e = _unpack_bits(rbits, e_local).nonzero(as_tuple=True)  # received pairs, source-major
    src = torch.arange(world, device=dev).repeat_interleave(torch.tensor(recv_splits, device=dev))
    perm = torch.argsort(r_e, stable=True)  # -> expert-major
    host = torch.cat([torch.bincount(r_e, minlength=e_local), torch.bincount(src[r_row], minlength=world)]).tolist()
    per_expert, pair_recv = host[:e_local], host[e_local:]
    rows = dict(send_token=row_n, send_splits=send_splits, recv_splits=recv_splits)
    pairs = dict(
        expand=r_row[perm], inv_perm=torch.argsort(perm), pair_token=pn,
        pair_weight=dense_w[pn, pr * e_local + pe], pair_send_splits=pair_send, pair_recv_splits=pair_recv,
        pair_row=r_row,
    )  # fmt: skip
    return rows, pairs, per_expert


def dispatch(
    hidden: torch.Tensor,
    topk_idx: torch.Tensor,
    topk_weights: torch.Tensor,
    num_experts: int,
    group: dist.ProcessGroup | None = None,
    fp8: bool = True,
    *,
    comm_dtype: torch.dtype | None = torch.bfloat16,
    fp8_grad: bool = False,
    stats: CommStats | None = None,
    dedup: bool = False,
) -> tuple[torch.Tensor, list[int], DispatchHandle]:
    """Send each token to the ranks holding its top-k experts.

    Args:
        hidden: ``[N, H]`` tokens of this rank.
        topk_idx: ``[N, k]`` global expert ids; ids outside ``[0, E)`` are dropped.
        topk_weights: ``[N, k]`` routing weights, applied later by :func:`combine`.
        num_experts: ``E``, divisible by the group size.
        group: process group of the expert-parallel ranks (``None`` = default group,
            or purely local when torch.distributed is not initialized).
        fp8: send e4m3 + per-128-channel scales; else ``comm_dtype``.
        comm_dtype: wire dtype of the non-FP8 transfers (fp8=False dispatch, combine,
            gradients); ``None`` keeps the tensor's own dtype (bit-exact).
        fp8_grad: send combine's backward (grads into the experts) in FP8 too.
        dedup: send a token at most once per destination rank however many of its
            experts live there (+ a ``ceil(E/W/8)``-byte expert bitmask per row);
            the receiver fans it out to its experts.  Dispatch's backward is
            deduplicated the same way (grads summed on the receiver first).

    Returns:
        ``recv [P, H]`` rows for this rank's (token, expert) pairs, grouped by local
        expert (``x.dtype``); ``tokens_per_expert`` (``E/W`` ints); the handle for combine.
    """
    rank, world = _group_info(group)
    if num_experts % world:
        raise ValueError(f"num_experts={num_experts} is not divisible by the group size {world}")
    if topk_idx.dim() != 2 or topk_idx.shape[0] != hidden.shape[0] or topk_weights.shape != topk_idx.shape:
        raise ValueError(f"topk_idx {tuple(topk_idx.shape)} / weights {tuple(topk_weights.shape)} "
                         f"do not match hidden {tuple(hidden.shape)}")  # fmt: skip
    n, k = topk_idx.shape
    e_local = num_experts // world
    stats = stats or COMM_STATS
    flat = topk_idx.reshape(-1).long()  # [N*k]
    valid = (flat >= 0) & (flat < num_experts)
    flat = torch.where(valid, flat, torch.full_like(flat, num_experts))  # dropped -> sentinel E
    send_counts = torch.bincount(flat, minlength=num_experts + 1)[:num_experts]  # [E]
    if dedup:
        rows, pairs, per_expert = _plan_dedup(flat, n, topk_weights, k, e_local, group, rank, world, stats)
    else:
        order = torch.argsort(flat, stable=True)  # pairs sorted by expert == by destination rank
        rows, pairs, per_expert = _plan_pairs(flat, order, send_counts, topk_weights, k, e_local, group, rank, world, stats)
    handle = DispatchHandle(
        group=group, rank=rank, world=world, num_tokens=n, **rows, **pairs,
        send_counts=send_counts, comm_dtype=comm_dtype, fp8_grad=fp8_grad, stats=stats,
    )  # fmt: skip
    recv = _DispatchA2A.apply(hidden, handle, fp8)  # [R, H] source-major rows
    return recv[handle.expand], per_expert, handle


def combine(expert_out: torch.Tensor, handle: DispatchHandle) -> torch.Tensor:
    """Return expert outputs ``[P, H]`` (expert-major, as dispatched) to their tokens.

    Output ``[N, H]``: ``out[n] = sum_j w[n, j] * expert_j(x[n])`` over the
    token's top-k experts (dropped pairs contribute nothing).
    """
    h = handle
    y = expert_out[h.inv_perm]  # [P_in, H] source-major pairs
    out = expert_out.new_zeros(h.num_tokens, expert_out.shape[1])
    if h.pair_row is not None:  # dedup: weight and sum a token's local experts here, send one row back
        w = _WeightsA2A.apply(h.pair_weight, h)  # [P_in]
        weighted = (y * w.unsqueeze(-1)).to(expert_out.dtype)
        rows = expert_out.new_zeros(sum(h.recv_splits), expert_out.shape[1]).index_add(0, h.pair_row, weighted)
        return out.index_add(0, h.send_token, _CombineA2A.apply(rows, h))  # [S rows, H] home
    y = _CombineA2A.apply(y, h)  # [P_out, H], home rank
    weighted = (y * h.pair_weight.unsqueeze(-1)).to(expert_out.dtype)  # [P_out, H]
    return out.index_add(0, h.pair_token, weighted)


def bytes_per_row(hidden: int, fp8: bool, comm_dtype: torch.dtype = torch.bfloat16) -> int:
    """Wire bytes of one dispatched row: ``H + 4*ceil(H/128)`` (FP8) or ``H*itemsize``."""
    if fp8:
        return hidden + 4 * num_blocks(hidden)
    return hidden * torch.empty((), dtype=comm_dtype).element_size()
