"""The public API on ordinary programs: passes, partial passes, errors, batches."""

from __future__ import annotations

import dataclasses
import os

import pytest

import sandbox

DOUBLE = "def double(x):\n    return 2 * x\n"


def test_correct_program_passes_every_test():
    r = sandbox.run(DOUBLE, ["assert double(1) == 2", "assert double(0) == 0",
                             "assert double(-3) == -6"])
    assert (r.status, r.passed, r.total) == ("ok", 3, 3)
    assert r.duration_s > 0


def test_partial_pass_counts_each_test_separately():
    tests = ["assert double(1) == 2", "assert double(2) == 5", "assert double(3) == 6",
             "assert double(4) == 0", "assert double(5) == 10"]
    r = sandbox.run(DOUBLE, tests)
    assert (r.status, r.passed, r.total) == ("failed", 3, 5)
    assert "<test 1>" in r.stderr and "<test 3>" in r.stderr  # which ones failed


def test_a_test_that_raises_does_not_stop_the_next():
    r = sandbox.run(DOUBLE, ["double(None)", "assert double(2) == 4"])
    assert (r.status, r.passed, r.total) == ("failed", 1, 2)
    assert "TypeError" in r.stderr


def test_syntax_error_is_an_error_before_the_tests():
    r = sandbox.run("def double(x) return 2 * x", ["assert double(1) == 2", "assert True"])
    assert (r.status, r.passed, r.total) == ("error", 0, 2)
    assert "SyntaxError" in r.stderr


def test_exception_at_import_time_is_an_error():
    r = sandbox.run("import no_such_module_anywhere", ["assert True"])
    assert (r.status, r.passed) == ("error", 0)
    assert "ModuleNotFoundError" in r.stderr


def test_tests_as_one_string_count_as_one():
    check = "def check(candidate):\n    assert candidate(2) == 4\n    assert candidate(5) == 10\n"
    r = sandbox.run(DOUBLE, check + "\ncheck(double)\n")
    assert (r.status, r.passed, r.total) == ("ok", 1, 1)


def test_tests_share_the_program_namespace_in_order():
    r = sandbox.run("state = []", ["state.append(1)", "state.append(2)", "assert state == [1, 2]"])
    assert (r.status, r.passed) == ("ok", 3)


def test_no_tests_means_nothing_to_fail():
    r = sandbox.run(DOUBLE, [])
    assert (r.status, r.passed, r.total) == ("ok", 0, 0)


def test_stdout_and_stderr_are_captured():
    r = sandbox.run("import sys\nprint('héllo')\nprint('oops', file=sys.stderr)", ["print('from test')"])
    assert r.status == "ok"
    assert r.stdout == "héllo\nfrom test\n"
    assert "oops" in r.stderr


def test_main_guard_does_not_run_and_stdin_is_empty():
    code = "x = 1\nif __name__ == '__main__':\n    x = input()\n"
    assert sandbox.run(code, ["assert x == 1"]).status == "ok"
    r = sandbox.run("line = input()", ["assert True"])
    assert r.status == "error" and "EOFError" in r.stderr


def test_only_the_standard_library_is_importable():
    assert sandbox.run("import json, math, collections", ["assert math.pi > 3"]).status == "ok"
    r = sandbox.run("import pytest", ["assert True"])  # installed on the host
    assert r.status == "error" and "ModuleNotFoundError" in r.stderr


@pytest.mark.parametrize("exit_code", ["import sys\nsys.exit(0)", "import os\nos._exit(0)"])
def test_exiting_early_is_not_a_pass(exit_code):
    r = sandbox.run(DOUBLE + exit_code, ["assert double(1) == 2"])
    assert (r.status, r.passed) == ("error", 0)


def test_exiting_inside_a_test_stops_counting():
    r = sandbox.run(DOUBLE, ["assert double(1) == 2", "import os\nos._exit(0)", "assert True"])
    assert (r.status, r.passed, r.total) == ("failed", 1, 3)


def test_printing_fake_results_is_not_a_pass():
    r = sandbox.run("print('S\\nC ok\\nT 0 ok\\nD')\nprint('ok 1/1 PASSED')", ["assert False"])
    assert (r.status, r.passed) == ("failed", 0)


def test_memory_error_inside_a_test_is_reported_as_memory():
    r = sandbox.run(DOUBLE, ["assert double(1) == 2", "x = bytearray(1 << 40)"], memory_mb=128)
    assert (r.status, r.passed, r.total) == ("memory", 1, 2)


def test_timeout_keeps_the_tests_that_already_passed():
    r = sandbox.run(DOUBLE, ["assert double(1) == 2", "while True:\n    pass"], timeout_s=0.5)
    assert (r.status, r.passed, r.total) == ("timeout", 1, 2)


def test_run_batch_keeps_order_and_runs_concurrently():
    items = [(DOUBLE, [f"assert double({i}) == {2 * i + (i % 3 == 0)}"]) for i in range(12)]
    items.insert(5, ("while True:\n    pass", ["assert True"]))
    results = sandbox.run_batch(items, timeout_s=1.0, workers=4)
    expected = ["failed" if i % 3 == 0 else "ok" for i in range(12)]
    expected.insert(5, "timeout")
    assert [r.status for r in results] == expected


def test_run_batch_rejects_bad_input_before_running_anything():
    with pytest.raises(TypeError):
        sandbox.run_batch([(DOUBLE, ["assert True"]), (DOUBLE, [42])])


def test_invalid_arguments_raise():
    with pytest.raises(ValueError):
        sandbox.run(DOUBLE, "assert True", language="rust")
    with pytest.raises(ValueError):
        sandbox.run(DOUBLE, "assert True", memory_mb=1)
    with pytest.raises(ValueError):
        sandbox.run(DOUBLE, "assert True", timeout_s=0)


def test_result_is_frozen():
    r = sandbox.run(DOUBLE, "assert True")
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.status = "ok"
    assert r.status in sandbox.STATUSES


def test_capabilities_describe_the_mode_in_use():
    caps = sandbox.capabilities()
    assert caps["backend"] in ("bwrap", "unshare", "none")
    assert caps["available"][caps["backend"]]
    assert caps["launch"] in ("zygote", "spawn")
    assert set(caps["rlimits"]) >= {"RLIMIT_CPU", "RLIMIT_AS", "RLIMIT_NPROC", "RLIMIT_FSIZE",
                                    "RLIMIT_NOFILE"}
    if caps["backend"] == "none" and not caps["seccomp"]:
        assert caps["network"].startswith("NOT ISOLATED")
    if caps["available"]["bwrap"] and not os.environ.get("GRPO_SANDBOX_BACKEND"):
        # the strongest one that works is used
        assert caps["backend"] == "bwrap"


def test_attacks_in_a_batch_do_not_disturb_their_neighbours():
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    hog = "x = bytearray(1 << 40)"
    good = (DOUBLE, ["assert double(21) == 42"])
    items = [(bomb, ["assert True"]), good, good, (hog, ["assert True"]), good, good, good]
    results = sandbox.run_batch(items, timeout_s=1.0, workers=4)
    assert [r.status for r in results] == ["timeout", "ok", "ok", "memory", "ok", "ok", "ok"]
