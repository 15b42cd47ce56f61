"""Result, and how a run's raw outcome becomes a status."""

from __future__ import annotations

import os
from dataclasses import dataclass

from . import limits
from ._process import Raw

STATUSES = ("ok", "failed", "error", "timeout", "memory", "output_limit", "killed",
            "sandbox_error")
_SIGXCPU = 24


@dataclass(frozen=True)
class Result:
    """Outcome of one run.  ``passed``/``total`` count the test snippets."""

    status: str
    passed: int
    total: int
    stdout: str
    stderr: str
    duration_s: float


def _signal_of(raw: Raw, done: bool) -> int:
    rc = raw.returncode or 0
    if rc < 0:
        return -rc
    # bwrap and `timeout` report a child killed by signal N as exit 128+N.
    # The harness itself only ever exits 0 or 1.
    return rc - 128 if rc > 128 and not done else 0


def _wait_signal(status: int | None) -> int:
    """The signal that ended a process, from its raw wait status (0: none)."""
    if status is None or not os.WIFSIGNALED(status):
        return 0
    return os.WTERMSIG(status)


def _parse(records: list[bytes]):
    """(code kind, test kinds, done, set-up error, (T, U) wait statuses)."""
    code, tests, done, setup, waits = None, [], False, None, (None, None)
    for line in records:
        parts = line.split(b" ", 3)
        if parts[0] == b"X" and setup is None:
            setup = line[2:]
        elif parts[0] == b"C" and len(parts) > 1 and code is None:
            code = parts[1]
        elif parts[0] == b"T" and len(parts) > 2 and parts[1] == str(len(tests)).encode():
            tests.append(parts[2])
        elif parts[0] == b"D":
            done = True
        elif parts[0] == b"P" and len(parts) == 3 and all(p.isdigit() for p in parts[1:]):
            waits = (int(parts[1]), int(parts[2]))
    return code, tests, done, setup, waits


def _by_signal(sig: int, who: str) -> tuple[str, str]:
    status = "timeout" if sig == _SIGXCPU else "killed"
    return status, f"{who} killed by signal {sig}" + (" (CPU limit)" if sig == _SIGXCPU else "")


def _before_results(raw: Raw) -> tuple[str, str] | None:
    """Outcomes that do not depend on what the processes reported."""
    if raw.spawn_error:
        return "sandbox_error", raw.spawn_error
    if raw.output_exceeded:
        return "output_limit", f"output exceeded {limits.MAX_OUTPUT_BYTES} bytes"
    return None


def classify(raw: Raw, total: int) -> tuple[str, int, str]:
    """(status, passed, note for stderr) of a tests-mode run."""
    code, tests, done, setup, (t_wait, u_wait) = _parse(raw.records)
    passed = min(sum(k == b"ok" for k in tests), total)
    early = _before_results(raw)
    if early:
        return early[0], passed if early[0] == "output_limit" else 0, early[1]
    if setup is not None:
        return "sandbox_error", 0, "set-up failed: " + setup.decode("ascii", "replace")
    if not raw.started:
        why = "did not start in time" if raw.timed_out else f"exited with {raw.returncode}"
        return "sandbox_error", 0, "sandbox " + why
    if raw.timed_out:
        return "timeout", passed, "wall-clock timeout"
    for sig, who in ((_signal_of(raw, done), "the run"), (_wait_signal(t_wait), "the tester")):
        if sig:
            status, note = _by_signal(sig, who)
            return status, passed, note
    u_sig = _wait_signal(u_wait)
    if code is None:
        return "sandbox_error", 0, "the tester reported nothing"
    if code == b"dead":  # the solution died while its code ran
        if u_sig:
            status, note = _by_signal(u_sig, "the solution")
            return status, 0, note
        return "error", 0, "the solution exited before the tests ran"
    if code != b"ok":
        return {b"memory": "memory", b"limit": "killed"}.get(code, "error"), 0, ""
    if passed == total and done:
        return "ok", passed, ""
    if b"dead" in tests:
        if u_sig:
            status, note = _by_signal(u_sig, "the solution")
            return status, passed, note
        return "failed", passed, "the solution exited during the tests"
    for kind, status in ((b"memory", "memory"), (b"limit", "killed")):
        if kind in tests:
            return status, passed, ""
    if b"nocall" in tests:
        return "failed", passed, "some tests never called the solution (tests that cannot fail)"
    return "failed", passed, "" if done else "the tester stopped during the tests"


_PROGRAM_EXITS = {1: "error", 3: "memory", 4: "killed"}


def classify_program(raw: Raw) -> tuple[str, str]:
    """(status, note) of one stdio-mode run: "ok" means it ran and exited 0
    (the host compares its output); the exit code comes from the process
    itself, never from a line it could write."""
    early = _before_results(raw)
    if early:
        return early
    code, tests, done, setup, _ = _parse(raw.records)
    if setup is not None:
        return "sandbox_error", "set-up failed: " + setup.decode("ascii", "replace")
    if not raw.started:
        why = "did not start in time" if raw.timed_out else f"exited with {raw.returncode}"
        return "sandbox_error", "sandbox " + why
    if raw.timed_out:
        return "timeout", "wall-clock timeout"
    sig = _signal_of(raw, False)
    if sig:
        return _by_signal(sig, "the program")
    rc = raw.returncode or 0
    if rc == 0:
        return "ok", ""
    return _PROGRAM_EXITS.get(rc, "error"), f"exit status {rc}"
