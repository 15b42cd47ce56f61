import asyncio
import threading

import pytest

from rewards import REGISTRY, RewardError, RewardSet, RewardSpec, register


@pytest.fixture
def temp_rewards():
    names = []

    def add(name, fn):
        register(name)(fn)
        names.append(name)
        return fn

    yield add
    for n in names:
        REGISTRY.pop(n, None)


def test_weights_and_metrics():
    rs = RewardSet([RewardSpec("math_accuracy", 2.0), RewardSpec("think_format", 0.5)])
    comps = ["<think>a</think><answer>4</answer>", "<think>a</think><answer>5</answer>", "no idea"]
    out = rs(["Q"] * 3, comps, {"answer": ["4", "4", "4"]})
    assert out.per_fn == {"math_accuracy": [1.0, 0.0, 0.0], "think_format": [1.0, 1.0, 0.0]}
    assert out.total == [2.5, 0.5, 0.0]
    assert out.errors == []
    assert out.metrics["reward/mean"] == pytest.approx(1.0)
    assert out.metrics["reward/math_accuracy/mean"] == pytest.approx(1 / 3)
    assert out.metrics["reward/think_format/none_frac"] == 0.0
    assert out.metrics["reward/think_format/errors"] == 0.0
    assert set(out.metrics) >= {"reward/std", "reward/math_accuracy/std"}


def test_none_counts_as_zero_and_is_reported():
    rs = RewardSet([RewardSpec("math_accuracy"), RewardSpec("think_format")])
    out = rs(["Q", "Q"], ["<think>a</think><answer>1</answer>"] * 2, {"answer": ["1", None]})
    assert out.per_fn["math_accuracy"] == [1.0, None]
    assert out.total == [2.0, 1.0]
    assert out.metrics["reward/math_accuracy/none_frac"] == 0.5
    assert out.metrics["reward/math_accuracy/mean"] == 1.0


def test_exception_isolated_per_sample(temp_rewards):
    def flaky(prompts, completions, **kw):
        return [1.0 / (len(c) - 3) for c in completions]  # "abc" divides by zero

    temp_rewards("test_flaky", flaky)
    rs = RewardSet([RewardSpec("test_flaky"), RewardSpec("think_format", 1.0)])
    out = rs(["p"] * 3, ["abcd", "abc", "abcde"], {})
    assert out.per_fn["test_flaky"] == [1.0, None, 0.5]
    assert out.total == [1.0, 0.0, 0.5]
    assert out.errors == [{"reward": "test_flaky", "index": 1, "error": "ZeroDivisionError: float division by zero",
                           "completion": "abc"}]
    assert out.metrics["reward/test_flaky/errors"] == 1.0
    assert out.metrics["reward/test_flaky/none_frac"] == pytest.approx(1 / 3)


def test_fail_on_error_raises(temp_rewards):
    temp_rewards("test_boom", lambda prompts, completions, **kw: [1.0 / (len(c) - 3) for c in completions])
    rs = RewardSet([RewardSpec("test_boom")], fail_on_error=True)
    with pytest.raises(RewardError, match=r"reward 'test_boom' failed on sample 1: ZeroDivisionError"):
        rs(["p", "p"], ["abcd", "abc"], {})


def test_async_reward(temp_rewards):
    async def slow_len(prompts, completions, **kw):
        await asyncio.sleep(0.01)
        return [float(len(c)) for c in completions]

    temp_rewards("test_async", slow_len)
    out = RewardSet([RewardSpec("test_async", 0.5)])(["p", "p"], ["ab", "abcd"], {})
    assert out.total == [1.0, 2.0]


def test_async_reward_inside_running_loop(temp_rewards):
    async def one(prompts, completions, **kw):
        return [1.0] * len(completions)

    temp_rewards("test_async_one", one)
    rs = RewardSet([RewardSpec("test_async_one")])

    async def main():
        return rs(["p"], ["c"], {})

    assert asyncio.run(main()).total == [1.0]


def test_missing_column_message():
    rs = RewardSet([RewardSpec("think_format"), RewardSpec("math_accuracy")])
    with pytest.raises(RewardError) as e:
        rs.check_columns({"prompt", "x"})
    assert str(e.value) == ("reward 'math_accuracy' needs dataset column(s) ['answer'] "
                            "but the dataset has ['prompt', 'x']")
    rs.check_columns({"prompt", "answer"})  # ok
    with pytest.raises(RewardError, match="needs dataset column"):
        rs(["p"], ["c"], {"x": [1]})


def test_wrong_return_length(temp_rewards):
    temp_rewards("test_short", lambda prompts, completions, **kw: [1.0])
    with pytest.raises(RewardError, match=r"reward 'test_short' returned 1 values for 2 completions"):
        RewardSet([RewardSpec("test_short")])(["p", "p"], ["a", "b"], {})


def test_wrong_return_type(temp_rewards):
    temp_rewards("test_scalar", lambda prompts, completions, **kw: 1.0)
    with pytest.raises(RewardError, match="returned float, expected a list"):
        RewardSet([RewardSpec("test_scalar")])(["p"], ["a"], {})


def test_timeout_counts_as_error(temp_rewards):
    # The call is abandoned at its timeout, not waited for: the reward is still blocked
    # (on an event only the test sets) when the RewardSet answers. No wall-clock assert:
    # the timing itself is in bench/bench_rewards.py --timeouts.
    release, finished = threading.Event(), threading.Event()

    def sleepy(prompts, completions, **kw):
        if any("slow" in c for c in completions):
            release.wait(30)
        finished.set()
        return [1.0] * len(completions)

    temp_rewards("test_sleepy", sleepy)
    rs = RewardSet([RewardSpec("test_sleepy")], timeout_s=0.2)
    try:
        out = rs(["p", "p"], ["fast", "slow"], {})
        assert not finished.is_set()          # answered while the reward still ran
    finally:
        release.set()
    # Issue 15: one time budget per call; a call that times out fails its samples once
    # (it used to retry each sample with a fresh budget: (n + 1) x timeout_s per step).
    assert out.per_fn["test_sleepy"] == [None, None]
    assert [e["index"] for e in out.errors] == [0, 1] and out.errors[0]["error"].startswith("TimeoutError")


def test_kwargs_bound_and_display_names(tmp_path):
    f = tmp_path / "mine.py"
    f.write_text("def scaled(prompts, completions, k=1.0, **kw):\n    return [k] * len(completions)\n")
    rs = RewardSet([RewardSpec("think_format", kwargs={"strict": False}), RewardSpec("think_format"),
                    RewardSpec(f"{f}:scaled", 1.0, {"k": 3.0}), RewardSpec(f"{f}:scaled")])
    assert rs.names == ["think_format", "think_format_2", "scaled", "scaled_2"]
    out = rs(["p"], ["x <think>a</think><answer>1</answer>"], {})
    assert out.per_fn["think_format"] == [1.0] and out.per_fn["think_format_2"] == [0.0]
    assert out.per_fn["scaled"] == [3.0] and out.per_fn["scaled_2"] == [1.0]
    assert rs.required_columns["think_format"] == set()


def test_misspelled_kwarg_fails_early():
    with pytest.raises(RewardError, match="did you mean 'strict'"):
        RewardSet([RewardSpec("think_format", kwargs={"strictt": True})])


def test_columns_and_completion_ids_passed(temp_rewards):
    seen = {}

    def spy(prompts, completions, answer, completion_ids, **kw):
        seen.update(kw, answer=answer, ids=completion_ids)
        return [float(len(i)) for i in completion_ids]

    temp_rewards("test_spy", spy)
    rs = RewardSet([RewardSpec("test_spy")])
    rs.check_columns({"answer"})  # completion_ids comes from the trainer
    out = rs(["p", "p"], ["a", "b"], {"answer": ["1", "2"], "completion_ids": [[1, 2], [3]], "extra": ["x", "y"]})
    assert out.total == [2.0, 1.0] and seen["extra"] == ["x", "y"] and seen["answer"] == ["1", "2"]


def test_chat_completions():
    rs = RewardSet([RewardSpec("accuracy")])
    comps = [[{"role": "assistant", "content": "<answer>3</answer>"}]]
    assert rs([[{"role": "user", "content": "1+2?"}]], comps, {"answer": ["3"]}).total == [1.0]
