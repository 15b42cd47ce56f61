"""Weight broadcast trainer -> rollout server (grpo/rollout/transport.py), over gloo on CPU."""
import json
import socket
import subprocess
import sys
from pathlib import Path

import torch

from grpo.rollout.transport import WeightChannel, plan_buckets

ROOT = Path(__file__).resolve().parents[2]
RECEIVER = """
import json, sys, torch
from grpo.rollout.transport import WeightChannel
port, meta, out = int(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
with WeightChannel("127.0.0.1", port, 1, bucket_mb=64 / 2 ** 20) as ch:   # 64-byte buckets
    torch.save([(n, t.clone()) for n, t in ch.receive(meta)], out)
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_broadcast_delivers_every_tensor_bit_exact(tmp_path):
    g = torch.Generator().manual_seed(0)
    named = [("a.weight", torch.randn(3, 5, generator=g)), ("b", torch.randn(7, generator=g).bfloat16()),
             ("c", torch.arange(5)), ("d", torch.randn(40, 3, generator=g).half()), ("e", torch.tensor(True)),
             ("f", torch.randn(2, 2, generator=g).t())]                        # non-contiguous
    meta = WeightChannel.describe(named)
    assert len(plan_buckets(meta, 64)) > 3                                           # several buckets
    port, out = _port(), tmp_path / "got.pt"
    proc = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port), json.dumps(meta), str(out)], cwd=ROOT)
    try:
        with WeightChannel("127.0.0.1", port, 0, bucket_mb=64 / 2 ** 20, timeout_s=120) as ch:
            ch.send(named)                                    # returns once the receiver has all of it
            assert proc.wait(timeout=120) == 0
    finally:
        proc.kill()
    got = torch.load(out)
    assert [n for n, _ in got] == [n for n, _ in named]
    for (_, a), (_, b) in zip(named, got):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)


SLOW_RECEIVER = """
import json, sys, time, torch
from grpo.rollout.transport import WeightChannel
port, meta = int(sys.argv[1]), json.loads(sys.argv[2])
with WeightChannel("127.0.0.1", port, 1, bucket_mb=64 / 2 ** 20) as ch:
    for _ in ch.receive(meta):
        time.sleep(0.5)                                  # a slow engine loading each tensor
"""


def test_send_returns_only_after_the_receiver_took_every_tensor():
    """Without the receiver's closing ack ``send`` returned once the bytes were in the socket,
    and a sender that then closed its group could abort the receiver mid-load."""
    import time
    named = [(f"w{i}", torch.full((4,), float(i))) for i in range(6)]
    meta = WeightChannel.describe(named)
    port = _port()
    proc = subprocess.Popen([sys.executable, "-c", SLOW_RECEIVER, str(port), json.dumps(meta)], cwd=ROOT)
    try:
        with WeightChannel("127.0.0.1", port, 0, bucket_mb=64 / 2 ** 20, timeout_s=120) as ch:
            t0 = time.monotonic()
            ch.send(named)
            took = time.monotonic() - t0
            assert proc.wait(timeout=120) == 0
    finally:
        proc.kill()
    assert took >= 6 * 0.5 - 0.2, took
