"""extract_code on answers written the way models write them: a table of
styles x (right, wrong) solutions, scored end to end by code_tests with the
real sandbox (no false fails, no false passes), plus the pure extraction."""

from __future__ import annotations

import pytest

from rewards.code_extract import extract_code, fenced_blocks
from rewards.coding import code_tests

TEST = '''
def check(candidate):
    assert candidate([1, 2, 3]) == 6
    assert candidate([]) == 0
    assert candidate([-1, 1, 5]) == 5
'''
RIGHT = "def total(xs):\n    return sum(xs)\n"
WRONG = "def total(xs):\n    return sum(xs) + 1\n"
HELPER_RIGHT = "def total(xs):\n    return add_all(xs)\n"
HELPER_WRONG = "def total(xs):\n    return add_all(xs) - 1\n"


def fence(code: str, tag: str = "python", char: str = "`", indent: str = "") -> str:
    lines = [char * 3 + tag] + code.rstrip("\n").split("\n") + [char * 3]
    return "\n".join(indent + line for line in lines)


def styles(body: str, helper_body: str) -> dict[str, str]:
    """Answer styles; each embeds ``body`` (or ``helper_body`` + a helper) once."""
    usage = "print(total([1, 2, 3]))  # 6\n"
    return {
        "bare code": body,
        "one block": "Here is the solution:\n\n" + fence(body),
        "untagged block": fence(body, tag=""),
        "trailing usage block": fence(body) + "\n\nExample usage:\n\n" + fence(usage),
        "trailing test block": fence(body) + "\n\nTests:\n" + fence(
            "assert total([1]) == 1\nassert total([2, 2]) == 4\n"),
        "trailing output block": fence(body) + "\n\nOutput:\n" + fence("6", tag=""),
        "output block tagged text": fence(body) + "\n" + fence("6\n0\n5", tag="text"),
        "bash block after": fence(body) + "\nRun it:\n" + fence("python solution.py", tag="bash"),
        "tilde fence": "Solution:\n" + fence(body, char="~"),
        "long tilde fence": "~~~~python\n" + body + "~~~~\n",
        "fence indented in a list": "1. Write the function:\n\n" + fence(body, indent="   ")
                                    + "\n2. Done.",
        "deeply indented fence": "- step\n    - code:\n" + fence(body, indent="      "),
        "imports in an earlier block": fence("import math\n") + "\nthen\n"
                                       + fence(body.replace("sum(xs)", "math.fsum(xs) and sum(xs)")),
        "helper in an earlier block": fence("def add_all(xs):\n    return sum(xs)\n")
                                      + "\nNow the main function:\n" + fence(helper_body),
        "draft then final": fence("def total(xs):\n    pass  # TODO\n") + "\nFinal version:\n"
                            + fence(body) + "\n" + fence(usage),
        "prose with inline ``` mention": "Use ```python fences.\n" + fence(body),
        "unclosed last fence": "Answer:\n```python\n" + body,
        "main guard demo in the block": fence(body + "\nif __name__ == '__main__':\n"
                                              "    print(total([1]))\n"),
        "usage comment block": fence(body) + "\n" + fence("# Example usage\nxs = [1, 2]\n"
                                                          "result = total(xs)\n"),
        "stdin demo in the same block": fence(body + "\nxs = list(map(int, input().split()))\n"
                                                     "print(total(xs))\n"),
        "main() demo in the same block": fence(body + "\ndef main():\n    print(total(list(map("
                                                      "int, input().split()))))\n\nmain()\n"),
        "bare code with a stdin demo": body + "\nprint(total([int(x) for x in input().split()]))\n",
    }


CASES = [(name, text, right) for right in (True, False)
         for name, text in styles(RIGHT if right else WRONG,
                                  HELPER_RIGHT if right else HELPER_WRONG).items()]


def test_table_has_every_style_right_and_wrong():
    assert len(CASES) == 2 * len(styles(RIGHT, HELPER_RIGHT)) >= 44


@pytest.mark.parametrize("name, text, right", [c for c in CASES if c[2]], ids=lambda x: x
                         if isinstance(x, str) and len(x) < 40 else "")
def test_extraction_keeps_the_entry_point_and_drops_usage(name, text, right):
    code = extract_code(text, "total")
    assert "def total" in code
    assert "input()" not in code.split("def main")[0]
    assert "print(total" not in code.split("if __name__")[0].split("def main")[0]
    assert "assert total" not in code
    compile(code, "<extracted>", "exec")


def test_end_to_end_no_false_fails_and_no_false_passes():
    pytest.importorskip("sandbox")
    names = [c[0] + (" (right)" if c[2] else " (wrong)") for c in CASES]
    scores = code_tests(["Q"] * len(CASES), [c[1] for c in CASES],
                        test=[TEST] * len(CASES), entry_point=["total"] * len(CASES),
                        timeout_s=10.0)
    false_fails = [n for n, s, c in zip(names, scores, CASES) if c[2] and s != 1.0]
    false_passes = [n for n, s, c in zip(names, scores, CASES) if not c[2] and s != 0.0]
    assert not false_fails and not false_passes, (false_fails, false_passes)


def test_without_entry_point_the_last_defining_block_wins():
    text = fence("a = 1") + "\ntext\n" + fence("b = 2", tag="py")
    assert extract_code(text) == "b = 2"
    text = fence("def f():\n    return 1") + "\n" + fence("print(f())")
    assert extract_code(text) == "def f():\n    return 1"


def test_stdio_program_is_not_mistaken_for_usage():
    prog = "n = int(input())\nprint(n * 2)"
    text = fence(prog) + "\nSample output:\n" + fence("4", tag="")
    assert extract_code(text) == prog


def test_fenced_blocks_reads_tildes_indents_and_longer_closers():
    text = "  ~~~~py\n  x = 1\n  ~~~\n  y = 2\n  ~~~~\n```\nz\n````\n"
    assert fenced_blocks(text) == [("py", "x = 1\n~~~\ny = 2"), ("", "z")]


def test_no_fence_returns_the_text():
    assert extract_code("def f():\n    return 1\n") == "def f():\n    return 1"


HOSTILE = {
    "backticks after a long info string": "```" + "a" * 50000 + "`",
    "spaced info then a backtick": "```py" + " a" * 30000 + "`",
    "blank lines then a comment": "\n" * 100000 + "# x",
    "one huge comment line": "```python\n#" + " x" * 100000 + "\n```",
    "thousands of empty fences": "```\n" * 20000,
    "a line of tildes": "~" * 100000,
    "deeply nested parentheses": "```python\n" + "(" * 100000 + "\n```",
    "thousands of blocks": "```python\ndef f():\n    return 1\n```\n" * 3000,
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_text_is_handled_in_linear_time(name):
    import time
    start = time.perf_counter()
    for entry in ("f", None):
        assert isinstance(extract_code(HOSTILE[name], entry), str)
    assert time.perf_counter() - start < 5.0  # a hang check, not a speed target
