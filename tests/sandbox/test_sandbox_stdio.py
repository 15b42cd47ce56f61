"""stdin/stdout problems in the style of APPS / CodeContests, with right,
wrong, slow and crashing solutions; outputs are compared on the host."""

from __future__ import annotations

import pytest

import sandbox
from sandbox._stdio import outputs_match

# Problem 1 (A+B, many lines): sum each pair.
AB_CASES = [{"input": "3\n1 2\n10 -3\n0 0\n", "output": "3\n7\n0\n"},
            {"input": "1\n1000000000 1000000000\n", "output": "2000000000\n"},
            {"input": "2\n5 5\n-1 -1\n", "output": "10\n-2\n"}]
AB_RIGHT = """
import sys
data = sys.stdin.read().split()
t = int(data[0])
print("\\n".join(str(int(data[1 + 2 * i]) + int(data[2 + 2 * i])) for i in range(t)))
"""
AB_WRONG = AB_RIGHT.replace("+ int(data[2", "- int(data[2")  # right only for b == 0
AB_CRASH = "t = int(input())\nfor _ in range(t):\n    a, b = input().split()\n    print(a + b + 1)\n"

# Problem 2 (CodeContests style: count primes up to n, n up to 2e6, tight limit).
PRIME_CASES = [{"input": "10\n", "output": "4\n"}, {"input": "2000000\n", "output": "148933\n"},
               {"input": "1\n", "output": "0\n"}]
PRIME_RIGHT = """
n = int(input())
sieve = bytearray([1]) * (n + 1)
sieve[0:2] = b"\\x00\\x00"[: n + 1]
for i in range(2, int(n ** 0.5) + 1):
    if sieve[i]:
        sieve[i * i::i] = bytes(len(range(i * i, n + 1, i)))
print(sum(sieve))
"""
PRIME_SLOW = """
n = int(input())
count = 0
for k in range(2, n + 1):
    if all(k % d for d in range(2, k)):
        count += 1
print(count)
"""

# Problem 3 (float output, checker with tolerance): average of the numbers.
AVG_CASES = [{"input": "3\n1 2 2\n", "output": "1.666666667\n"},
             {"input": "2\n0.1 0.2\n", "output": "0.15\n"}]
AVG_RIGHT = "n = int(input())\nxs = list(map(float, input().split()))\nprint(sum(xs) / n)\n"
AVG_ROUNDED = "n = int(input())\nxs = list(map(float, input().split()))\nprint(round(sum(xs) / n, 2))\n"


def test_right_solution_passes_every_case():
    r = sandbox.run(AB_RIGHT, AB_CASES)
    assert (r.status, r.passed, r.total) == ("ok", 3, 3), r


def test_wrong_solution_gets_partial_credit_and_a_wrong_answer_status():
    r = sandbox.run(AB_WRONG, [{"input": "1\n5 0\n", "output": "5\n"}] + AB_CASES)
    assert (r.status, r.passed, r.total) == ("failed", 1, 4), r
    assert "wrong answer" in r.stderr


def test_crashing_solution_is_an_error_per_case():
    r = sandbox.run(AB_CRASH, AB_CASES)
    assert (r.status, r.passed) == ("error", 0), r
    assert "TypeError" in r.stderr


def test_slow_solution_times_out_per_case_and_keeps_the_fast_cases():
    r = sandbox.run(PRIME_SLOW, PRIME_CASES, timeout_s=1.0)
    assert (r.status, r.passed, r.total) == ("timeout", 2, 3), r
    assert r.duration_s < 10.0  # the limit is per case: 1 s + two quick cases


def test_fast_solution_meets_the_same_limit():
    r = sandbox.run(PRIME_RIGHT, PRIME_CASES, timeout_s=1.0)
    assert (r.status, r.passed) == ("ok", 3), r


def test_float_tolerance_is_optional():
    assert sandbox.run(AVG_RIGHT, AVG_CASES).passed == 0  # exact: 1.6666666666666667, 0.15000000000000002
    r = sandbox.run(AVG_RIGHT, AVG_CASES, float_tol=1e-6)
    assert (r.status, r.passed) == ("ok", 2)
    assert sandbox.run(AVG_ROUNDED, AVG_CASES, float_tol=1e-6).passed == 1  # 1.67 is too far


def test_whitespace_is_normalised_but_tokens_are_not():
    assert outputs_match("1  2\r\n3 \n\n\n", "1 2\n3")
    assert not outputs_match("1 2 3", "1 2\n3")
    assert not outputs_match("12", "1 2")
    assert not outputs_match("", "0")


def test_printing_the_expected_output_of_another_case_fails():
    # Output is compared per case; a program cannot see the expected outputs.
    r = sandbox.run("print(3)\nprint(7)\nprint(0)", AB_CASES)
    assert (r.status, r.passed) == ("failed", 1), r


def test_forged_result_lines_change_nothing_in_stdio_mode():
    code = ("import os\nfor fd in range(3, 64):\n    try:\n        os.write(fd, b'C ok\\nT 0 ok\\nD\\n')\n"
            "    except OSError:\n        pass\nprint('nope')")
    r = sandbox.run(code, AB_CASES)
    assert r.passed == 0 and r.status == "failed"


def test_main_guard_runs_and_stdin_is_a_real_file():
    code = ("import os\ndef main():\n    data = os.read(0, 100).split()\n"
            "    print(int(data[0]) * 2)\nif __name__ == '__main__':\n    main()\n")
    r = sandbox.run(code, [{"input": "21", "output": "42"}])
    assert (r.status, r.passed) == ("ok", 1), r


def test_batch_mixes_stdio_and_python_items_in_order():
    items = [(AB_RIGHT, AB_CASES), ("def f():\n    return 1", ["assert f() == 1"]),
             (AB_WRONG, AB_CASES)]
    out = sandbox.run_batch(items)
    assert [(r.status, r.passed, r.total) for r in out] == [("ok", 3, 3), ("ok", 1, 1),
                                                           ("failed", 0, 3)]


def test_apps_dict_and_line_lists_are_accepted():
    r = sandbox.run("print(input()[::-1])", {"inputs": ["abc\n"], "outputs": [["cba"]]})
    assert (r.status, r.passed) == ("ok", 1)


@pytest.mark.parametrize("bad", [[{"input": "1"}], [{"input": 1, "output": "1"}],
                                 {"inputs": ["1"], "outputs": []}])
def test_malformed_cases_raise_a_clear_error(bad):
    with pytest.raises((TypeError, ValueError)) as e:
        sandbox.run("print(1)", bad)
    assert "\n" not in str(e.value)


def test_every_mode_judges_stdio_the_same(sb, healthy):
    r = sb.run(AB_WRONG, AB_CASES[:2] + [{"input": "1\n4 0\n", "output": "4\n"}])
    assert (r.status, r.passed) == ("failed", 1), r
    healthy(sb)


def test_expected_output_over_the_default_cap_can_be_matched():
    n = 300000  # ~2 MB of output, twice the default 1 MiB cap
    code = "n = int(input())\nprint('\\n'.join(map(str, range(n))))\n"
    r = sandbox.run(code, [{"input": str(n), "output": "\n".join(map(str, range(n)))}])
    assert (r.status, r.passed) == ("ok", 1)
    r = sandbox.run("while True:\n    print('x' * 1000)", [{"input": "1", "output": "1"}])
    assert r.status == "output_limit"
