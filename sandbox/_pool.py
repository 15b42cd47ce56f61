"""Host side of the pre-forked zygotes (child side and rationale: _zygote.py).

A zygote serves one run at a time; ``ZygotePool`` keeps idle ones for reuse
and starts more when runs overlap.  A zygote that misbehaves (no answer to a
kill, died, protocol error) is thrown away, never reused.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from typing import Callable

from ._process import Pump, Raw

_KILL_WAIT_S = 5.0  # a killed run must be reported dead within this


class ZygoteError(RuntimeError):
    pass


class Zygote:
    def __init__(self, argv: list[str], env: dict, startup_s: float,
                 extra_fds: tuple[int, ...] = (), args: tuple[str, ...] = ()):
        host, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.log = tempfile.TemporaryFile()  # its stderr, read only if it fails
        self.dead, self.returncode, self.leftover = False, None, None
        try:
            self.proc = subprocess.Popen(
                argv + ["--zygote", str(child.fileno()), *args], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=self.log, pass_fds=(child.fileno(), *extra_fds),
                env=env, start_new_session=True)
        except OSError:
            host.close()
            self.log.close()
            raise
        finally:
            child.close()
        self.sock = host
        host.settimeout(startup_s)
        try:
            ready = host.recv(64) == b"READY"
        except OSError:
            ready = False
        if not ready:
            self.close()
            raise ZygoteError("zygote did not start: " + self.error_text())

    def error_text(self) -> str:
        try:
            self.log.seek(0)
            return self.log.read()[-2000:].decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""

    def start(self, fds: tuple[int, int, int, int]) -> None:
        self.returncode = None
        socket.send_fds(self.sock, [b"R"], list(fds))

    def _parse(self, msg: bytes) -> bool:
        parts = msg.split()
        if len(parts) != 3 or parts[0] != b"E" or not parts[1].isdigit():  # EOF or garbage: unusable
            self.dead = True
            return True
        self.returncode = os.waitstatus_to_exitcode(int(parts[1]))
        if parts[2] != b"-":  # something of the run outlived it: never reuse this zygote
            self.leftover, self.dead = parts[2].decode("ascii", "replace")[:200], True
        return True

    def check_exit(self) -> bool:
        """Non-blocking: has the current run's pid 1 exited?"""
        try:
            msg = self.sock.recv(64, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            msg = b""
        return self._parse(msg)

    def kill_and_wait(self) -> None:
        try:
            self.sock.send(b"K")
            self.sock.settimeout(_KILL_WAIT_S)
            self._parse(self.sock.recv(64))
        except OSError:
            self.dead = True

    def close(self) -> None:
        self.sock.close()  # EOF: the zygote kills its current run and exits
        if self.proc.returncode is None:  # once reaped, its pgid may be recycled
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.proc.wait()
        self.log.close()


def zygote_run(z: Zygote, payload: bytes, **limits) -> Raw:
    start = time.monotonic()
    (in_r, in_w), (out_r, out_w), (err_r, err_w), (res_r, res_w) = (
        os.pipe(), os.pipe(), os.pipe(), os.pipe())
    try:
        z.start((in_r, out_w, err_w, res_w))
    except OSError as exc:
        z.dead = True
        for fd in (in_w, out_r, err_r, res_r):
            os.close(fd)
        return Raw(spawn_error=f"zygote unusable: {exc}")
    finally:
        for fd in (in_r, out_w, err_w, res_w):  # the zygote has its own copies
            os.close(fd)
    raw = Pump((in_w, out_r, err_r, res_r), z.sock.fileno(), z.check_exit, payload,
               **limits).loop()
    if not raw.exited:
        z.kill_and_wait()
    raw.leftover = z.leftover
    if z.dead and z.leftover is None:
        try:
            z.proc.wait(timeout=1.0)  # let it finish writing its traceback
        except subprocess.TimeoutExpired:
            pass
        raw.spawn_error = f"zygote died ({z.proc.returncode}): " + z.error_text()
    raw.returncode = z.returncode
    raw.duration_s = time.monotonic() - start
    return raw


class ZygotePool:
    def __init__(self, make: Callable[[], Zygote], max_size: int):
        self._make, self._max = make, max_size
        self._lock = threading.Lock()
        self._idle: list[Zygote] = []
        self._pid = os.getpid()

    def run(self, payload: bytes, **limits) -> Raw:
        z = self._acquire()
        if isinstance(z, str):
            return Raw(spawn_error=z)
        try:
            raw = zygote_run(z, payload, **limits)
        except BaseException:
            z.dead = True
            raise
        finally:
            self._release(z)
        return raw

    def _acquire(self) -> Zygote | str:
        while True:
            with self._lock:
                if self._pid != os.getpid():  # forked: those sockets are the parent's
                    self._pid, self._idle = os.getpid(), []
                z = self._idle.pop() if self._idle else None
            if z is None:
                break
            if z.proc.poll() is None:
                return z
            z.dead = True  # died while idle
            z.close()
        try:
            return self._make()
        except (OSError, ZygoteError) as exc:
            return f"cannot start zygote: {exc}"

    def _release(self, z: Zygote) -> None:
        with self._lock:
            if not z.dead and self._pid == os.getpid() and len(self._idle) < self._max:
                self._idle.append(z)
                return
        z.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
            if self._pid != os.getpid():  # a forked child: those are the parent's
                return
        for z in idle:
            z.close()
