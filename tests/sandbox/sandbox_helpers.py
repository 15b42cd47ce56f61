"""Host-side checks shared by the sandbox tests (a plain module: conftest.py
names clash between test folders)."""

from __future__ import annotations

import os
import time

from sandbox._slots import SLOTS, UID_BASE


def _proc_status(pid: str) -> bytes:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            return f.read()
    except OSError:
        return b""


def sandbox_pids() -> list[int]:
    """Live processes running as one of the sandbox uids of this test process."""
    lo = UID_BASE + (os.getpid() << 7)
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        status = _proc_status(pid)
        if b"\nState:\tZ" in status:
            continue  # dead; only its exit status waits for a reaper
        start = status.find(b"\nUid:")
        if start >= 0 and lo <= int(status[start + 5:].split()[0]) < lo + 2 * SLOTS:
            out.append(int(pid))
    return out


def pids_with_arg(marker: str) -> list[int]:
    """Processes whose command line contains ``marker`` (seen from the host)."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    out.append(int(pid))
        except OSError:
            pass
    return out


def wait_until(predicate, timeout_s: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
