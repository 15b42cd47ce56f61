"""Concurrency slots, each with its own unprivileged uid (when we are root).

Why a uid per concurrent run:

* RLIMIT_NPROC counts all processes of a *user*, and root is exempt from it.
  A private uid turns it into a real per-run fork-bomb limit.
* A process cannot signal, ptrace or read ``/proc/PID/environ`` of another
  uid, so a run cannot touch the host, the caller, or a concurrent run, even
  in the ``none`` backend where there is no pid namespace.
* After a run, ``kill(-1, SIGKILL)`` issued *as that uid* kills every process
  it left behind, including ones that escaped the process group with setsid.

Each slot has two uids, one for the candidate process and one for the tester
(see _harness.py): ``UID_BASE + (pid << 7) + slot`` and that plus ``SLOTS``.
They are unused on ordinary systems
(no /etc/passwd entry is needed) and distinct between concurrent Python
processes on the same host (e.g. one per training rank), since live pids
are unique.  Without root none of this is possible; see ``nproc``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time

from . import backends, limits
from ._owned import UID_BASE, owned_entries

SLOTS = 64  # max concurrent runs per process; pid_max (2**22) << 7 stays < 2**31


# One pool per process, shared by every Sandbox in it: two runs must never
# share a uid, or one's kill(-1) would hit the other.
_cond = threading.Condition()
_owner = {"pid": -1, "free": []}


class Slots:
    size = SLOTS

    def __init__(self):
        self._count_cache = (0.0, 0)

    @contextlib.contextmanager
    def acquire(self):
        with _cond:
            if _owner["pid"] != os.getpid():  # fresh pool after a fork
                _owner.update(pid=os.getpid(), free=list(range(SLOTS)))
            while not _owner["free"]:
                _cond.wait()
            slot = _owner["free"].pop()
        try:
            yield slot
        finally:
            with _cond:
                if _owner["pid"] == os.getpid():
                    _owner["free"].append(slot)
                    _cond.notify()

    @staticmethod
    def uid(slot: int) -> int:
        """The candidate's uid of ``slot``."""
        return UID_BASE + (os.getpid() << 7) + slot

    @staticmethod
    def tester_uid(slot: int) -> int:
        """The tester's uid of ``slot`` (never any slot's candidate uid)."""
        return UID_BASE + (os.getpid() << 7) + SLOTS + slot

    def nproc(self, uid: int | None, backend: str) -> int:
        """RLIMIT_NPROC for a run.

        With a private uid: a flat per-run budget, plus (``none`` backend) the
        zombies earlier runs of this uid left to the host's init, which still
        count until init reaps them.  Without a private uid (not root) the
        limit counts all processes of the calling user, so allow what the
        user already runs plus the budget; concurrent runs share it.
        """
        if uid is not None:
            return limits.NPROC + (_processes_of(uid)[1] if backend == "none" else 0)
        stamp, count = self._count_cache
        if time.monotonic() - stamp > 1.0:
            count = sum(_processes_of(os.getuid()))
            self._count_cache = (time.monotonic(), count)
        return count + limits.NPROC

    @staticmethod
    def wait_gone(uid: int | None, timeout_s: float = 5.0) -> bool:
        """Wait until no live process of ``uid`` is left.

        SIGKILL is asynchronous and a killed pid namespace is torn down after
        its pid 1 is gone; the next run on this slot must not share its
        RLIMIT_NPROC budget with the old processes.  Zombies are not waited
        for (see ``nproc``): orphans are reaped by the host's init, which may
        be slow, or absent when a training script runs as pid 1.
        """
        if uid is None:
            return True
        deadline = time.monotonic() + timeout_s
        while _processes_of(uid)[0]:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    @staticmethod
    def kill_all(uid: int | None) -> None:
        """SIGKILL every process of ``uid`` (no-op without a private uid)."""
        if uid is None:
            return
        if uid < UID_BASE:  # never let a bug turn this into root's kill(-1)
            raise ValueError(f"refusing to kill(-1) as uid {uid}")
        kill, setpriv = backends.which("kill"), backends.which("setpriv")
        if kill is None:
            return
        # kill(-1) hits every process the caller may signal, i.e. all of this
        # uid's, and is atomic with respect to fork.  setpriv (not Popen's
        # user=) keeps subprocess on its cheap vfork path.
        if setpriv:
            argv = [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                    kill, "-9", "-1"]
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        else:
            subprocess.run([kill, "-9", "-1"], user=uid, group=uid, extra_groups=[],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def remove_leftovers(uid: int | None) -> int:
    """``none`` backend, after a run: delete what ``uid`` left in the host's
    world-writable dirs (top-level entries it owns) and its SysV shared-memory
    segments (refused by seccomp; this covers the no-seccomp modes).
    Returns how many things were removed."""
    if uid is None or uid < UID_BASE:
        return 0
    import shutil
    removed = 0
    for e in owned_entries(lambda owner: owner == uid):
        try:
            if e.is_dir(follow_symlinks=False):
                shutil.rmtree(e.path, ignore_errors=True)
            else:
                os.unlink(e.path)
            removed += 1
        except OSError:
            pass
    return removed + _remove_shm_of(uid)


def _remove_shm_of(uid: int) -> int:
    try:
        with open("/proc/sysvipc/shm") as f:
            rows = [line.split() for line in f.readlines()[1:]]
    except OSError:
        return 0
    ids = [int(r[1]) for r in rows if len(r) > 7 and r[7] == str(uid)]
    if ids:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        for shmid in ids:
            libc.shmctl(shmid, 0, None)  # IPC_RMID
    return len(ids)


def _processes_of(uid: int) -> tuple[int, int]:
    """(live, zombie) processes whose real uid is ``uid``.

    Reads /proc/PID/status: /proc/PID itself is owned by root once a process
    has switched uid (it is no longer "dumpable").
    """
    live = zombies = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", "rb") as f:
                status = f.read()
        except OSError:
            continue
        start = status.find(b"\nUid:")
        if start >= 0 and int(status[start + 5:].split(None, 1)[0]) == uid:
            if b"\nState:\tZ" in status:
                zombies += 1
            else:
                live += 1
    return live, zombies
