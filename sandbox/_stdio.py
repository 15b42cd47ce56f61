"""stdin/stdout tests (APPS, CodeContests, TACO, LiveCodeBench, ...): the host
side.  Each case is one sandboxed run of the program with the case's input
as its stdin; its stdout is compared *here*, outside the sandbox, so nothing
the program does can change how it is judged.

A case is ``{"input": str, "output": str}`` (lists of lines are joined);
``{"inputs": [...], "outputs": [...]}`` (the APPS ``input_output`` column)
and ``{"input": [...], "output": [...]}`` (CodeContests ``public_tests``) are
accepted too.

>>> to_cases([{"input": "1 2\\n", "output": "3\\n"}])
[('1 2\\n', '3\\n')]
>>> to_cases({"inputs": ["5"], "outputs": [["5", "x"]]})
[('5', '5\\nx')]
>>> to_cases({"input": ["1\\n", "2\\n"], "output": ["1\\n", "4\\n"]})
[('1\\n', '1\\n'), ('2\\n', '4\\n')]
>>> outputs_match("3  \\n\\n", "3\\n")
True
>>> outputs_match("0.3333333", "0.33333333", float_tol=1e-6)
True
>>> outputs_match("0.3333", "0.33333333", float_tol=1e-6)
False
"""

from __future__ import annotations

import math
import re

from ._status import Result


def _text(v, what: str) -> str:
    if isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v):
        return "\n".join(v)
    if not isinstance(v, str):
        raise TypeError(f"a stdin/stdout test's {what} must be a str (or a list of str), "
                        f"not {type(v).__name__}")
    return v


def is_stdio(tests) -> bool:
    """Does ``tests`` describe stdin/stdout cases (rather than Python snippets)?"""
    if isinstance(tests, dict):
        return "inputs" in tests or "input" in tests
    return (isinstance(tests, (list, tuple)) and len(tests) > 0
            and all(isinstance(t, dict) for t in tests))


def to_cases(tests) -> list[tuple[str, str]]:
    """(input, expected output) pairs; TypeError/ValueError with a one-line reason."""
    columnar = (isinstance(tests, dict) and isinstance(tests.get("input"), list)
                and isinstance(tests.get("output"), list))  # CodeContests public_tests
    if isinstance(tests, dict) and ("inputs" in tests or columnar):
        ins, outs = (tests.get("inputs"), tests.get("outputs")) if not columnar else (
            tests["input"], tests["output"])
        if not isinstance(ins, list) or not isinstance(outs, list) or len(ins) != len(outs):
            raise ValueError("'inputs' and 'outputs' must be lists of the same length")
        tests = [{"input": i, "output": o} for i, o in zip(ins, outs)]
    elif isinstance(tests, dict):
        tests = [tests]
    out = []
    for t in tests:
        if not isinstance(t, dict) or "input" not in t or "output" not in t:
            raise ValueError("each stdin/stdout test needs an 'input' and an 'output'")
        out.append((_text(t["input"], "input"), _text(t["output"], "output")))
    return out


def _lines(text: str) -> list[list[str]]:
    rows = [line.split() for line in text.replace("\r\n", "\n").split("\n")]
    while rows and not rows[-1]:
        rows.pop()
    return rows


_REAL = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+(\.\d*)?[eE][+-]?\d+)")


def _same_token(got: str, expected: str, tol: float | None) -> bool:
    """Equal tokens, or with ``tol`` two numbers within it where the expected
    token is written as a real number (a decimal point or an exponent): an
    integer answer must match exactly, so an off-by-one never passes.

    >>> _same_token("4", "3", 1.0), _same_token("3.0000001", "3.0", 1e-6), _same_token("3", "3.0", 1e-6)
    (False, True, True)
    """
    if got == expected:
        return True
    if tol is None or not _REAL.fullmatch(expected):
        return False
    try:
        x, y = float(got), float(expected)
    except ValueError:
        return False
    if not (math.isfinite(x) and math.isfinite(y)):
        return False
    return math.isclose(x, y, rel_tol=tol, abs_tol=tol)


def outputs_match(got: str, expected: str, float_tol: float | None = None) -> bool:
    """Whitespace-normalised comparison: line by line, each line's runs of
    whitespace collapsed, trailing blank lines ignored; with ``float_tol``,
    tokens written as real numbers match within that absolute or relative
    tolerance (integers exactly)."""
    a, b = _lines(got), _lines(expected)
    if len(a) != len(b):
        return False
    for ra, rb in zip(a, b):
        if len(ra) != len(rb):
            return False
        if not all(_same_token(x, y, float_tol) for x, y in zip(ra, rb)):
            return False
    return True


def aggregate(results: list[Result], cases: list[tuple[str, str]],
              float_tol: float | None) -> Result:
    """One Result for a program over all its cases: passed = cases whose run
    was clean and whose output matched; status of the first failing case
    ("failed" for a wrong answer); its stdout/stderr (else the first case's)."""
    passed, first_bad, first_status = 0, None, "ok"
    for i, (r, (_, expected)) in enumerate(zip(results, cases)):
        if r.status == "ok" and outputs_match(r.stdout, expected, float_tol):
            passed += 1
        elif first_bad is None:
            first_bad = i
            first_status = "failed" if r.status == "ok" else r.status
    shown = results[first_bad if first_bad is not None else 0]
    note = ""
    if first_bad is not None:
        what = "wrong answer" if first_status == "failed" else first_status
        note = f"[sandbox] case {first_bad}: {what}\n"
    return Result(first_status, passed, len(cases), shown.stdout, shown.stderr + note,
                  sum(r.duration_s for r in results))
