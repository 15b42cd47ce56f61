"""Hostile rewards: non-finite values, hangs, sys.exit, wrong signatures, failing on every sample."""
import math
import sys
import time

import pytest

from rewards import REGISTRY, FailureStreak, RewardError, RewardSet, RewardSpec, register


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


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan, "inf", 1e309, 1e39, -4e38])
def test_non_finite_reward_is_a_counted_failure(temp_rewards, bad):
    temp_rewards("t_inf", lambda prompts, completions, **kw: [1.0, bad, 0.5])
    out = RewardSet([RewardSpec("t_inf"), RewardSpec("think_format", 0.1)])(["p"] * 3, ["a", "b", "c"], {})
    assert out.per_fn["t_inf"] == [1.0, None, 0.5]
    assert all(math.isfinite(t) for t in out.total)
    assert out.metrics["reward/t_inf/nonfinite"] == 1.0 and out.metrics["reward/t_inf/errors"] == 1.0
    assert out.errors[0]["index"] == 1 and "non-finite" in out.errors[0]["error"]


def test_non_finite_in_per_sample_retry_is_counted(temp_rewards):
    def f(prompts, completions, **kw):
        if len(completions) > 1:
            raise ValueError("batch broken")
        return [math.inf if completions[0] == "b" else 1.0]
    temp_rewards("t_inf1", f)
    out = RewardSet([RewardSpec("t_inf1")])(["p"] * 3, ["a", "b", "c"], {})
    assert out.per_fn["t_inf1"] == [1.0, None, 1.0]
    assert [e["index"] for e in out.errors] == [1]


def test_hung_reward_costs_one_budget_per_step(temp_rewards):
    temp_rewards("t_hang", lambda prompts, completions, **kw: time.sleep(30) or [1.0] * len(completions))
    rs = RewardSet([RewardSpec("t_hang")], timeout_s=0.3)
    t0 = time.monotonic()
    out = rs(["p"] * 32, ["x"] * 32, {})
    dt = time.monotonic() - t0
    assert dt < 4.0, dt                      # one 0.3 s budget (+ a loaded box); (32 + 1) x 0.3 s = 9.9 s before
    assert out.per_fn["t_hang"] == [None] * 32 and len(out.errors) == 32
    assert all("Timeout" in e["error"] for e in out.errors)


def test_quick_failure_is_isolated_within_the_budget_and_a_late_hang_fails_the_rest_once(temp_rewards):
    def f(prompts, completions, **kw):
        if len(completions) > 1:
            raise ValueError("batch broken")        # quick: the retries still have the budget
        if completions[0] == "hang":
            time.sleep(5)
        return [1.0]
    temp_rewards("t_slow", f)
    t0 = time.monotonic()
    out = RewardSet([RewardSpec("t_slow")], timeout_s=0.5)(["p"] * 4, ["a", "b", "hang", "c"], {})
    assert time.monotonic() - t0 < 2.0
    assert out.per_fn["t_slow"] == [1.0, 1.0, None, None]
    assert [e["index"] for e in out.errors] == [2, 3]


@pytest.mark.parametrize("exc", [lambda: sys.exit(3), lambda: sys.exit(), lambda: (_ for _ in ()).throw(KeyboardInterrupt)])
def test_sys_exit_in_a_reward_is_a_failure_not_the_end(temp_rewards, exc):
    def f(prompts, completions, **kw):
        exc()
    temp_rewards("t_exit", f)
    out = RewardSet([RewardSpec("t_exit")])(["p"] * 2, ["a", "b"], {})
    assert out.per_fn["t_exit"] == [None, None]
    assert "reward called" in out.errors[0]["error"]


def test_wrong_signature_refused_at_start(temp_rewards):
    temp_rewards("t_sig", lambda completions: [1.0] * len(completions))
    rs = RewardSet([RewardSpec("t_sig")])
    with pytest.raises(RewardError, match="cannot be called as fn"):
        rs.check_signatures({"prompt", "answer"})
    RewardSet([RewardSpec("math_accuracy")]).check_signatures({"prompt", "answer"})


def test_failure_streak_stops_after_k_all_failed_steps():
    fs = FailureStreak(3)
    all_fail = [{"reward": "r", "index": i, "error": "ZeroDivisionError: x", "completion": "c"} for i in range(4)]
    partial = all_fail[:2]
    assert fs.update(["r"], all_fail, 4)[0]["failed"] == 4
    assert fs.update(["r"], all_fail, 4)
    assert fs.update(["r"], partial, 4)[0]["failed"] == 2      # streak broken
    assert fs.update(["r"], [], 4) == []
    fs.update(["r"], all_fail, 4)
    fs.update(["r"], all_fail, 4)
    with pytest.raises(RewardError, match="failed on every sample for 3 steps in a row; first error: ZeroDivisionError"):
        fs.update(["r"], all_fail, 4)
    FailureStreak(0).update(["r"], all_fail, 4)                 # 0: never stops


def test_a_reward_spinning_in_python_is_stopped_after_its_budget(temp_rewards):
    import threading

    def spin(prompts, completions, **kw):
        while True:
            pass
    temp_rewards("t_spin", spin)
    before = threading.active_count()
    out = RewardSet([RewardSpec("t_spin")], timeout_s=0.2)(["p"] * 4, ["x"] * 4, {})
    assert out.per_fn["t_spin"] == [None] * 4
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() == before          # the abandoned thread stopped
