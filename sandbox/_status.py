"""Result, and how a run's raw outcome becomes a status."""

from __future__ import annotations

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


def _parse(records: list[bytes]) -> tuple[bytes | None, list[bytes], bool, bytes | None]:
    """(code kind, test kinds, done, set-up error) from the harness lines."""
    code, tests, done, setup = None, [], False, None
    for line in records:
        parts = line.split(b" ", 3)
        if parts[0] == b"X":
            setup = line[2:]
        elif parts[0] == b"C" and len(parts) > 1 and code is None:
            code = parts[1]
        elif parts[0] == b"T" and len(parts) > 2 and parts[1] == str(len(tests)).encode():
            tests.append(parts[2])
        elif parts[0] == b"D":
            done = True
    return code, tests, done, setup


def classify(raw: Raw, total: int) -> tuple[str, int, str]:
    """(status, passed, note for stderr) from what happened."""
    code, tests, done, setup = _parse(raw.records)
    passed = min(sum(k == b"ok" for k in tests), total)
    if raw.spawn_error:
        return "sandbox_error", 0, raw.spawn_error
    if raw.output_exceeded:
        return "output_limit", passed, f"output exceeded {limits.MAX_OUTPUT_BYTES} bytes"
    if setup is not None:
        return "sandbox_error", 0, "set-up failed: " + setup.decode("ascii", "replace")
    if not raw.started:
        why = "did not start in time" if raw.timed_out else f"exited with {raw.returncode}"
        return "sandbox_error", 0, "sandbox " + why
    if raw.timed_out:
        return "timeout", passed, "wall-clock timeout"
    sig = _signal_of(raw, done)
    if sig:
        status = "timeout" if sig == _SIGXCPU else "killed"
        return status, passed, f"killed by signal {sig}" + (" (CPU limit)" if sig == _SIGXCPU else "")
    if code is None:  # exited (os._exit) before the code finished
        return "error", 0, f"exited with {raw.returncode} before the tests ran"
    if code != b"ok":
        return {b"memory": "memory", b"limit": "killed"}.get(code, "error"), 0, ""
    if passed == total and done:
        return "ok", passed, ""
    for kind, status in ((b"memory", "memory"), (b"limit", "killed")):
        if kind in tests:
            return status, passed, ""
    return "failed", passed, "" if done else "exited during the tests"


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "replace")
