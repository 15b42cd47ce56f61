"""Run untrusted, model-generated Python against unit tests, locally.

    >>> import sandbox
    >>> r = sandbox.run("def f(x):\\n    return 2 * x", ["assert f(2) == 4", "assert f(3) == 7"])
    >>> r.status, r.passed, r.total
    ('failed', 1, 2)

``tests`` as a list: each snippet runs after the code, in one namespace of
its own, and counts on its own (a failing one does not stop the others).  As
a str: one snippet, ``total == 1``.  The code runs with ``__name__ ==
"__sandbox__"`` (as in the HumanEval harness, ``if __name__ == "__main__":``
blocks do not run) and only the standard library is importable.  As a list
of ``{"input": ..., "output": ...}`` (stdin/stdout cases): each case is a run
of the program (``__name__ == "__main__"``) with that stdin, its own time
limit, and its stdout compared on the host; ``passed`` counts the cases.

Verdicts (docs/SANDBOX.md has the design and its limits): the tests never
enter the code's process.  The code runs in a *candidate* process; the tests
run in a separate *tester* process (another uid, non-dumpable) in which the
code's functions are proxies: each call sends plain data (marshal) to the
candidate and gets plain data back, so ``__eq__`` tricks, patched builtins,
lines written to any descriptor, or reading memory cannot change a verdict.

Statuses: "ok" (all tests passed), "failed" (some test failed), "error" (the
code raised or had a syntax error before the tests), "timeout" (wall clock or
CPU limit), "memory" (MemoryError), "output_limit" (stdout+stderr over 1 MiB),
"killed" (a signal such as SIGSEGV, or a resource limit: file size, disk,
processes, open files), "sandbox_error" (the sandbox itself failed).

What every run gets (all modes)
------------------------------
* A fresh Python process: ``python -I -S -B`` (no PYTHON* variables, no
  site-packages, no cwd on sys.path, no .pyc writes), either started for the
  run or forked for it from a warm "zygote" (see Launch below).
* A fixed environment (PATH, HOME, TMPDIR, LANG, LC_ALL, MALLOC_ARENA_MAX;
  bwrap adds PWD); nothing of the caller's environment is passed on.
* rlimits set before the code runs, soft = hard so they cannot be raised
  (CPU: hard = soft + 1): CPU seconds (ceil(timeout)+1), address space
  (``memory_mb``), processes (64), file size (16 MiB), open files (64), core
  dumps (0), locked memory (0).
* A wall clock that starts when the code starts; when it expires everything
  of the run is SIGKILLed, and no run returns before its processes are gone.
* Output caps: stdout+stderr are read up to 1 MiB, then the run is killed.
* When the caller is root (as in our containers), a private unprivileged uid
  per concurrent run: RLIMIT_NPROC then really applies (root is exempt), and
  the code cannot signal, ptrace, or read the environment or files of the
  caller or of other runs.
* A seccomp filter (x86_64/aarch64) denying socket(), io_uring, ptrace,
  process_vm_*, bpf, perf_event_open, userfaultfd, the keyring syscalls, new
  user namespaces (clone/unshare with CLONE_NEWUSER; clone3 -> ENOSYS), the
  new mount API, SysV shm/msg and memfd_create, under no_new_privs (setuid
  binaries cannot raise privileges).
* Results come back on a separate pipe that only the tester holds, so
  printing "PASSED", writing to any descriptor, or exiting early
  (sys.exit(0), os._exit(0)) never counts as passing.
* If the calling process dies mid-run, the run dies too: zygotes kill their
  run on EOF of their control socket, bwrap has --die-with-parent, and the
  other spawned runs are ended by a ``timeout -s KILL`` watchdog
  (start-up budget + timeout + 5 s).

Backends (strongest available is chosen at first use; see capabilities())
----------------------------------------------------------------------
* ``bwrap`` (Debian package ``bubblewrap``): new pid/net/ipc/uts/mount
  namespaces; the code sees only read-only /usr and the Python prefix, a
  private /proc and /dev, and a 64 MiB tmpfs as its cwd (plus 16 MiB at
  /dev/shm; 4096 inodes each) that vanish with the run; host package dirs
  are covered by empty read-only mounts.  When the run's pid 1 dies the kernel
  kills every process inside, so grandchildren that ``setsid`` away die too.
* ``unshare`` (util-linux): the same namespaces, but the host filesystem stays
  visible (read-only for the sandbox uid by ordinary permissions); /tmp,
  /var/tmp and /dev/shm are replaced by private size-capped tmpfs mounts.
* ``none``: plain subprocess.  No network namespace: network access is
  refused only by the seccomp filter, and is OPEN if seccomp is unavailable.
  The cwd is a host temp dir removed afterwards; leftover processes are
  killed with kill(-1) as the run's uid (needs root).

Launch: ``zygote`` (bwrap and unshare, preferred) keeps a warm interpreter
inside a long-lived sandbox and forks each run into its *own* fresh pid,
mount and IPC namespaces (and network, where no seccomp filter is in force) with
fresh tmpfs mounts, so runs do not see each other; after every run the zygote checks that its processes, /tmp,
/dev/shm and unix sockets are as before (else it is never reused).  3-4x faster
than ``spawn``, which starts a new sandbox and interpreter per run.  The
zygote runs as root with CAP_SYS_ADMIN/SETUID/SETGID inside the sandbox; each
run drops all of that before its code starts.

Set ``GRPO_SANDBOX_BACKEND`` (and ``GRPO_SANDBOX_LAUNCH``) to force a mode;
an automatic fallback to anything weaker than bwrap+seccomp is logged as a
warning and is visible in capabilities().

What it does NOT cover (be honest about it)
-------------------------------------------
* Kernel exploits: all modes share the host kernel.  This is process
  isolation, not a VM; for hostile-by-design code use gVisor/Firecracker.
* ``memory_mb`` is per process (RLIMIT_AS), not per run: 64 processes may
  each map ``memory_mb``.  No cgroups are used (they are not delegated to us
  here); nor is there a per-run CPU-share limit, only CPU time per process.
  tmpfs contents (up to 96 MiB per run) live in RAM outside RLIMIT_AS.
* Reward integrity has limits of its own (non-serialisable arguments,
  in-place mutation, identity tests, trusted test code, marshal's parser):
  see docs/SANDBOX.md.
* Without root: no private uid, RLIMIT_NPROC counts all the user's processes
  (we allow current count + 64; concurrent runs share that headroom), and no
  zygote under bwrap (its nested user namespace forbids it: runs are
  spawned).  With the ``none`` backend on top, the code runs AS THE CALLER'S
  USER: it can read and write the caller's files and signal (kill) the
  caller's processes, and processes that escape the process group survive.
* ``none`` backend: no per-run disk quota (only 16 MiB per file), files
  written to world-writable host dirs (/tmp, /dev/shm) stay, the host
  filesystem is readable where permissions allow, and orphaned processes are
  reaped by the host's init (their zombies count toward the slot's process
  limit until then).
* Languages other than Python (``language`` must be "python").
* Timing side channels, /proc and /sys information leaks (kernel version,
  CPU model), and denial of service through CPU contention between runs.
"""

from __future__ import annotations

import os
import threading

from ._status import STATUSES, Result
from .core import Sandbox

__all__ = ["Result", "Sandbox", "STATUSES", "run", "run_batch", "capabilities"]

_defaults: dict[tuple, Sandbox] = {}
_default_lock = threading.Lock()


def default_sandbox(allow_packages=()) -> Sandbox:
    """The process-wide Sandbox used by run/run_batch/capabilities (one per
    set of allowed packages: those are part of a zygote's filesystem)."""
    key = tuple(sorted(set(allow_packages or ())))
    with _default_lock:
        if key not in _defaults:
            _defaults[key] = Sandbox(backend=os.environ.get("GRPO_SANDBOX_BACKEND") or None,
                                     launch=os.environ.get("GRPO_SANDBOX_LAUNCH") or None,
                                     allow_packages=key)
        return _defaults[key]


def run(code: str, tests, language: str = "python", timeout_s: float = 5.0,
        memory_mb: int = 512, *, entry_point: str | None = None, require_calls: bool = False,
        float_tol: float | None = None) -> Result:
    """Run ``code`` against ``tests`` (see the module doc) in fresh sandboxed processes.

    ``entry_point``: a name the tests may use even if it shadows a builtin.
    ``require_calls``: a Python test that neither calls the solution nor reads
    one of its values fails ("cannot fail" tests are not evidence).
    ``float_tol``: numeric tolerance when comparing stdin/stdout outputs, for
    tokens written as real numbers only (integers match exactly).
    """
    return default_sandbox().run(code, tests, language, timeout_s, memory_mb,
                                 entry_point=entry_point, require_calls=require_calls,
                                 float_tol=float_tol)


def run_batch(items, timeout_s: float = 5.0, memory_mb: int = 512, workers: int | None = None,
              *, require_calls: bool = False, float_tol: float | None = None,
              allow_packages=()) -> list[Result]:
    """``run`` for many (code, tests) or (code, tests, entry_point) items
    concurrently (each stdin/stdout case is its own run); results keep the order.

    ``workers`` defaults to four times the number of usable CPUs.  ``allow_packages``:
    installed packages the code may import (e.g. ["numpy"]); by default only
    the standard library.
    """
    return default_sandbox(allow_packages).run_batch(items, timeout_s, memory_mb, workers,
                                                     require_calls=require_calls,
                                                     float_tol=float_tol)


def capabilities() -> dict:
    """What isolation this machine offers and which one ``run`` uses."""
    return default_sandbox().capabilities()
