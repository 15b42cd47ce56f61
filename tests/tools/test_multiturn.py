"""The turn loop (grpo/rollout/multiturn.py) with a scripted engine: trajectory ids, loss
mask, text, the turn and token budgets, env failures."""
import pytest
from tools_fixtures import ScriptedEngine, tiny_dir, tiny_tok  # noqa: F401

from grpo.envs import Env
from grpo.envs.calculator import Calculator
from grpo.envs.python_tool import PythonTool
from grpo.rollout.base import SamplingParams
from grpo.rollout.multiturn import MultiTurnEngine, with_rows

ROW = {"prompt": "3+7+2", "answer": "12"}


def run(tok, turns, env=Calculator, n=2, prompts=1, max_new=64, **kw):
    eng = ScriptedEngine(tok, turns)
    mt = MultiTurnEngine(eng, env, tok, render=lambda q: f"Q: {q}\n", **kw)
    groups = mt.generate(with_rows([f"Q: {ROW['prompt']}\n"] * prompts, [ROW] * prompts),
                         SamplingParams(n=n, max_new_tokens=max_new))
    return eng, mt, groups


def enc(tok, s):
    return tok(s, add_special_tokens=False).input_ids


def test_calculator_episode_is_exactly_turns_and_observations(tiny_tok):
    t1, t2 = " <think><calc>3+7+2</calc>", "</think> <answer>12</answer>"
    eng, mt, groups = run(tiny_tok, [t1, t2], max_turns=4, max_total_tokens=200)
    obs = "<result>12</result>"
    for c in groups[0].completions:
        assert c.text == t1 + obs + t2
        assert c.token_ids == enc(tiny_tok, t1) + enc(tiny_tok, obs) + enc(tiny_tok, t2)
        assert c.loss_mask == [1] * len(enc(tiny_tok, t1)) + [0] * len(enc(tiny_tok, obs)) + [1] * len(enc(tiny_tok, t2))
        assert c.logprobs == [-0.5 if m else 0.0 for m in c.loss_mask]
        assert (c.tools.calls, c.tools.errors, c.tools.turns, c.tools.ended) == (1, 0, 2, "done")
        assert c.finish_reason == "stop"
    # The second turn continued from exactly prompt ids + turn-1 ids + observation ids.
    p = groups[0].prompt_ids
    assert eng.calls == [[p + enc(tiny_tok, t1) + enc(tiny_tok, obs)] * 2]


def test_calculator_errors_are_observations_and_counted(tiny_tok):
    turns = ["<calc>1+x</calc>", "<calc>7/2</calc>", "<calc>2*(3+4)</calc>", "<answer>14</answer>"]
    _, _, groups = run(tiny_tok, turns, max_turns=8, max_total_tokens=400)
    c = groups[0].completions[0]
    assert "<result>error: character 'x' not allowed" in c.text and "<result>error: 7/2 is not an integer" in c.text
    assert "<result>14</result><answer>14</answer>" in c.text
    assert (c.tools.calls, c.tools.errors, c.tools.turns) == (3, 2, 4)


def test_max_turns_ends_the_episode(tiny_tok):
    _, _, groups = run(tiny_tok, ["<calc>1+1</calc>"], max_turns=3, max_total_tokens=1000)
    for c in groups[0].completions:
        assert c.tools.turns == 3 and c.tools.ended == "turns" and c.finish_reason == "length"
        assert c.text == "<calc>1+1</calc><result>2</result>" * 2 + "<calc>1+1</calc>"   # no answer read
        assert sum(c.loss_mask) == 3 * len(enc(tiny_tok, "<calc>1+1</calc>"))


@pytest.mark.parametrize("budget", [20, 25, 37, 60])
def test_token_budget_ends_the_episode_and_cuts_what_overflows(tiny_tok, budget):
    turn = "<calc>1+1</calc>"                     # 16 tokens; its observation 18
    _, _, groups = run(tiny_tok, [turn], max_turns=50, max_total_tokens=budget, max_new=16)
    for c in groups[0].completions:
        assert len(c.token_ids) == budget and len(c.loss_mask) == budget
        assert c.tools.ended == "tokens" and c.finish_reason == "length"
        assert c.text == tiny_tok.decode(c.token_ids, skip_special_tokens=True)


def test_per_turn_cap_is_min_of_max_new_tokens_and_what_is_left(tiny_tok):
    eng, _, groups = run(tiny_tok, ["<calc>1+1</calc>", "x" * 40], max_turns=5, max_total_tokens=50, max_new=30)
    c = groups[0].completions[0]
    assert len(c.token_ids) == 50 and c.loss_mask[-16:] == [1] * 16   # 16 + 18 + 16 left of 30
    assert c.tools.ended == "tokens"


class Boom(Env):
    stop = ["</calc>"]

    def step(self, action):
        raise RuntimeError("env bug")


class Bad(Env):
    stop = ["</calc>"]

    def step(self, action):
        return 42, float("nan"), False


@pytest.mark.parametrize("env", [Boom, Bad])
def test_an_env_that_raises_or_returns_garbage_ends_its_episode_counted(tiny_tok, env):
    logged = []
    _, _, groups = run(tiny_tok, ["<calc>1</calc>"], env=env, max_turns=3, max_total_tokens=100, log=logged.append)
    for c in groups[0].completions:
        assert c.tools.env_failures == 1 and c.tools.errors == 1 and c.tools.ended == "env_error"
        assert c.text == "<calc>1</calc>"
    assert len(logged) == 2 and "env.step raised" in logged[0]


class Counting(Env):
    """No tool: answers each turn with the number of the turn; done after 2."""

    def __init__(self, bonus: float = 0.25):
        super().__init__()
        self.n, self.bonus = 0, bonus

    def reset(self, row):
        return row["prompt"] + " (count)"

    def step(self, action):
        self.n += 1
        return (f"[{self.n}]", self.bonus, False) if self.n < 2 else (None, 1.0, True)


def test_reset_sets_the_group_prompt_and_env_rewards_sum(tiny_tok):
    _, _, groups = run(tiny_tok, ["a", "b"], env=Counting, max_turns=5, max_total_tokens=100)
    assert groups[0].prompt == "Q: 3+7+2 (count)\n"
    c = groups[0].completions[0]
    assert c.text == "a[1]b" and c.tools.reward == 1.25 and c.tools.calls == 0   # an Env's own counter


def test_reset_must_agree_across_a_group(tiny_tok):
    import itertools
    counter = itertools.count()

    class Random(Env):
        def reset(self, row):
            return f"q{next(counter)}"
    with pytest.raises(ValueError, match="share one prompt"):
        run(tiny_tok, ["a"], env=Random, max_turns=2)


def test_python_tool_block_then_output_block(tiny_tok):
    t1 = "Let me compute.\n```python\nprint(6*7)\n```\n"
    _, _, groups = run(tiny_tok, [t1, "<answer>42</answer>"], env=PythonTool, n=3, max_turns=4,
                       max_total_tokens=400)
    for c in groups[0].completions:
        assert c.text == t1 + "```output\n42\n```\n" + "<answer>42</answer>"
        assert (c.tools.calls, c.tools.errors, c.tools.turns) == (1, 0, 2)
        assert c.tools.time_s > 0


def test_engines_without_generate_ids_are_refused(tiny_tok):
    class Plain:
        def generate(self, prompts, sp):
            return []
    with pytest.raises(ValueError, match="continues from token ids"):
        MultiTurnEngine(Plain(), Calculator, tiny_tok)


def test_attributes_reach_the_wrapped_engine(tiny_tok):
    eng = ScriptedEngine(tiny_tok, ["a"])
    mt = MultiTurnEngine(eng, Calculator, tiny_tok)
    mt.return_logprobs = True
    assert eng.return_logprobs is True and mt.turns == ["a"]


def test_tool_output_cannot_inject_control_tokens(tiny_tok):
    specials = {tiny_tok.eos_token_id, tiny_tok.pad_token_id, tiny_tok.bos_token_id}
    t1 = "```python\nprint('</s><pad><s> done')\n```\n"
    _, _, groups = run(tiny_tok, [t1, "<answer>1</answer>"], env=PythonTool, max_turns=3, max_total_tokens=400)
    c = groups[0].completions[0]
    obs = [t for t, m in zip(c.token_ids, c.loss_mask) if m == 0]
    assert obs and not specials & set(obs)            # printed as text, not as EOS / pad / BOS
    assert "done" in c.text and c.tools.turns == 2
