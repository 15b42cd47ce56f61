"""Run a worker module's function in ``world`` gloo processes (the multi-process tests of
tests/dist_ckpt and tests/moe). The ranks meet through a FileStore, not a port picked now
and bound later (another process can take it in between: a launch failure under load).
The name is unique so it never clashes with a test directory's helpers."""
from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def spawn(module: str, fn_name: str, world: int, args: tuple, start_method: str = "spawn") -> None:
    """Run ``module.fn_name(rank, world, *args)`` in ``world`` processes; re-raises failures."""
    with _rendezvous_file() as store:
        mp.start_processes(_entry, args=(world, store, module, fn_name, args), nprocs=world, join=True,
                           start_method=start_method)


@contextlib.contextmanager
def _rendezvous_file():
    """A fresh path for the FileStore, removed after."""
    d = tempfile.mkdtemp(prefix="grpo_gloo_")
    try:
        yield os.path.join(d, "store")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _entry(rank: int, world: int, store: str, module: str, fn_name: str, args) -> None:
    torch.set_num_threads(1)  # 2 shared cores: no oversubscription
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        getattr(importlib.import_module(module), fn_name)(rank, world, *args)
    finally:
        dist.destroy_process_group()
