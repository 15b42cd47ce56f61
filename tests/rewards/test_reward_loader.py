import functools
import textwrap

import pytest

import rewards
from rewards import REGISTRY, RewardLoadError, load, register, required_columns


def test_builtins_registered():
    for name in ["math_accuracy", "accuracy", "think_format", "think_format_soft", "language_consistency",
                 "countdown", "overlong_penalty", "cosine_length", "code_tests"]:
        assert name in REGISTRY, name
    assert REGISTRY["accuracy"] is REGISTRY["math_accuracy"]


def test_load_registry_name():
    assert load("math_accuracy") is rewards.math.math_accuracy
    assert load("  think_format ") is rewards.think.think_format


def test_load_module_path():
    assert load("rewards.countdown:countdown") is rewards.countdown.countdown
    assert load("rewards.math:verify") is rewards.math.verify


def test_load_user_file(tmp_path):
    f = tmp_path / "my_rewards.py"
    f.write_text(textwrap.dedent("""
        def short(prompts, completions, **kw):
            return [1.0 if len(c) < 5 else 0.0 for c in completions]
    """))
    fn = load(f"{f}:short")
    assert fn(["p", "p"], ["abc", "abcdef"]) == [1.0, 0.0]
    assert fn.__name__ == "short"
    # Loading twice gives a working function again (same module name, re-executed).
    assert load(f"{f}:short")(["p"], ["a"]) == [1.0]


def test_user_file_can_register(tmp_path):
    f = tmp_path / "reg.py"
    f.write_text("from rewards import register\n"
                 "@register('test_user_registered')\n"
                 "def r(prompts, completions, **kw):\n    return [0.5] * len(completions)\n")
    try:
        load(f"{f}:r")
        assert load("test_user_registered")(["p"], ["c"]) == [0.5]
    finally:
        REGISTRY.pop("test_user_registered", None)


def test_unknown_name_suggests():
    with pytest.raises(RewardLoadError) as e:
        load("math_acc")
    msg = str(e.value)
    assert msg.startswith("unknown reward 'math_acc'; did you mean 'math_accuracy'? (known: ")
    assert "think_format" in msg and "\n" not in msg
    assert isinstance(e.value, ValueError)


def test_unknown_name_without_close_match():
    with pytest.raises(RewardLoadError, match=r"^unknown reward 'zzzzqqq' \(known: "):
        load("zzzzqqq")


def test_missing_file(tmp_path):
    with pytest.raises(RewardLoadError, match="reward file '.*nope.py' not found") as e:
        load(f"{tmp_path}/nope.py:fn")
    assert "\n" not in str(e.value)


def test_missing_function_in_file(tmp_path):
    f = tmp_path / "r.py"
    f.write_text("def shorty(prompts, completions, **kw):\n    return []\n")
    with pytest.raises(RewardLoadError, match=r"has no function 'short'; did you mean 'shorty'\?"):
        load(f"{f}:short")


def test_file_with_syntax_error(tmp_path):
    f = tmp_path / "bad.py"
    f.write_text("def f(:\n")
    with pytest.raises(RewardLoadError, match="failed to import: SyntaxError"):
        load(f"{f}:f")


def test_missing_module_and_attribute():
    with pytest.raises(RewardLoadError, match="cannot import module 'no_such_pkg.mod'"):
        load("no_such_pkg.mod:fn")
    with pytest.raises(RewardLoadError, match="module 'rewards.math' has no function 'nope'"):
        load("rewards.math:nope")
    with pytest.raises(RewardLoadError, match="not a function"):
        load("rewards.math:DEFAULT_TIMEOUT_S")


def test_empty_spec():
    with pytest.raises(RewardLoadError):
        load("")


def test_required_columns():
    def f(prompts, completions, answer, tests, k=1, *args, **kw):
        return []

    assert required_columns(f) == {"answer", "tests"}
    assert required_columns(functools.partial(f, answer="x")) == {"tests"}
    assert required_columns(REGISTRY["math_accuracy"]) == {"answer"}
    assert required_columns(REGISTRY["countdown"]) == {"target", "numbers"}
    assert required_columns(REGISTRY["think_format"]) == set()
    assert required_columns(REGISTRY["language_consistency"]) == set()


def test_register_decorator_returns_fn():
    @register("test_tmp_reward")
    def r(prompts, completions, **kw):
        return [1.0] * len(completions)

    try:
        assert REGISTRY["test_tmp_reward"] is r and r(["p"], ["c"]) == [1.0]
    finally:
        del REGISTRY["test_tmp_reward"]
