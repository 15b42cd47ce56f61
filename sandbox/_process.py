"""Pump the pipes of one sandboxed run until it ends or must die.

Only mechanics live here (no policy about statuses): a non-blocking
``selectors`` loop that feeds the payload on stdin, collects stdout/stderr up
to a byte cap, collects the harness's result lines from a separate pipe,
notices the exit of the run's main process through an fd (a pidfd, or the
zygote's control socket), and enforces the wall clock.  ``spawn_run`` starts
a fresh sandbox process per run; the zygote variant lives in ``_pool.py``.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Callable

_CHUNK = 65536
_POLL_S = 0.02  # only used where pidfd_open is missing (Linux < 5.3)
# After the main process exits, read what is left in the pipes for this long
# (a grandchild that escaped the process group may still hold them open).
_DRAIN_S = 0.2


@dataclass
class Raw:
    """What happened, before it is turned into a Result status."""

    returncode: int | None = None
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    records: list[bytes] = field(default_factory=list)
    started: bool = False  # the harness wrote "S": set-up done, user code runs
    exited: bool = False
    timed_out: bool = False
    output_exceeded: bool = False
    spawn_error: str | None = None
    duration_s: float = 0.0
    leftover: str | None = None  # what outlived the run (checked after each one), e.g. "processes:+1"


class Pump:
    """Owns (and closes) the host ends of the four pipes."""

    def __init__(self, fds: tuple[int, int, int, int], exit_fd: int | None,
                 exit_check: Callable[[], bool], payload: bytes, *, timeout_s: float,
                 startup_s: float, max_output: int):
        self.payload, self.sent = memoryview(payload), 0
        self.exit_check, self.exit_fd = exit_check, exit_fd
        self.timeout_s, self.max_output = timeout_s, max_output
        self.raw, self.pending, self.res_bytes = Raw(), b"", 0
        self.deadline = time.monotonic() + startup_s
        self.sel = selectors.DefaultSelector()
        self.fds = list(fds)  # entries become -1 once closed: never close twice
        for fd, tag in zip(fds, ("in", "out", "err", "res")):
            os.set_blocking(fd, False)
            events = selectors.EVENT_WRITE if tag == "in" else selectors.EVENT_READ
            self.sel.register(fd, events, tag)
        if exit_fd is not None:
            self.sel.register(exit_fd, selectors.EVENT_READ, "exit")

    def loop(self) -> Raw:
        try:
            self._loop()
        finally:
            self.sel.close()
            for fd in self.fds:
                if fd >= 0:
                    os.close(fd)
        return self.raw

    def _loop(self) -> None:
        while True:
            now = time.monotonic()
            if self.exit_fd is None and not self.raw.exited and self.exit_check():
                self._on_exit(now)
            watching_exit = self.exit_fd is not None and not self.raw.exited
            if self.raw.exited and len(self.sel.get_map()) == watching_exit:
                return  # exited, and every pipe is at EOF
            if now >= self.deadline:
                self.raw.timed_out = not self.raw.exited
                return
            wait = self.deadline - now
            if self.exit_fd is None:
                wait = min(wait, _POLL_S)
            for key, _ in self.sel.select(wait):
                if not self._handle(key.fd, key.data):
                    return

    def _on_exit(self, now: float) -> None:
        self.raw.exited = True
        self.deadline = min(self.deadline, now + _DRAIN_S)

    def _handle(self, fd: int, tag: str) -> bool:
        if tag == "exit":
            if self.exit_check():
                self.sel.unregister(fd)
                self._on_exit(time.monotonic())
            return True
        if tag == "in":
            self._feed(fd)
            return True
        try:
            data = os.read(fd, _CHUNK)
        except BlockingIOError:
            return True
        if not data:
            self.sel.unregister(fd)
        elif tag == "res":
            self.res_bytes += len(data)
            if self.res_bytes > self.max_output:  # only forged lines get this long
                self.raw.output_exceeded = True
                return False
            self._records(data)
        else:
            room = self.max_output - len(self.raw.stdout) - len(self.raw.stderr)
            (self.raw.stdout if tag == "out" else self.raw.stderr).extend(data[:max(room, 0)])
            if len(data) > room:
                self.raw.output_exceeded = True
                return False
        return True

    def _feed(self, fd: int) -> None:
        try:
            self.sent += os.write(fd, self.payload[self.sent:self.sent + _CHUNK])
        except (BlockingIOError, InterruptedError):
            return
        except BrokenPipeError:  # the child died before reading it all
            self.sent = len(self.payload)
        if self.sent >= len(self.payload):
            self.sel.unregister(fd)
            os.close(fd)  # EOF tells the harness the payload is complete
            self.fds[0] = -1

    def _records(self, data: bytes) -> None:
        lines = (self.pending + data).split(b"\n")
        self.pending = lines.pop()[:4096]  # a partial line; bounded
        for line in lines:
            if line == b"S" and not self.raw.started:
                self.raw.started = True
                # The wall clock for user code starts now, not at spawn:
                # interpreter start-up is slow on a loaded machine.
                self.deadline = time.monotonic() + self.timeout_s
            self.raw.records.append(line)


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _has_exited(pid: int) -> bool:
    # WNOWAIT: look without reaping, so the pid (and its process group id)
    # cannot be recycled before we killpg it.
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def spawn_run(argv: list[str], payload: bytes, *, env: dict, cwd: str | None,
              pass_fds: tuple[int, ...], result_r: int,
              pre_kill: Callable[[], None] | None = None, **limits) -> Raw:
    """Start a fresh sandbox process for one run; always leaves nothing running.

    ``pre_kill`` kills the run's own processes before the launcher's process
    group, so that the launcher, not the host's init, reaps the harness.
    """
    start = time.monotonic()
    (in_r, in_w), (out_r, out_w), (err_r, err_w) = os.pipe(), os.pipe(), os.pipe()
    try:
        # start_new_session: the child leads its own process group, which we
        # kill as a whole.  No preexec_fn, so subprocess can use vfork (cheap
        # even from a trainer process with a huge address space).
        proc = subprocess.Popen(argv, stdin=in_r, stdout=out_w, stderr=err_w,
                                pass_fds=pass_fds, env=env, cwd=cwd, start_new_session=True)
    except OSError as exc:
        for fd in (in_w, out_r, err_r, result_r):
            os.close(fd)
        return Raw(spawn_error=f"cannot start {argv[0]}: {exc}")
    finally:
        for fd in (in_r, out_w, err_w, *pass_fds):  # the child holds its own copies
            os.close(fd)
    pidfd, raw = _pidfd(proc.pid), None
    try:
        raw = Pump((in_w, out_r, err_r, result_r), pidfd, lambda: _has_exited(proc.pid),
                   payload, **limits).loop()
    finally:
        if pre_kill is not None and not (raw and raw.exited):
            pre_kill()
            deadline = time.monotonic() + 0.5
            while not _has_exited(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.005)
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # before reaping: pgid still ours
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()
        if pidfd is not None:
            os.close(pidfd)
    raw.returncode = proc.returncode
    raw.duration_s = time.monotonic() - start
    return raw
