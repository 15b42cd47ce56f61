"""A persistent pool of symbolic-math worker processes with kill-on-timeout.

Why processes and not math-verify's own timeout: math-verify bounds its work
with ``signal.alarm``, which only works in the main thread of the main
interpreter -- a trainer that scores rewards from a thread pool or a data-loader
process gets either an exception or no timeout at all, and one ``9^9^9^9`` hangs
training forever.  A C-level big-integer power does not even let a Python signal
handler run.  A separate process can always be killed.

Workers are started with :mod:`subprocess` (not :mod:`multiprocessing`), so the
pool also works inside daemonic multiprocessing workers, and each process that
uses it gets its own pool (checked by pid, so a fork never shares pipes).  A
killed worker is replaced at once, in the background of the next request.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import threading
import time
import weakref

_WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_mathworker.py")
# Run the worker file without putting its folder on sys.path (the folder holds a
# module named ``math``) and without the caller's working directory.
_BOOT = ("import runpy, sys; sys.path[:] = [p for p in sys.path if p not in ('', '.')]; "
         "runpy.run_path(sys.argv[1], run_name='__main__')")
STARTUP_TIMEOUT_S = 120.0  # importing sympy on a busy 2-core box can take a while


class WorkerTimeout(Exception):
    pass


class WorkerDied(Exception):
    pass


class _Worker:
    def __init__(self):
        env = dict(os.environ)
        env.setdefault("OMP_NUM_THREADS", "1")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _BOOT, _WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, bufsize=0, close_fds=True, env=env)
        self.ready = False
        self._buf = b""
        self.owner = os.getpid()
        _ALL.add(self)

    def _readline(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkerTimeout()
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                raise WorkerTimeout()
            chunk = os.read(fd, 65536)
            if not chunk:
                raise WorkerDied(f"exit code {self.proc.poll()}")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode("utf-8", "replace")

    def is_ready(self) -> bool:
        """Whether start-up is done; never blocks."""
        if not self.ready:
            try:
                fd = self.proc.stdout.fileno()
                r, _, _ = select.select([fd], [], [], 0)
                if r and b"\n" not in self._buf:
                    self._buf += os.read(fd, 65536)  # b"" (it died): ask() reports it
            except (OSError, ValueError):
                return False
            if self._buf.startswith(b"ready\n"):
                self._buf = self._buf[6:]
                self.ready = True
        return self.ready

    def ask(self, pred: str, gold: str, timeout: float) -> bool:
        if not self.ready:
            try:
                line = self._readline(STARTUP_TIMEOUT_S)
            except WorkerTimeout:
                raise RuntimeError(f"math worker did not start within {STARTUP_TIMEOUT_S:.0f}s")
            except WorkerDied as e:
                raise RuntimeError(f"math worker failed to start ({e})") from None
            if line != "ready":
                raise RuntimeError(f"math worker failed to start: {line[2:] if line.startswith('E ') else line}")
            self.ready = True
        try:
            msg = json.dumps([pred, gold, max(1, int(timeout / 2))]) + "\n"
            self.proc.stdin.write(msg.encode())
        except (BrokenPipeError, OSError) as e:
            raise WorkerDied(str(e)) from None
        line = self._readline(timeout)
        if line.startswith("E "):
            raise WorkerDied(line[2:])
        return line == "1"

    def kill(self):
        _ALL.discard(self)
        try:
            self.proc.kill()
            self.proc.wait(timeout=5)
        except Exception:  # noqa: BLE001 -- already gone
            pass
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except Exception:  # noqa: BLE001
                pass


_ALL: "weakref.WeakSet[_Worker]" = weakref.WeakSet()


@atexit.register
def _kill_all():
    for w in list(_ALL):
        if w.owner == os.getpid():  # a forked child must not kill its parent's workers
            w.kill()


class MathPool:
    """Up to ``size`` worker processes shared by all threads of this process."""

    def __init__(self, size: int):
        self.size = max(1, int(size))
        self.pid = os.getpid()
        self._idle: list[_Worker] = []
        self._count = 0
        self._cv = threading.Condition()
        self.stats = {"calls": 0, "timeouts": 0, "crashes": 0}

    def _acquire(self) -> _Worker:
        with self._cv:
            while True:
                if self._idle:
                    # a started one first: a replacement may still be importing sympy
                    ready = [i for i, w in enumerate(self._idle) if w.is_ready()]
                    return self._idle.pop(ready[-1] if ready else -1)
                if self._count < self.size:
                    self._count += 1
                    break
                self._cv.wait()
        try:
            return _Worker()
        except BaseException:
            with self._cv:
                self._count -= 1
                self._cv.notify()
            raise

    def _release(self, w: _Worker | None, replace: bool = False):
        if replace:
            w.kill()
            try:
                w = _Worker()  # start the replacement now: its imports overlap other work
            except OSError:
                w = None
        with self._cv:
            if w is None:
                self._count -= 1
            else:
                self._idle.append(w)
            self._cv.notify()

    def verify(self, pred: str, gold: str, timeout: float) -> tuple[bool, str]:
        """(equal, status) with status "ok", "timeout" or "crash"."""
        w = self._acquire()
        self.stats["calls"] += 1
        try:
            ok = w.ask(pred, gold, timeout)
        except WorkerTimeout:
            self.stats["timeouts"] += 1
            self._release(w, replace=True)
            return False, "timeout"
        except WorkerDied:
            self.stats["crashes"] += 1
            self._release(w, replace=True)
            return False, "crash"
        except BaseException:
            self._release(w, replace=True)
            raise
        self._release(w)
        return ok, "ok"

    def close(self):
        with self._cv:
            idle, self._idle = self._idle, []
            self._count -= len(idle)
        for w in idle:
            w.kill()


_POOL: MathPool | None = None
_POOL_LOCK = threading.Lock()


def default_size() -> int:
    env = os.environ.get("GRPO_MATH_WORKERS")
    if env:
        return max(1, int(env))
    return max(1, min(2, os.cpu_count() or 1))


def get_pool() -> MathPool:
    """This process's pool (a new one after a fork)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL.pid != os.getpid():
            _POOL = MathPool(default_size())
        return _POOL
