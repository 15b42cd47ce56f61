"""How raw outcomes map to statuses, and the seccomp program: no processes needed."""

from __future__ import annotations

import pytest

from sandbox import _seccomp, limits
from sandbox._process import Raw
from sandbox._status import classify


def raw(*records: bytes, **kw) -> Raw:
    return Raw(records=list(records), started=b"S" in records, exited=True, **kw)


@pytest.mark.parametrize("outcome, expected", [
    (raw(b"S", b"C ok", b"T 0 ok", b"T 1 ok", b"D", returncode=0), ("ok", 2)),
    (raw(b"S", b"C ok", b"T 0 ok", b"T 1 error x", b"D", returncode=0), ("failed", 1)),
    (raw(b"S", b"C error SyntaxError", returncode=0), ("error", 0)),
    (raw(b"S", b"C memory MemoryError", returncode=0), ("memory", 0)),
    (raw(b"S", b"C limit OSError", returncode=0), ("killed", 0)),
    (raw(b"S", b"C ok", b"T 0 memory m", b"T 1 ok", b"D", returncode=0), ("memory", 1)),
    (raw(b"S", b"C ok", b"T 0 ok", returncode=-11), ("killed", 1)),
    (raw(b"S", b"C ok", returncode=128 + 11), ("killed", 0)),  # via bwrap / timeout
    (raw(b"S", b"C ok", returncode=-24), ("timeout", 0)),  # SIGXCPU: CPU limit
    (raw(b"S", b"C ok", b"T 0 ok", timed_out=True), ("timeout", 1)),
    (raw(b"S", b"C ok", b"T 0 ok", output_exceeded=True), ("output_limit", 1)),
    (raw(b"S", b"C dead", b"P 0 0", returncode=0), ("error", 0)),  # os._exit in the code
    (raw(b"S", b"C dead", b"P 0 11", returncode=0), ("killed", 0)),  # SIGSEGV in the code
    # os._exit / SIGSEGV / CPU limit of the solution during test 1
    (raw(b"S", b"C ok", b"T 0 ok", b"T 1 dead", b"D", b"P 0 0", returncode=0), ("failed", 1)),
    (raw(b"S", b"C ok", b"T 0 ok", b"T 1 dead", b"D", b"P 0 11", returncode=0), ("killed", 1)),
    (raw(b"S", b"C ok", b"T 0 dead", b"T 1 dead", b"D", b"P 0 24", returncode=0), ("timeout", 0)),
    # the tester itself hit the CPU limit (a test that loops)
    (raw(b"S", b"C ok", b"T 0 ok", b"P 24 9", returncode=0), ("timeout", 1)),
    (raw(b"S", b"C ok", b"T 0 ok", b"T 1 nocall x", b"D", b"P 0 9", returncode=0), ("failed", 1)),
    (raw(b"S", returncode=0), ("sandbox_error", 0)),  # the tester reported nothing
    (raw(b"X PermissionError", returncode=1), ("sandbox_error", 0)),
    (raw(returncode=1), ("sandbox_error", 0)),  # the launcher failed before set-up
    (Raw(spawn_error="no bwrap"), ("sandbox_error", 0)),
])
def test_classify(outcome, expected):
    status, passed, _ = classify(outcome, 2)
    assert (status, passed) == expected


def test_forged_or_duplicate_test_lines_do_not_inflate_passes():
    out = raw(b"S", b"C ok", b"T 0 ok", b"T 0 ok", b"T 7 ok", b"T 1 ok", b"D", returncode=0)
    assert classify(out, 2)[:2] == ("ok", 2)
    assert classify(raw(b"S", b"C ok", b"T 0 ok", b"T 0 ok", b"D", returncode=0), 2)[:2] == ("failed", 1)


def test_wait_statuses_the_candidate_writes_elsewhere_are_ignored():
    # A "P" line is only valid as two integers; garbage is not a wait status.
    out = raw(b"S", b"C ok", b"T 0 ok", b"T 1 dead", b"D", b"P x y", returncode=0)
    assert classify(out, 2)[:2] == ("failed", 1)


def test_seccomp_program_shape():
    prog = _seccomp.build()
    if prog is None:
        pytest.skip("seccomp filter not built for this architecture")
    assert len(prog) % 8 == 0 and len(prog) // 8 < 96  # a short linear scan per syscall
    denied = _seccomp.denied_syscalls()
    for name in ("socket", "clone3", "unshare(CLONE_NEWUSER)", "clone(CLONE_NEWUSER)",
                 "shmget", "memfd_create", "fsopen", "bind", "connect", "setsockopt"):
        assert name in denied


def test_rlimits_soft_equals_hard_except_cpu():
    for name, soft, hard in limits.rlimits(2.0, 256):
        assert soft == hard or name == "RLIMIT_CPU"
    assert dict((n, s) for n, s, _ in limits.rlimits(2.0, 256))["RLIMIT_AS"] == 256 << 20
