"""code_tests, second audit round: helpers the prompt gives cannot be forged by a
completion's own copies; real answer shapes score right (a prompt's import header,
LeetCode's Solution().method, APPS call-based classes, bare code in <answer>)."""

from __future__ import annotations

import pytest

from rewards.coding import code_tests, program, trusted_tests

pytest.importorskip("sandbox")

CYCLIC_PROMPT = '''def encode_cyclic(s: str):
    """Cycle groups of three characters."""
    groups = [s[(3 * i):min((3 * i + 3), len(s))] for i in range((len(s) + 2) // 3)]
    groups = [(group[1:] + group[0]) if len(group) == 3 else group for group in groups]
    return "".join(groups)


def decode_cyclic(s: str):
    """Takes as input a string encoded with encode_cyclic. Returns the decoded string."""
'''
CYCLIC_TEST = '''def check(candidate):
    for s in ["abcdefg", "hello world", "xy", "aaabbbccc"]:
        assert candidate(encode_cyclic(s)) == s
'''
HONEST = "    return encode_cyclic(encode_cyclic(s))\n"
# Forgeries: replace the prompt's helper so the test's round trip is trivial.
FORGE_BODY = "    return s\n\ndef encode_cyclic(s):\n    return s\n"
FORGE_FULL = "```python\ndef encode_cyclic(s):\n    return s\n\ndef decode_cyclic(s):\n    return s\n```"
FORGE_GLOBAL = ("```python\nimport builtins\ndef decode_cyclic(s):\n    return s\n"
                "encode_cyclic = lambda s: s\nbuiltins.encode_cyclic = encode_cyclic\n```")

POLY_PROMPT = '''import math


def poly(xs: list, x: float):
    """Evaluates polynomial with coefficients xs at point x."""
    return sum([coeff * math.pow(x, i) for i, coeff in enumerate(xs)])


def find_zero(xs: list):
    """xs are coefficients of a polynomial; returns x such that poly(x) = 0."""
'''
POLY_TEST = '''def check(candidate):
    for xs in [[-6, 11, -6, 1], [1, 1], [2, 3, 0, 1]]:
        assert math.fabs(poly(xs, candidate(xs))) < 1e-4
'''
POLY_HONEST = '''    lo, hi = -10.0, 10.0
    while poly(xs, lo) * poly(xs, hi) > 0:
        lo, hi = lo * 2, hi * 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if poly(xs, mid) * poly(xs, lo) > 0:
            lo = mid
        else:
            hi = mid
    return lo
'''
POLY_FORGE = "    return 0.0\n\ndef poly(xs, x):\n    return 0.0\n"


def score(prompt, completion, test, entry):
    return code_tests([prompt], [completion], test=[test], entry_point=[entry], timeout_s=5.0)[0]


@pytest.mark.parametrize("completion,want", [(HONEST, 1.0), (FORGE_BODY, 0.0), (FORGE_FULL, 0.0),
                                             (FORGE_GLOBAL, 0.0)])
def test_a_completion_cannot_replace_the_prompts_helper(completion, want):
    assert score(CYCLIC_PROMPT, completion, CYCLIC_TEST, "decode_cyclic") == want


@pytest.mark.parametrize("completion,want", [(POLY_HONEST, 1.0), (POLY_FORGE, 0.0)])
def test_poly_helper_and_its_import_are_the_testers(completion, want):
    assert score(POLY_PROMPT, completion, POLY_TEST, "find_zero") == want


def test_trusted_tests_define_the_helpers_before_each_test():
    tests = trusted_tests(POLY_PROMPT, ["assert 1", "assert 2"], "find_zero")
    assert all(t.startswith("import math\n") and "def poly(" in t and "def find_zero" not in t
               for t in tests)
    assert trusted_tests("def f(x):\n    '''Doc.'''\n", ["assert 1"], "f") == ["assert 1"]


LIST_PROMPT = '''from typing import List


def below_zero(operations: List[int]) -> bool:
    """Does the running balance ever fall below zero?"""
'''
LIST_FULL = ("```python\ndef below_zero(operations: List[int]) -> bool:\n    b = 0\n"
             "    for op in operations:\n        b += op\n        if b < 0:\n            return True\n"
             "    return False\n```")
LIST_TEST = "def check(candidate):\n    assert candidate([1, -2]) is True\n    assert candidate([1, 2]) is False\n"


def test_a_full_solution_gets_the_prompts_import_header():
    assert program(LIST_PROMPT, LIST_FULL, "below_zero").startswith("from typing import List\n")
    assert score(LIST_PROMPT, LIST_FULL, LIST_TEST, "below_zero") == 1.0


LEET = ("```python\nclass Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n"
        "        seen = {}\n        for i, x in enumerate(nums):\n            if target - x in seen:\n"
        "                return [seen[target - x], i]\n            seen[x] = i\n```")
LEET_PROMPT = "from typing import *\n\nclass Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n        "
LEET_TEST = ("def check(candidate):\n    assert candidate(nums=[2, 7, 11, 15], target=9) == [0, 1]\n"
             "    assert candidate(nums=[3, 2, 4], target=6) == [1, 2]\n")


def test_leetcode_solution_method_entry_points():
    assert score(LEET_PROMPT, LEET, LEET_TEST, "Solution().twoSum") == 1.0
    wrong = LEET.replace("[seen[target - x], i]", "[i, seen[target - x]]")
    assert score(LEET_PROMPT, wrong, LEET_TEST, "Solution().twoSum") == 0.0


def test_apps_call_based_problems_take_a_solution_class():
    io = '{"fn_name": "add", "inputs": [[1, 2], [3, 4]], "outputs": [[3], [7]]}'
    cls = "```python\nclass Solution:\n    def add(self, a, b):\n        return a + b\n```"
    fn = "```python\ndef add(a, b):\n    return a + b\n```"
    bad = "```python\nclass Solution:\n    def add(self, a, b):\n        return a - b\n```"
    got = code_tests([None] * 3, [cls, fn, bad], input_output=[io] * 3, timeout_s=5.0)
    assert got == [1.0, 1.0, 0.0]


@pytest.mark.parametrize("completion", [
    "<think>Add them.</think>\n<answer>\ndef add(a, b):\n    return a + b\n</answer>",
    "<think>Add them.</think>\ndef add(a, b):\n    return a + b\n",
    "<think>Add them.</think>\n<answer>\n```python\ndef add(a, b):\n    return a + b\n```\n</answer>",
])
def test_bare_code_in_an_answer_section_runs(completion):
    got = code_tests([None], [completion], tests=[["assert add(1, 2) == 3"]], timeout_s=5.0)
    assert got == [1.0]
