"""The built-in envs' own contracts and hostile inputs, the loader, and the docs' example env."""
import re
from pathlib import Path

import pytest

from grpo.config import ConfigError
from grpo.envs import load_env, make_env_factory
from grpo.envs.calculator import CalcError, Calculator, evaluate

DOCS = Path(__file__).resolve().parents[2] / "docs" / "TOOLS.md"


@pytest.mark.parametrize("expr, value", [("3+7+2", 12), (" 2 * (3 + 4) ", 14), ("-(-(-1))", -1),
                                         ("100/4/5", 5), ("1/3*3", 1), ("9" * 100 + "*" + "9" * 99, int("9" * 100) * int("9" * 99))])
def test_calculator_values(expr, value):
    assert evaluate(expr) == value


@pytest.mark.parametrize("expr, why", [
    ("1/0", "division by zero"), ("7/2", "not an integer"), ("2**10", "not an arithmetic"),
    ("0x10", "'x' not allowed"), ("1_000", "'_' not allowed"), ("\u0661+1", "not allowed"),
    ("__import__('os')", "not allowed"), ("1e5", "'e' not allowed"), ("01", "syntax error"),
    ("", "empty"), ("   ", "empty"), ("(" * 150 + "1" + ")" * 150, "nested|syntax|longer"),
    ("1" * 201, "longer than 200"), ("1+", "syntax error"), ("()", "syntax|not an arithmetic"),
    ("9//2", "syntax error|not an arithmetic"), ("1 2", "syntax error"),
])
def test_calculator_refuses_hostile_and_bad_expressions(expr, why):
    with pytest.raises(CalcError, match=why):
        evaluate(expr)


def test_calculator_step_contract():
    c = Calculator()
    assert c.stop == ["</calc>"]
    assert c.step("<answer>3</answer>") == (None, 0.0, True)
    assert c.step("text</calc>")[0] == "<result>error: </calc> without <calc></result>"
    assert c.step("<calc>1</calc> <calc>2+2</calc>")[0] == "<result>4</result>"        # the last call
    assert (c.calls, c.errors) == (2, 1)
    t = Calculator(open="[[", close="]]")
    assert t.stop == ["]]"] and t.step("[[6*7]]")[0] == "<result>42</result>"
    with pytest.raises(ValueError):
        Calculator(close="")


def test_factory_checks_kwargs_and_interface(tmp_path):
    from grpo.config import EnvConfig
    with pytest.raises(ConfigError, match="unexpected keyword argument 'nope'"):
        make_env_factory(EnvConfig(name="calculator", kwargs={"nope": 1}))
    f = tmp_path / "e.py"
    f.write_text("class NoStep:\n    def reset(self, row): return 'q'\n"
                 "class BadStop:\n    stop = '</x>'\n    def reset(self, row): return 'q'\n    def step(self, a): pass\n"
                 "raise_me = 1\n")
    with pytest.raises(ConfigError, match="has no step"):
        make_env_factory(EnvConfig(name=f"{f}:NoStep"))
    with pytest.raises(ConfigError, match="env.stop must be a list of strings"):
        make_env_factory(EnvConfig(name=f"{f}:BadStop"))
    with pytest.raises(ConfigError, match="is not a class name"):
        load_env(f"{f}:1bad")
    bad = tmp_path / "broken.py"
    bad.write_text("import nonexistent_module_xyz\n")
    with pytest.raises(ConfigError, match="failed to import: ModuleNotFoundError"):
        load_env(f"{bad}:X")


def test_the_docs_example_env_works(tmp_path):
    code = re.search(r"```python\n(# my_env.py.*?)```", DOCS.read_text(), re.DOTALL).group(1)
    (tmp_path / "my_env.py").write_text(code)
    env = load_env(f"{tmp_path / 'my_env.py'}:Guess")(secret=7)
    assert env.reset({"prompt": "guess"}) == "guess"
    assert env.step("<guess>3</guess>") == ("<hint>higher</hint>", 0.0, False)
    assert env.step("<guess>x</guess>") == ("<hint>not a number</hint>", 0.0, False)
    assert env.step("<guess>7</guess>") == ("<hint>yes</hint>", 1.0, True)
    assert env.step("I give up") == (None, 0.0, True)
    assert (env.calls, env.errors) == (3, 1)


def test_python_tool_persistent_carries_names_not_output():
    from grpo.envs.python_tool import PythonTool
    blk = lambda code: f"```python\n{code}\n```\n"  # noqa: E731
    e = PythonTool(persistent=True)
    assert e.step(blk("x = 6\nprint('hi')"))[0] == "```output\nhi\n```\n"
    assert e.step(blk("print(x * 7)"))[0] == "```output\n42\n```\n"          # 'hi' not printed again
    assert "line 2: ZeroDivisionError" in e.step(blk("y = 1\nz = 1 / 0"))[0]  # the block's own line
    assert e.step(blk("print('y' in dir())"))[0] == "```output\nFalse\n```\n"  # a failed block is not kept
    fresh = PythonTool()
    fresh.step(blk("x = 6"))
    assert "NameError" in fresh.step(blk("print(x)"))[0]


@pytest.mark.parametrize("sets, msg", [
    (["rollout.env={name: calculator}", "rollout.engine=server"], "server engine cannot continue"),
    (["rollout.max_turns=3"], "max_turns > 1 needs rollout.env"),
    (["rollout.env={name: calculator}", "rollout.max_new_tokens=64", "rollout.max_total_tokens=32"], "below"),
    (["rollout.env={name: calculator, workers: 0}"], "rollout.env.workers"),
    (["rollout.env={nmae: calculator}"], "did you mean 'rollout.env.name'"),
])
def test_recipe_errors(sets, msg):
    from grpo.config import load_config
    with pytest.raises(ConfigError, match=msg.replace("(", r"\(")):
        load_config(None, sets)


def test_episode_budget_defaults_to_max_new_tokens():
    from grpo.config import load_config
    r = load_config(None, ["rollout.env={name: calculator}", "rollout.max_new_tokens=40"]).rollout
    assert (r.max_turns, r.episode_tokens) == (1, 40)
    assert load_config(None, ["rollout.max_total_tokens=300"]).rollout.episode_tokens == 300
