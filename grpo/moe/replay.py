"""Routing replay (R3) for MoE policies: train with the experts the sampler chose.

MoE RL is unstable partly because the sampler and the trainer route tokens to
different experts (different kernels, batch shapes, precision, or weights one
step apart): the "same" policy then gives a token two different log-probs.
Routing replay records the top-k expert ids of every token at sampling time
and forces them in the training forward; the gate values are recomputed from
the trainer's own router scores at the forced experts, so the router still
gets gradients.

* :func:`record_routing` - context manager around ``generate``; afterwards
  :meth:`RoutingRecorder.per_sequence` splits what it saw into one
  ``[prompt + completion, L, k]`` tensor per sequence (``-1`` where unknown:
  the last completion token is never fed back, so its routing is never decided);
* :func:`replay_routing` - context manager around the training forward of a
  batch; forces the recorded routing (``force=False``: only measures) and
  counts the completion tokens whose routing (in any MoE layer) would have
  differed - the ``moe/routing_mismatch`` metric;
* :func:`dense_routing` - scatters per-sequence records onto a batch's
  non-padding positions (any padding layout: only the attention mask is used).

Hooks: a forward hook on the ``gate`` of every transformers MoE block (its
output ``(logits, weights, idx)`` is replaced), or ``ExpertParallelMoE.route_hook``.
Not supported: transformers 4.x gates that return bare logits, and
``train.share_prompt`` (its two forwards per batch have other shapes).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn as nn

__all__ = ["RoutingRecorder", "ReplayStats", "start_recording", "record_routing", "replay_routing", "replay_batch", "dense_routing", "moe_gates"]


def moe_gates(model: nn.Module) -> list[tuple[nn.Module, nn.Module]]:
    """``(block, gate)`` of every MoE layer in forward order (EP blocks included)."""
    from grpo.moe.layer import SUPPORTED_BLOCKS, ExpertParallelMoE

    out = []
    for m in model.modules():
        if isinstance(m, ExpertParallelMoE) or type(m).__name__ in SUPPORTED_BLOCKS:
            if isinstance(m.gate, nn.Linear):
                raise NotImplementedError(f"routing replay: {type(m).__name__} has a 4.x gate returning bare logits")
            out.append((m, m.gate))
    return out


def gate_weights(gate: nn.Module, logits: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """The gate values the router would give experts ``idx`` (its own formula, differentiable).

    >>> class G(nn.Module): norm_topk_prob = True
    >>> gate_weights(G(), torch.log(torch.tensor([[1.0, 2.0, 1.0]])), torch.tensor([[1, 2]]))
    tensor([[0.6667, 0.3333]])
    """
    if hasattr(gate, "e_score_correction_bias"):  # DeepSeek-V3: sigmoid scores, scaled
        w = logits.float().sigmoid().gather(-1, idx)
        if getattr(gate, "norm_topk_prob", True):
            w = w / (w.sum(-1, keepdim=True) + 1e-20)
        return w * gate.routed_scaling_factor
    w = torch.softmax(logits.float(), dim=-1).gather(-1, idx)
    if hasattr(gate, "routed_scaling_factor"):  # DeepSeek-V2: softmax, scaled, no renorm
        return w * gate.routed_scaling_factor
    if getattr(gate, "norm_topk_prob", True):  # Qwen/OLMoE flag; Mixtral always renormalizes
        w = w / w.sum(-1, keepdim=True)
    return w.to(logits.dtype) if hasattr(gate, "norm_topk_prob") else w  # Qwen/OLMoE cast, Mixtral keeps fp32


def _install(model: nn.Module, on_route):
    """Call ``on_route(layer, gate, logits, weights, idx) -> (weights, idx)`` for every MoE layer."""
    from grpo.moe.layer import ExpertParallelMoE

    handles, eps = [], []
    for layer, (block, gate) in enumerate(moe_gates(model)):
        if isinstance(block, ExpertParallelMoE):
            block.route_hook = lambda _b, lg, w, i, layer=layer, g=gate: on_route(layer, g, lg, w, i)
            eps.append(block)
        else:
            def hook(mod, _inp, out, layer=layer):
                logits, w, i = out
                w, i = on_route(layer, mod, logits, w, i)
                return logits, w, i

            handles.append(gate.register_forward_hook(hook))
    if not handles and not eps:
        raise ValueError(f"routing replay: {type(model).__name__} has no MoE layer")
    return handles, eps


def _uninstall(handles, eps) -> None:
    for h in handles:
        h.remove()
    for b in eps:
        b.route_hook = None


class RoutingRecorder:
    """What :func:`record_routing` saw: per layer, the ``[N_call, k]`` expert ids of each forward."""

    def __init__(self):
        self.calls: dict[int, list[torch.Tensor]] = {}
        self._hooks = None

    def stop(self) -> None:
        if self._hooks is not None:
            _uninstall(*self._hooks)
            self._hooks = None

    def on_route(self, layer, _gate, _logits, w, idx):
        self.calls.setdefault(layer, []).append(idx.detach().to("cpu", torch.int32))
        return w, idx

    def per_sequence(self, prompt_mask: torch.Tensor, completion_lens: list[int]) -> list[torch.Tensor]:
        """Split a ``generate`` call's record into one ``[p_i + c_i, L, k]`` int32 tensor per row.

        ``prompt_mask [B, P]``: the left-padded prompts' attention mask, one row per
        returned sequence; the first forward is the prefill ``[B, P]``, each later one
        feeds one token per row.
        """
        b, p = prompt_mask.shape
        layers = [torch.cat([c.view(b, -1, c.shape[-1]) for c in self.calls[k]], 1) for k in sorted(self.calls)]
        full = torch.stack(layers, 2)  # [B, P + steps, L, k]
        out = []
        for i in range(b):
            seq = full[i, p - int(prompt_mask[i].sum()) :]  # drop the left padding
            need = int(prompt_mask[i].sum()) + completion_lens[i]
            if seq.shape[0] < need:  # the last token(s) were never fed back: unknown
                seq = torch.cat([seq, seq.new_full((need - seq.shape[0],) + seq.shape[1:], -1)])
            out.append(seq[:need].clone())
        return out


def start_recording(model: nn.Module) -> RoutingRecorder:
    """Hook ``model``'s gates until ``rec.stop()``; :func:`record_routing` as two calls."""
    rec = RoutingRecorder()
    rec._hooks = _install(model, rec.on_route)
    return rec


@contextmanager
def record_routing(model: nn.Module):
    """``with record_routing(model) as rec: model.generate(...)`` then ``rec.per_sequence(...)``."""
    rec = start_recording(model)
    try:
        yield rec
    finally:
        rec.stop()


def dense_routing(attention_mask: torch.Tensor, routing: list[torch.Tensor | None]) -> torch.Tensor:
    """``[N, T, L, k]`` with row i's record on its non-padding positions, ``-1`` elsewhere.

    >>> m = torch.tensor([[0, 1, 1], [1, 1, 0]])
    >>> r = [torch.tensor([[[3]], [[4]]]), torch.tensor([[[5]], [[6]]])]
    >>> dense_routing(m, r)[..., 0, 0].tolist()
    [[-1, 3, 4], [5, 6, -1]]
    """
    first = next(r for r in routing if r is not None)
    n, t = attention_mask.shape
    out = torch.full((n, t) + tuple(first.shape[1:]), -1, dtype=torch.int32)
    for i, r in enumerate(routing):
        pos = attention_mask[i].nonzero().squeeze(-1)
        if r is None:
            continue
        if r.shape[0] != len(pos) or r.shape[1:] != first.shape[1:]:
            raise ValueError(f"routing replay: row {i} has {tuple(r.shape)} routing for {len(pos)} tokens")
        out[i, pos] = r.to(torch.int32)
    return out


class _Replayer:
    def __init__(self, forced: torch.Tensor, count_from: int, force: bool):
        self.forced, self.count_from, self.force = forced, count_from, force  # [N, T, L, k]
        self.differs = torch.zeros(forced.shape[:2], dtype=torch.bool)  # [N, T] any layer differed
        self.known = (forced[:, :, :, 0] >= 0).all(-1)  # [N, T]
        self.known[:, :count_from] = False  # count completion positions only

    def on_route(self, layer, gate, logits, w, idx):
        n, t = self.forced.shape[:2]
        if idx.shape[0] != n * t:
            raise ValueError(f"routing replay: a forward of {idx.shape[0]} tokens, recorded {n}x{t} "
                             "(train.share_prompt is not supported with algorithm.routing_replay)")  # fmt: skip
        want = self.forced[:, :, layer].reshape(n * t, -1).to(idx.device, idx.dtype)  # [N*T, k]
        have = want >= 0
        same = torch.sort(want, -1).values == torch.sort(idx, -1).values
        self.differs |= (have.all(-1) & ~same.all(-1)).view(n, t).cpu()
        if not self.force:
            return w, idx
        new_idx = torch.where(have.all(-1, keepdim=True), want, idx)
        return gate_weights(gate, logits, new_idx).to(w.dtype), new_idx

    def mismatch(self) -> float | None:
        k = int(self.known.sum())
        return None if k == 0 else float((self.differs & self.known).sum()) / k


@contextmanager
def replay_routing(model: nn.Module, forced: torch.Tensor, completion_start: int = 0, force: bool = True):
    """Force ``forced [N, T, L, k]`` (``-1`` = let the router choose) in one forward of an ``[N, T]`` batch.

    Yields an object whose ``mismatch()`` is the fraction of known positions at or after
    ``completion_start`` whose routing (in any layer) differed from the record before forcing.
    """
    rep = _Replayer(forced, completion_start, force)
    handles, eps = _install(model, rep.on_route)
    try:
        yield rep
    finally:
        _uninstall(handles, eps)


@contextmanager
def replay_batch(model: nn.Module, batch, routing: list | None, force: bool = True):
    """:func:`replay_routing` for a trainer batch (``input_ids``, ``attention_mask``,
    ``completion_ids``; any padding) and its rows' recorded routing; ``None`` when nothing
    was recorded (then the forward runs untouched)."""
    if not routing or all(r is None for r in routing):
        yield None
        return
    forced = dense_routing(batch.attention_mask, routing)
    start = batch.input_ids.shape[1] - batch.completion_ids.shape[1]
    with replay_routing(model, forced, start, force) as rep:
        yield rep


class ReplayStats:
    """Token-weighted ``moe/routing_mismatch`` over a step's micro-batches (``None``: nothing known)."""

    def __init__(self):
        self.differs = self.known = 0

    def add(self, rep: _Replayer | None) -> None:
        if rep is not None:
            self.differs += int((rep.differs & rep.known).sum())
            self.known += int(rep.known.sum())

    def value(self) -> float | None:
        return self.differs / self.known if self.known else None


def replay_config_error(cfg, engine) -> str | None:
    """Why ``algorithm.routing_replay`` cannot run with this recipe / engine (``None``: it can)."""
    if not cfg.algorithm.routing_replay:
        return None
    if type(engine).__name__ != "HFEngine":
        return ("algorithm.routing_replay needs rollout.engine=hf: the vLLM engine does not hand "
                "routed experts back here yet")  # fmt: skip
    if cfg.train.share_prompt:
        return "algorithm.routing_replay does not support train.share_prompt (set it to false)"
    if cfg.algorithm.mu > 1:  # score_all's old log-probs would use the trainer's own routing
        return "algorithm.routing_replay supports algorithm.mu=1 only (old log-probs are not replayed yet)"
    return None
