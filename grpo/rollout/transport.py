"""Weight broadcast from the trainer to a rollout server: NCCL on GPU, gloo on CPU.

HTTP (``server.py``'s default) copies every weight through a socket and safetensors: fine
for a small model, minutes for a 7B one. Here the trainer (rank 0) and the server (rank 1)
form their own two-member process group (a ``TCPStore`` the trainer hosts, not the default
group, which either side may already use for something else) and the weights go as a few
byte buckets through ``broadcast``: NVLink/InfiniBand speed with NCCL, the same code over
gloo on CPU, where this project tests it. The names, dtypes and shapes travel first over
HTTP (``/update_weights_broadcast``), so both sides cut the buckets identically; the same
design as TRL's vllm-serve ``init_communicator`` / ``update_named_param``.

Limits: one server process whose engine runs in process (tensor parallelism inside the
server would need every worker in the group); the NCCL path is untested here (no GPU).
"""
from __future__ import annotations

import socket
from datetime import timedelta
from typing import Iterator
from urllib.parse import urlparse

import torch
import torch.distributed as dist

WIRE_DTYPES = {str(d): d for d in (torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64,
                              torch.int32, torch.int8, torch.uint8, torch.bool)}


def default_backend() -> str:
    return "nccl" if torch.cuda.is_available() else "gloo"


def local_address_towards(url: str) -> str:
    """The address of this machine that ``url``'s host would reach it by (no packet is sent:
    a UDP ``connect`` only picks the route)."""
    host = urlparse(url).hostname or "127.0.0.1"
    if host in ("127.0.0.1", "localhost", "::1"):
        return "127.0.0.1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((host, 9))
        return s.getsockname()[0]


def plan_buckets(meta: list[tuple[str, str, list[int]]], bucket_bytes: int) -> list[list[int]]:
    """Indices of ``meta`` per bucket, in order, each bucket at most ``bucket_bytes`` (a larger
    tensor goes alone). Both sides compute it from the same metadata.

    >>> plan_buckets([("a", "torch.float32", [4]), ("b", "torch.float32", [4]), ("c", "torch.bfloat16", [2])], 24)
    [[0], [1, 2]]
    """
    out, cur, size = [], [], 0
    for i, (_, dtype, shape) in enumerate(meta):
        n = _slot(_nbytes(dtype, shape))
        if cur and size + n > bucket_bytes:
            out.append(cur)
            cur, size = [], 0
        cur.append(i)
        size += n
    if cur:
        out.append(cur)
    return out


def _nbytes(dtype: str, shape: list[int]) -> int:
    numel = 1
    for d in shape:
        numel *= d
    return numel * torch.empty((), dtype=WIRE_DTYPES[dtype]).element_size()


def _slot(n: int) -> int:
    """Bytes a tensor takes in a bucket: 8-aligned, so every slice can be viewed as its dtype."""
    return (n + 7) // 8 * 8


class WeightChannel:
    """One member of the trainer -> server weight group. Rank 0 (the trainer) hosts the
    store and sends; ranks 1..world_size-1 (a server, or each vLLM worker) receive."""

    def __init__(self, host: str, port: int, rank: int, backend: str | None = None,
                 timeout_s: float = 600.0, bucket_mb: float = 512.0, device: str | None = None,
                 world_size: int = 2):
        self.rank, self.world_size = rank, world_size
        self.backend = backend or default_backend()
        timeout = timedelta(seconds=timeout_s)
        store = dist.TCPStore(host, port, world_size=world_size, is_master=(rank == 0), timeout=timeout)
        if self.backend == "gloo":
            self.pg = dist.ProcessGroupGloo(store, rank, world_size, timeout)
            self.device = torch.device("cpu")
        elif self.backend == "nccl":
            self.device = torch.device(device or f"cuda:{torch.cuda.current_device()}")
            self.pg = dist.ProcessGroupNCCL(store, rank, world_size)          # GPU builds only
        else:
            raise ValueError(f"backend must be gloo or nccl, not {self.backend!r}")
        self.bucket_bytes = int(bucket_mb * 2 ** 20)

    def _broadcast(self, buf: torch.Tensor, root: int = 0) -> None:
        self.pg.broadcast([buf], _root(root)).wait()

    def _ack(self) -> None:
        """Every member's word that every bucket arrived (a one-element all-reduce): ``send``
        returns only then, so no side tears the group down under a transfer."""
        self.pg.allreduce([torch.ones(1, dtype=torch.int32, device=self.device)]).wait()

    # ----------------------------------------------------------------- trainer (rank 0)
    @staticmethod
    def describe(named: list[tuple[str, torch.Tensor]]) -> list[tuple[str, str, list[int]]]:
        return [(n, str(t.dtype), list(t.shape)) for n, t in named]

    def send(self, named: list[tuple[str, torch.Tensor]]) -> None:
        """Broadcast the tensors, in the order :meth:`describe` listed them."""
        meta = self.describe(named)
        for bucket in plan_buckets(meta, self.bucket_bytes):
            buf = torch.zeros(sum(_slot(_nbytes(*meta[i][1:])) for i in bucket), dtype=torch.uint8,
                              device=self.device)
            off = 0
            for i in bucket:
                b = named[i][1].detach().contiguous().reshape(-1).view(torch.uint8)
                buf[off:off + b.numel()].copy_(b)
                off += _slot(b.numel())
            self._broadcast(buf)
        self._ack()

    # ----------------------------------------------------------------- receivers (rank >= 1)
    def receive(self, meta: list[tuple[str, str, list[int]]]) -> Iterator[tuple[str, torch.Tensor]]:
        """The tensors rank 0 sends, as (name, tensor) on this side's device."""
        for bucket in plan_buckets(meta, self.bucket_bytes):
            sizes = [_nbytes(*meta[i][1:]) for i in bucket]
            buf = torch.empty(sum(_slot(n) for n in sizes), dtype=torch.uint8, device=self.device)
            self._broadcast(buf)
            off = 0
            for i, n in zip(bucket, sizes):
                name, dtype, shape = meta[i]
                yield name, buf[off:off + n].view(WIRE_DTYPES[dtype]).reshape(shape)
                off += _slot(n)
        self._ack()

    def close(self) -> None:
        """Shut the group down now. Left to interpreter exit, gloo's destructor can abort the
        process ("terminate called without an active exception") when the peer is gone."""
        pg, self.pg = getattr(self, "pg", None), None
        if pg is not None and hasattr(pg, "shutdown"):
            try:
                pg.shutdown()
            except Exception:  # noqa: BLE001 -- best effort at exit
                pass

    def __enter__(self) -> "WeightChannel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _root(rank: int):
    opts = dist.BroadcastOptions()
    opts.rootRank = rank
    return opts
