"""Dataset test columns -> what ``sandbox.run`` takes, one sample at a time.

Accepted (the first that is present wins):

* ``tests``: a list of Python snippets (``assert f(1) == 2``), one snippet as
  a str, stdin/stdout cases (``[{"input": ..., "output": ...}]``, the APPS
  ``{"inputs": [...], "outputs": [...]}`` or the CodeContests
  ``{"input": [...], "output": [...]}``), or any of these JSON-encoded or
  as a Python-repr string (which run as code would be a no-op that "passes");
* ``test`` + ``entry_point`` (HumanEval): ``check(<entry_point>)`` is
  appended when the test only defines ``check``;
* ``test_list`` (MBPP), with ``test_setup_code`` / ``test_imports`` run first;
* ``input_output`` (APPS, JSON): stdin/stdout cases, or ``fn_name`` calls.

A sample that has none, or a malformed one, raises ``ValueError`` with a
one-line reason; the caller scores it None (never aborting the batch).

>>> spec(tests="['assert f(1) == 2', 'assert f(2) == 4']")
(['assert f(1) == 2', 'assert f(2) == 4'], None)
>>> spec(test="def check(candidate):\\n    assert candidate(1) == 2\\n", entry_point="f")[0][0][-9:]
'check(f)\\n'
>>> spec(test_list=["assert f(1) == 2"], test_setup_code="import math")
(['import math\\nassert f(1) == 2'], None)
>>> spec(tests={"inputs": ["1\\n"], "outputs": ["2\\n"]})
([{'input': '1\\n', 'output': '2\\n'}], None)
>>> spec(tests=None)
Traceback (most recent call last):
ValueError: no tests: give 'tests', 'test' (+ 'entry_point'), 'test_list' or 'input_output'
"""

from __future__ import annotations

import ast
import json
import re

_CHECK_CALL = re.compile(r"^\s*check\s*\(", re.M)
_ENTRY = re.compile(r"[A-Za-z_]\w*(?:\(\))?(?:\.[A-Za-z_]\w*)?")  # f, Solution().twoSum
_MAX_TEXT = 50_000_000  # characters of one sample's tests


def _decode(value):
    """A JSON or Python-literal string -> the value it encodes; else unchanged."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text or text[0] not in "[{":
        return value
    if len(text) > _MAX_TEXT:
        raise ValueError(f"tests are over {_MAX_TEXT} characters")
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return value  # code that happens to start with "[" or "{"


def _stdio_cases(value):
    columnar = (isinstance(value, dict) and isinstance(value.get("input"), list)
                and isinstance(value.get("output"), list))  # CodeContests public_tests
    if columnar:
        value = {"inputs": value["input"], "outputs": value["output"]}
    if isinstance(value, dict) and "inputs" in value:
        ins, outs = value.get("inputs"), value.get("outputs")
        if not isinstance(ins, list) or not isinstance(outs, list) or len(ins) != len(outs):
            raise ValueError("'inputs' and 'outputs' must be lists of the same length")
        return [{"input": i, "output": o} for i, o in zip(ins, outs)]
    return value


def _call_target(name: str) -> str:
    """APPS call-based problems are LeetCode's: the function may be a method of
    ``class Solution`` (APPS's own harness calls ``Solution().<fn_name>``)."""
    return f"({name} if {name!r} in globals() or 'Solution' not in globals() else Solution().{name})"


def _fn_calls(value: dict) -> list[str]:
    """APPS call-based problems: ``fn_name`` with argument lists and results."""
    name, ins, outs = value["fn_name"], value.get("inputs"), value.get("outputs")
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError("fn_name must be an identifier")
    if not isinstance(ins, list) or not isinstance(outs, list) or len(ins) != len(outs):
        raise ValueError("'inputs' and 'outputs' must be lists of the same length")
    out = []
    for args, want in zip(ins, outs):
        args = args if isinstance(args, list) else [args]
        if isinstance(want, list) and len(want) == 1:
            want = want[0]  # APPS wraps each result in a list
        out.append(f"assert {_call_target(name)}(*{args!r}) == {want!r}")
    return out


def _python_tests(value) -> list:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"tests must be a non-empty list, not {type(value).__name__}")
    if all(isinstance(t, dict) for t in value):
        return list(value)  # stdin/stdout cases
    bad = [type(t).__name__ for t in value if not isinstance(t, str)]
    if bad:
        raise ValueError(f"each test must be a str (got {bad[0]})")
    return list(value)


def _humaneval(test, entry_point):
    if not isinstance(test, str) or not test.strip():
        raise ValueError("'test' must be a non-empty str")
    if entry_point is not None and (not isinstance(entry_point, str)
                                    or not _ENTRY.fullmatch(entry_point)):
        raise ValueError(f"entry_point must be an identifier (or LeetCode's Solution().method), "
                         f"not {entry_point!r}")
    if "def check(" in test and not _CHECK_CALL.search(test):
        if not entry_point:
            raise ValueError("'test' defines check() but never calls it and there is no "
                             "entry_point: it cannot fail")
        test = test.rstrip("\n") + f"\n\ncheck({entry_point})\n"
    return [test], entry_point


def spec(tests=None, test=None, entry_point=None, test_list=None, test_setup_code=None,
         test_imports=None, input_output=None) -> tuple[list, str | None]:
    """(tests for sandbox.run, entry point or None) for one sample."""
    if entry_point is not None and not isinstance(entry_point, str):
        raise ValueError(f"entry_point must be a str, not {type(entry_point).__name__}")
    if tests is not None and tests != "" and tests != []:
        value = _stdio_cases(_decode(tests))
        if isinstance(value, dict) and "fn_name" in value:
            return _fn_calls(value), value["fn_name"]
        if isinstance(value, dict):
            value = [value]
        return _python_tests(value), entry_point
    if test is not None and test != "":
        return _humaneval(test, entry_point)
    if test_list is not None and len(test_list) > 0:
        imports = _decode(test_imports) or []
        imports = [imports] if isinstance(imports, str) else list(imports)
        setup = "\n".join(s for s in (*imports, test_setup_code) if isinstance(s, str) and s.strip())
        tests = _python_tests(_decode(test_list))
        if setup and all(isinstance(t, str) for t in tests):
            tests = [setup + "\n" + t for t in tests]  # each test counts on its own
        return tests, entry_point
    if input_output is not None and input_output != "":
        value = _decode(input_output)
        if isinstance(value, dict) and value.get("fn_name"):
            return _fn_calls(value), value["fn_name"]
        return _python_tests(_stdio_cases(value)), None
    raise ValueError("no tests: give 'tests', 'test' (+ 'entry_point'), 'test_list' or "
                     "'input_output'")
