"""The sharded part of a checkpoint: ``torch.distributed.checkpoint`` (DCP) and per-rank RNG.

One code path for one process and many: ``step-N/dcp/`` holds the model and optimizer
state as DCP writes it (each rank its own shard, ``.metadata`` from rank 0), taken with
``get_state_dict``/``set_state_dict`` so plain modules, FSDP2-sharded ones (DTensor
parameters), LoRA (frozen base weights left out) and expert-parallel MoE all work; DCP
reshards on load when the world size changed. ``step-N/rng-R.pt`` holds rank R's RNG
states (torch CPU and CUDA, python ``random``, numpy).

Expert-parallel weights are plain tensors that differ per rank under one name, which DCP
would take for replicas and save once: they are saved under ``NAME@epK/E`` (K: the rank in
its expert-parallel group of E), so such a checkpoint resumes only with the same layout.

The collective helpers (:func:`rank`, :func:`agree`, :func:`one_decides`) work without a
process group too (one process: no communication).
"""
from __future__ import annotations

import contextlib
import random
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

DCP_DIR = "dcp"


# ---------------------------------------------------------------- collectives (or none)
def _dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if _dist() else 0


def world() -> int:
    return dist.get_world_size() if _dist() else 1


def agree(failed: bool) -> bool:
    """True on every rank when any rank ``failed`` (collective: every rank must call it)."""
    if not _dist():
        return failed
    flag = torch.tensor([int(failed)], dtype=torch.int64,
                        device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(flag)
    return bool(flag.item())


def one_decides(fn, errors: tuple = (Exception,)):
    """Rank 0 runs ``fn()``; every rank returns its result, or raises the error rank 0 met
    (same class, same one-line message), so no rank waits forever on a rank that stopped."""
    if not _dist():
        return fn()
    box = [None]
    if rank() == 0:
        try:
            box[0] = ("ok", fn())
        except errors as e:
            box[0] = ("err", e)
            dist.broadcast_object_list(box, src=0)
            raise
    dist.broadcast_object_list(box, src=0)
    kind, val = box[0]
    if kind == "err":
        raise val
    return val


def barrier() -> None:
    if _dist():
        dist.barrier()


# ---------------------------------------------------------------- RNG of this rank
def rng_state() -> dict:
    st = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict) -> None:
    torch.set_rng_state(st["torch"])
    random.setstate(st["python"])
    np.random.set_state(st["numpy"])
    if "cuda" in st and torch.cuda.is_available() and len(st["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(st["cuda"])


def reseed(seed: int, step: int) -> None:
    """Fresh RNG streams for this rank at ``step`` (a resume on another world size)."""
    s = (seed * 1_000_003 + step) * 1009 + rank()
    torch.manual_seed(s)
    random.seed(s)
    np.random.seed(s % 2**32)


# ---------------------------------------------------------------- model + optimizer
def _options(**kw):
    from torch.distributed.checkpoint.state_dict import StateDictOptions
    return StateDictOptions(ignore_frozen_params=True, **kw)


def _ep_names(model) -> tuple[set, str]:
    """Expert-parallel parameter names and this rank's tag (empty: none)."""
    from ..moe.layer import ExpertParallelMoE, expert_parameter_names
    blocks = [m for m in model.modules() if isinstance(m, ExpertParallelMoE)]
    if not blocks or blocks[0].world <= 1:
        return set(), ""
    g = blocks[0].group
    return set(expert_parameter_names(model)), f"@ep{dist.get_rank(g)}/{blocks[0].world}"


def _rename(sd: dict, osd: dict, names: set, tag: str, back: bool = False) -> None:
    """Expert parameter ``k`` <-> ``k + tag`` in the model and optimizer state dicts."""
    for d in (sd, osd["state"]) if names else ():
        if back:
            new = {k: k[:-len(tag)] for k in d if k.endswith(tag) and k[:-len(tag)] in names}
        else:
            new = {k: k + tag for k in d if k in names}
        for old, k in new.items():
            d[k] = d.pop(old)


@contextlib.contextmanager
def _quiet():
    """DCP warns on every call that it runs without a process group (one process): intended."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.distributed is disabled.*")
        yield


def _state_dicts(model, optimizer) -> dict:
    from torch.distributed.checkpoint.state_dict import get_state_dict
    sd, osd = get_state_dict(model, optimizer, options=_options())
    frozen = {n for n, p in model.named_parameters(remove_duplicate=False) if not p.requires_grad}
    sd = {k: v for k, v in sd.items() if k not in frozen}   # a tied alias of a frozen weight too
    names, tag = _ep_names(model)
    _rename(sd, osd, names, tag)
    return {"model": sd, "optim": osd}


def save_sharded(path: Path, model, optimizer) -> None:
    """Write this rank's shard of model + optimizer into ``path`` (collective)."""
    import torch.distributed.checkpoint as dcp
    state = _state_dicts(model, optimizer)
    with _quiet():
        dcp.save(state, storage_writer=dcp.FileSystemWriter(str(path), sync_files=True))


def load_sharded(path: Path, model, optimizer) -> None:
    """Load model + optimizer from ``path`` into this rank's shards (collective; DCP
    reshards plain and FSDP2 state across another world size)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import set_state_dict
    state = _state_dicts(model, optimizer)
    with _quiet():
        dcp.load(state, storage_reader=dcp.FileSystemReader(str(path)))
    names, tag = _ep_names(model)
    _rename(state["model"], state["optim"], names, tag, back=True)
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"],
                   options=_options(strict=False))     # dcp.load already refused a missing key


def full_model_state_dict(model) -> dict | None:
    """The unsharded weights of an FSDP2 model on rank 0, on CPU (collective); None for a
    model without DTensor parameters (its own parameters are the full weights)."""
    from torch.distributed.tensor import DTensor
    if not any(isinstance(p, DTensor) for p in model.parameters()):
        return None
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def local(t: torch.Tensor) -> torch.Tensor:
    """This rank's shard of a DTensor; any other tensor as it is."""
    return t.to_local() if hasattr(t, "to_local") else t


def metadata_error(path: Path) -> str | None:
    """Why the DCP directory ``path`` cannot be read, or None."""
    import torch.distributed.checkpoint as dcp
    try:
        md = dcp.FileSystemReader(str(path)).read_metadata()
    except Exception as e:  # noqa: BLE001 -- any unreadable metadata makes the checkpoint unusable
        return f"{DCP_DIR}/.metadata is unreadable ({type(e).__name__})"
    return None if md.state_dict_metadata else f"{DCP_DIR}/.metadata lists no tensors"
