import sys
import types

import pytest

from rewards import load
from rewards._text import extract_answer
from rewards.coding import extract_code
from rewards.countdown import countdown
from rewards.language import language_consistency
from rewards.length import cosine_length, overlong_penalty
from rewards.math import math_accuracy
from rewards.think import think_format, think_format_soft


# ---------------------------------------------------------------- math_accuracy
@pytest.mark.parametrize("text,ans", [
    ("<think>...</think>\n<answer>42</answer>", "42"),
    (r"<answer>so \boxed{7} is it</answer>", "7"),
    (r"first \boxed{1}, finally \boxed{\frac{2}{3}}", r"\frac{2}{3}"),
    ("The answer is 12.", "12"),
    ("Therefore, the final answer is: $0.5$. I hope it is correct.", "0.5"),
    ("<answer>3</answer> and later <answer>4</answer>", "4"),
    ("<think>long...</think><answer>5", "5"),  # truncated, unclosed tag
    (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),
    ("I don't know", None),
])
def test_extract_answer(text, ans):
    assert extract_answer(text) == ans


def test_math_accuracy_batch():
    comps = ["<answer>x = 3</answer>", r"\boxed{\dfrac{1}{2}}", "The answer is 50%", "<answer>4</answer>",
             "nothing", [{"role": "assistant", "content": r"\boxed{5 cm}"}]]
    gold = ["3", "0.5", "0.5", "5", "1", "#### 5"]
    assert math_accuracy(["q"] * 6, comps, answer=gold) == [1.0, 1.0, 1.0, 0.0, 0.0, 1.0]
    assert load("accuracy")(["q"], ["<answer>1</answer>"], answer=[""]) == [None]


def test_math_accuracy_gold_with_boxed_solution():
    gold = r"Since $2x = 6$, we get $x = \boxed{3}$."
    assert math_accuracy(["q"], [r"\boxed{3}"], answer=[gold]) == [1.0]


# ---------------------------------------------------------------- think_format
def test_think_format_strict_and_soft():
    good = "<think>reason</think>\n\n<answer>1</answer>\n"
    assert think_format(["Q"], [good]) == [1.0]
    bad = [
        "<think>a</think>",  # no answer
        "<answer>1</answer>",  # no think
        "<think>a</think><answer>1</answer> trailing text",
        "<think>a</think><think>b</think><answer>1</answer>",
        "preamble <think>a</think><answer>1</answer>",
        "<think>a</think><answer>1</answer><answer>2</answer>",
        "<think>a<answer>x</answer></think><answer>1</answer>",
    ]
    assert think_format(["Q"] * len(bad), bad) == [0.0] * len(bad)
    assert think_format_soft(["Q"] * len(bad), bad)[2:5] == [1.0, 1.0, 1.0]
    assert think_format(["Q"], [bad[2]], strict=False) == [1.0]


def test_think_format_prompt_opens_think():
    prompt = "A conversation... User: 1+1? Assistant: <think>"
    comp = "I add.</think> <answer>2</answer>"
    assert think_format([prompt], [comp]) == [1.0]
    assert think_format(["plain prompt"], [comp]) == [0.0]
    assert think_format([prompt], ["<think>I add.</think> <answer>2</answer>"]) == [1.0]
    chat_prompt = [{"role": "user", "content": "1+1?"}]
    assert think_format([chat_prompt], [[{"role": "assistant", "content": comp}]]) == [0.0]
    assert think_format([chat_prompt], [[{"role": "assistant", "content": comp}]], think_in_prompt=True) == [1.0]
    assert think_format_soft([prompt], [comp]) == [1.0]


# ---------------------------------------------------------------- language
def test_language_consistency():
    en = "<think>First compute the sum of the numbers, then divide by $n$.</think><answer>3</answer>"
    zh = "<think>首先计算这些数的和，然后除以 $n$。</think><answer>3</answer>"
    mixed = "<think>首先计算 the sum 然后 divide</think>"
    r = language_consistency(["Q"] * 3, [en, zh, mixed])
    assert r[0] == 1.0 and r[1] == 0.0 and 0.0 < r[2] < 1.0
    r_zh = language_consistency(["Q"] * 3, [en, zh, mixed], target="zh")
    assert r_zh[0] == 0.0 and r_zh[1] == 1.0 and r_zh[2] == pytest.approx(1 - r[2])
    # per-sample language column overrides target
    assert language_consistency(["Q"] * 2, [en, zh], language=["en", "zh-CN"], target="fr") == [1.0, 1.0]


def test_language_ignores_math_and_answer():
    text = r"<think>计算 $\frac{a}{b} + x^2 = 4$, 2+2=4, \sqrt{16}.</think><answer>The answer is four</answer>"
    assert language_consistency(["Q"], [text], target="zh") == [1.0]
    assert language_consistency(["Q"], ["<think>$1+1=2$ 123 !!</think>"]) == [None]
    # no think tags: the whole text is the CoT; prompt-opened think block is handled
    assert language_consistency(["Q: <think>"], ["Let me think 我想</think> done"])[0] == pytest.approx(3 / (3 + 4 / 3))


def test_language_unknown_code():
    with pytest.raises(ValueError, match="unsupported language 'xx'"):
        language_consistency(["Q"], ["hello world"], target="xx")


# ---------------------------------------------------------------- countdown
@pytest.mark.parametrize("answer,target,numbers,kw,expected", [
    ("(6 - 2) * 25", 100, [2, 6, 25], {}, 1.0),
    ("25 * (6 - 2) = 100", 100, [2, 6, 25], {}, 1.0),
    ("100 / 4 - 5", 20, [100, 4, 5], {}, 1.0),
    ("(10 - 4) / 4", "1.5", [10, 4, 4], {}, 1.0),  # exact fractions
    ("25 * 4", 100, [25, 2, 2], {}, 0.0),  # 4 not given
    ("6 * 6", 36, [6, 2], {}, 0.0),  # 6 used twice
    ("6 * 6", 36, [6, 6], {}, 1.0),
    ("2 + 6", 8, [2, 6, 25], {"require_all": True}, 0.0),
    ("2 + 6", 9, [2, 6], {"format_score": 0.1}, 0.1),
    ("__import__('os').system('x')", 0, [1], {"format_score": 0.1}, 0.1),
    ("2 ** 99999", 0, [2, 99999], {}, 0.0),  # exponent limit
    ("2 ^ 3", 8, [2, 3], {}, 1.0),
    ("5 / (3 - 3)", 0, [5, 3, 3], {}, 0.0),
    ("1" * 300, 1, [1], {}, 0.0),
])
def test_countdown(answer, target, numbers, kw, expected):
    assert countdown(["Q"], [f"<think>hmm</think><answer>{answer}</answer>"], target=[target],
                     numbers=[numbers], **kw) == [expected]


def test_countdown_no_answer_and_string_numbers():
    assert countdown(["Q", "Q"], ["no tags", "<answer>1+2</answer>"], target=[3, "3"],
                     numbers=[[1, 2], "[1, 2]"]) == [0.0, 1.0]


# ---------------------------------------------------------------- length
def test_overlong_penalty_tokens_and_chars():
    ids = [[0] * n for n in (100, 112, 120, 128, 129)]
    r = overlong_penalty(["Q"] * 5, ["x"] * 5, completion_ids=ids, max_len=128, cache_len=16)
    assert r == [0.0, 0.0, -0.5, -1.0, -1.0]
    assert overlong_penalty(["Q"], ["x" * 10], max_len=10, cache_len=5) == [-1.0]
    with pytest.raises(ValueError):
        overlong_penalty(["Q"], ["x"], max_len=10, cache_len=11)


def test_cosine_length_shape():
    def run(correct, n, **kw):
        comp = r"\boxed{1}" if correct else r"\boxed{2}"
        return cosine_length(["Q"], [comp], answer=["1"], completion_ids=[[0] * n], max_len=100, **kw)[0]

    assert run(True, 0) == pytest.approx(1.0) and run(True, 100) == pytest.approx(0.5)
    assert run(True, 20) > run(True, 80)  # shorter correct answers are better
    assert run(False, 0) == pytest.approx(-1.0) and run(False, 100) == pytest.approx(-0.5)
    assert run(False, 20) < run(False, 80)  # wrong answers: longer thinking is less bad
    assert run(False, 150, exceed_penalty=-10.0) == -10.0
    assert cosine_length(["Q"], ["x"], answer=[None]) == [None]


# ---------------------------------------------------------------- code_tests
def test_extract_code():
    assert extract_code("```python\na = 1\n```\ntext\n```py\nb = 2\n```") == "b = 2"
    assert extract_code("```\nc = 3\n```") == "c = 3"
    assert extract_code("```python\nd = 4\n") == "d = 4"  # truncated fence
    assert extract_code("e = 5") == "e = 5"


class _Result:
    def __init__(self, status, passed, total):
        self.status, self.passed, self.total = status, passed, total


def test_code_tests_with_fake_sandbox(monkeypatch):
    calls = {}

    def run_batch(items, timeout_s, memory_mb, workers):
        calls.update(items=items, timeout_s=timeout_s, memory_mb=memory_mb)
        return [_Result("ok", 2, 4), _Result("timeout", 0, 3)]

    monkeypatch.setitem(sys.modules, "sandbox", types.SimpleNamespace(run_batch=run_batch))
    fn = load("code_tests")
    comps = ["```python\ndef f(): return 1\n```", "while True: pass", "no tests for me"]
    r = fn(["Q"] * 3, comps, tests=[["assert f()==1"], ["assert g()"], None], timeout_s=2.0)
    assert r == [0.5, 0.0, None]
    assert calls["items"][0] == ("def f(): return 1", ["assert f()==1"]) and calls["timeout_s"] == 2.0


def test_code_tests_with_real_sandbox():
    try:
        import sandbox
    except ImportError as e:  # the sandbox package is developed separately
        pytest.skip(f"sandbox not importable: {e}")
    if not hasattr(sandbox, "run_batch"):
        pytest.skip("sandbox.run_batch not implemented yet")
    comps = ["```python\ndef add(a, b):\n    return a + b\n```", "```python\ndef add(a, b):\n    return a - b\n```"]
    tests = [["assert add(1, 2) == 3", "assert add(0, 0) == 0"]] * 2
    r = load("code_tests")(["Q"] * 2, comps, tests=tests, timeout_s=10.0)
    assert r[0] == 1.0 and 0.0 <= r[1] < 1.0


def test_code_tests_json_encoded_tests(monkeypatch):
    seen = []

    def run_batch(items, timeout_s, memory_mb, workers):
        seen.extend(items)
        return [_Result("ok", 1, 1)] * len(items)

    monkeypatch.setitem(sys.modules, "sandbox", types.SimpleNamespace(run_batch=run_batch))
    load("code_tests")(["Q"], ["x = 1"], tests=['["assert x == 1"]'])
    assert seen == [("x = 1", ["assert x == 1"])]
