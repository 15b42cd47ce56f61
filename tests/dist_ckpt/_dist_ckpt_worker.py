"""Worker bodies for the multi-process checkpoint tests (gloo); imported by spawned children.

Kept apart from the test module (no pytest in the children); the names are unique so this
never clashes with another test directory's helpers.
"""
from __future__ import annotations

import errno
import sys
from pathlib import Path

import torch
import torch.distributed as dist

ROOT = str(Path(__file__).resolve().parents[2])
for _p in (ROOT, str(Path(ROOT) / "tests")):     # grpo, and tests/_gloo_spawn.py (children inherit sys.path)
    if _p not in sys.path:
        sys.path.insert(0, _p)
import _gloo_spawn  # noqa: E402
TINY = Path(ROOT) / "data" / "tiny_model"


def spawn(fn_name: str, world: int, *args) -> None:
    """Run ``fn_name(rank, world, *args)`` in ``world`` gloo processes; re-raises failures."""
    _gloo_spawn.spawn(__name__, fn_name, world, args)


def _model(fsdp: bool = False):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(TINY)
    if fsdp:
        from torch.distributed.fsdp import fully_shard
        for layer in model.model.layers:        # per decoder layer, then the root
            fully_shard(layer)
        fully_shard(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 3))
    return model, AutoTokenizer.from_pretrained(TINY), opt, sched


def _train_step(model, opt, sched, rank: int, step: int) -> None:
    g = torch.Generator().manual_seed(1000 * step + rank)     # each rank its own data
    ids = torch.randint(0, model.config.vocab_size, (2, 12), generator=g)
    model(input_ids=ids, labels=ids).loss.backward()
    for p in model.parameters():                 # plain DDP-style average (FSDP2 reduces its own)
        if p.grad is not None and not hasattr(p, "to_local"):
            dist.all_reduce(p.grad)
            p.grad.div_(dist.get_world_size())
    opt.step()
    sched.step()
    opt.zero_grad(set_to_none=True)


def _local(t):
    return t.to_local() if hasattr(t, "to_local") else t


# ------------------------------------------------------------------ a save that fails on one rank
WHERE = ("rng_rank1", "export_rank0", "dcp_rank1", "disk_full_rank1")


def crash_during_save(rank: int, world: int, root: str) -> None:
    """Each failure of WHERE in turn (one pair of processes: spawning is the slow part)."""
    import torch.distributed.checkpoint as dcp

    from grpo.dist import ckpt as D
    from transformers import PreTrainedModel
    saved = (D.rng_state, PreTrainedModel.save_pretrained, dcp.FileSystemWriter.write_data)
    for where in WHERE:
        try:
            _crash_one(rank, Path(root) / where, where)
        finally:
            D.rng_state, PreTrainedModel.save_pretrained, dcp.FileSystemWriter.write_data = saved


def _crash_one(rank: int, root: Path, where: str) -> None:
    from grpo.run import checkpoint
    from grpo.dist import ckpt as D
    model, tok, opt, sched = _model()
    _train_step(model, opt, sched, rank, 1)
    checkpoint.save(root, 1, model, tok, opt, sched, keep=3)
    at_1 = {n: p.detach().clone() for n, p in model.named_parameters()}
    _train_step(model, opt, sched, rank, 2)
    victim = 0 if where.endswith("rank0") else 1

    def boom(*a, **kw):
        if where.startswith("disk_full"):
            raise OSError(errno.ENOSPC, "No space left on device")
        raise RuntimeError(f"injected failure ({where})")
    if rank == victim:
        if where.startswith("rng") or where.startswith("disk_full"):
            D.rng_state = boom                                  # after this rank's DCP shard
        elif where.startswith("export"):
            from transformers import PreTrainedModel
            PreTrainedModel.save_pretrained = boom              # rank 0's HF export
        elif where.startswith("dcp"):
            import torch.distributed.checkpoint as dcp
            dcp.FileSystemWriter.write_data = boom              # inside DCP's collective write
    try:
        checkpoint.save(root, 2, model, tok, opt, sched, keep=3)
    except checkpoint.CheckpointError as e:
        msg = str(e)
    else:
        raise AssertionError(f"rank {rank}: the save with a failure on rank {victim} ({where}) did not fail")
    assert "\n" not in msg and "could not save checkpoint step-2" in msg, msg
    if where.startswith("disk_full"):
        assert "no space left on device" in msg, msg
    elif not where.startswith("dcp"):
        assert f"on rank {victim}" in msg and "injected failure" in msg, msg
    dist.barrier()
    assert sorted(p.name for p in root.iterdir()) == ["step-1"], sorted(p.name for p in root.iterdir())
    assert checkpoint.damage(root / "step-1") is None
    assert checkpoint.latest_resumable(root) == root / "step-1"
    fresh, _, opt2, sched2 = _model()
    assert checkpoint.restore(root / "step-1", fresh, opt2, sched2) == 1
    assert all(torch.equal(p, at_1[n]) for n, p in fresh.named_parameters())


# ------------------------------------------------------------------ FSDP2: save, export, resume
def fsdp_roundtrip(rank: int, world: int, root: str) -> None:
    """An FSDP2-wrapped model: the sharded save, the full HF export, then a resume into a
    freshly wrapped model continues exactly as the uninterrupted one."""
    from safetensors.torch import load_file

    from grpo.run import checkpoint
    root = Path(root)
    model, tok, opt, sched = _model(fsdp=True)
    for s in (1, 2):
        _train_step(model, opt, sched, rank, s)
    ck = checkpoint.save(root, 2, model, tok, opt, sched, keep=2)
    full = {n: p.full_tensor() for n, p in model.named_parameters()}     # collective
    shards = {n: _local(p).clone() for n, p in model.named_parameters()}
    if rank == 0:
        exported = load_file(str(ck / "model.safetensors"))
        missing = [n for n in full if n not in exported and "lm_head" not in n]
        assert not missing, missing
        assert all(torch.equal(exported[n], full[n]) for n in full if n in exported)
        assert len(list((ck / "dcp").glob("*.distcp"))) == world       # each rank wrote its shard
    _train_step(model, opt, sched, rank, 3)
    after = {n: _local(p).clone() for n, p in model.named_parameters()}

    model2, _, opt2, sched2 = _model(fsdp=True)
    assert checkpoint.restore(ck, model2, opt2, sched2) == 2
    assert all(torch.equal(_local(p), shards[n]) for n, p in model2.named_parameters())
    _train_step(model2, opt2, sched2, rank, 3)
    assert all(torch.equal(_local(p), after[n]) for n, p in model2.named_parameters()), \
        "the resumed FSDP2 run diverged from the uninterrupted one"
    # Per-rank memory of the parameters + AdamW state: about 1/world of the full model's.
    local_bytes = sum(_local(p).numel() * 4 * 3 for p in model2.parameters())
    full_bytes = sum(t.numel() * 4 * 3 for t in full.values())
    assert local_bytes <= full_bytes / world * 1.1, (local_bytes, full_bytes)
