"""Resource limits of one sandboxed run, in one place.

Per-run values (``timeout_s``, ``memory_mb``) come from the caller; the rest
are fixed here.  All rlimits are applied by the harness inside the child
before any untrusted code runs, hard and soft alike, so the code cannot raise
them again.
"""

from __future__ import annotations

import math

MAX_OUTPUT_BYTES = 1 << 20  # stdout + stderr together; more -> "output_limit"
MAX_FILE_BYTES = 16 << 20  # RLIMIT_FSIZE: largest file the code may write
DISK_BYTES = 64 << 20  # size of the tmpfs that is the cwd (bwrap, unshare)
SHM_BYTES = 16 << 20  # size of the tmpfs at /dev/shm (and /var/tmp for unshare)
INODES = 4096  # files + dirs per tmpfs (nr_inodes): no 200,000 empty files
NPROC = 64  # RLIMIT_NPROC: processes + threads of the run's uid
NOFILE = 64  # RLIMIT_NOFILE: open file descriptors
MIN_MEMORY_MB = 32  # the interpreter alone maps ~12 MiB
STARTUP_S = 10.0  # budget for interpreter start-up before the timeout clock starts
WATCHDOG_GRACE_S = 5.0  # the external `timeout` watchdog fires this much later


def max_recursion(memory_mb: int) -> int:
    """Cap on ``sys.setrecursionlimit`` (~280 bytes per 3.11 frame: a quarter of memory).

    >>> max_recursion(512)
    512000
    """
    return memory_mb * 1000


def ipc_limits(memory_mb: int) -> list[tuple[str, int]]:
    """SysV IPC sysctls of a run's IPC namespace: at most ``memory_mb`` of
    shared memory in all, in at most 8 segments; 8 message queues.

    >>> dict(ipc_limits(256))["shmall"]
    65536
    """
    total = memory_mb << 20
    return [("shmmax", total), ("shmall", total // 4096), ("shmmni", 8), ("msgmni", 8)]


def rlimits(timeout_s: float, memory_mb: int, nproc: int = NPROC) -> list[tuple[str, int, int]]:
    """(name, soft, hard) triples for the harness.

    >>> dict((n, s) for n, s, h in rlimits(2.5, 256))["RLIMIT_CPU"]
    4
    """
    cpu = math.ceil(timeout_s) + 1  # the wall clock usually fires first
    mem = memory_mb << 20
    return [
        # SIGXCPU at the soft limit, SIGKILL at the hard one if it is ignored.
        ("RLIMIT_CPU", cpu, cpu + 1),
        ("RLIMIT_AS", mem, mem),
        ("RLIMIT_NPROC", nproc, nproc),
        ("RLIMIT_FSIZE", MAX_FILE_BYTES, MAX_FILE_BYTES),
        ("RLIMIT_NOFILE", NOFILE, NOFILE),
        ("RLIMIT_CORE", 0, 0),  # no core dumps on the host from a crash
        ("RLIMIT_MEMLOCK", 0, 0),
    ]
