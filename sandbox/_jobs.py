"""What one call to run() becomes: sandboxed executions ("jobs"), and back.

Python tests (a str or a list of str) are one job: the code runs in the
candidate process, the tests in the tester (see _harness.py).  stdin/stdout
tests are one job per case (its own time limit, its own fresh process) and
are judged here, by _stdio.aggregate.

>>> jobs, cases = plan_jobs("print(int(input()) * 2)", [{"input": "2", "output": "4"}])
>>> jobs[0].stdin, cases
(b'2', [('2', '4')])
>>> plan_jobs("x = 1", "assert x == 1")[0][0].tests
('assert x == 1',)
"""

from __future__ import annotations

from typing import NamedTuple

from . import _stdio, limits


class Job(NamedTuple):
    code: str
    tests: tuple[str, ...] = ()
    entry_point: str | None = None
    require_calls: bool = False
    stdin: bytes | None = None  # stdio mode when not None
    max_output: int = limits.MAX_OUTPUT_BYTES  # stdout + stderr bytes read


def check_args(code, language: str, timeout_s: float, memory_mb: int) -> None:
    if language != "python":
        raise ValueError(f"unsupported language {language!r}; only 'python' is implemented")
    if not isinstance(code, str):
        raise TypeError("code must be a str")
    if not timeout_s > 0:
        raise ValueError("timeout_s must be > 0")
    if memory_mb < limits.MIN_MEMORY_MB:
        raise ValueError(f"memory_mb must be >= {limits.MIN_MEMORY_MB}")


def plan_jobs(code: str, tests, entry_point: str | None = None,
         require_calls: bool = False) -> tuple[list[Job], list[tuple[str, str]] | None]:
    """(jobs, stdio cases or None); TypeError/ValueError for malformed tests."""
    if entry_point is not None and (not isinstance(entry_point, str)
                                    or not entry_point.isidentifier()):
        raise ValueError(f"entry_point must be an identifier, not {entry_point!r}")
    if _stdio.is_stdio(tests):
        cases = _stdio.to_cases(tests)
        # Room for the expected output (CodeContests has multi-MiB answers).
        # CRLF test files (Windows-made datasets): the program reads "\n" lines, as the judge meant.
        return [Job(code, stdin=inp.replace("\r\n", "\n").encode("utf-8", "surrogateescape"),
                    max_output=max(limits.MAX_OUTPUT_BYTES, 2 * len(out) + 4096))
                for inp, out in cases], cases
    if isinstance(tests, str):
        tests = [tests]
    elif isinstance(tests, (list, tuple)):
        tests = list(tests)
    else:
        raise TypeError("tests must be a str, a list of str, or stdin/stdout cases")
    if not all(isinstance(t, str) for t in tests):
        raise TypeError("tests must be a str or a list of str")
    return [Job(code, tuple(tests), entry_point, bool(require_calls))], None
