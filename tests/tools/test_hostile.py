"""Hostile tool calls (fork bomb, infinite loop, 100 MB of output, reading /etc/passwd,
the network, killing the trainer, 8 GB of memory) end their turn with a short error
observation, concurrently, and the episodes (and this process) go on."""
import os
import time

import pytest
from hostile_env import ATTACKS, Hostile
from tools_fixtures import ScriptedEngine, tiny_dir, tiny_tok  # noqa: F401

import sandbox
from grpo.envs.python_tool import PythonTool
from grpo.rollout.base import SamplingParams
from grpo.rollout.multiturn import MultiTurnEngine, with_rows


@pytest.fixture(scope="module")
def episodes(tiny_tok):
    import hostile_env
    hostile_env._count = __import__("itertools").count()
    eng = ScriptedEngine(tiny_tok, ["let me run it", "<answer>1</answer>"])
    mt = MultiTurnEngine(eng, Hostile, tiny_tok, max_turns=3, max_total_tokens=2000, workers=16)
    t0 = time.time()
    groups = mt.generate(with_rows(["q"] * 2, [{"prompt": "q"}] * 2), SamplingParams(n=len(ATTACKS), max_new_tokens=64))
    return [c for g in groups for c in g.completions], time.time() - t0, mt.tool_wall


def test_each_attack_is_an_error_observation_and_the_episode_goes_on(episodes, tiny_tok):
    comps, _, _ = episodes
    assert len(comps) == 2 * len(ATTACKS)
    for i, c in enumerate(comps):
        name = list(ATTACKS)[i % len(ATTACKS)]
        obs = c.text[len("let me run it"):-len("<answer>1</answer>")]
        assert c.text.endswith("<answer>1</answer>") and c.tools.turns == 2, name
        assert obs.startswith("```output\n") and obs.endswith("\n```\n"), (name, obs[:200])
        assert len(obs) < 700, (name, len(obs))                       # cut, not 100 MB
        assert "root:" not in obs and "connected" not in obs, (name, obs)
        if name != "read_passwd" or sandbox.capabilities()["backend"] != "none":
            assert "error:" in obs and (c.tools.calls, c.tools.errors) == (1, 1), (name, obs)
        assert sum(1 - m for m in c.loss_mask) == len(tiny_tok(obs, add_special_tokens=False).input_ids)


def test_attacks_ran_concurrently_and_the_host_lives(episodes):
    comps, wall, tool_wall = episodes
    serial = sum(c.tools.time_s for c in comps)
    assert os.getpid() > 0                                              # this process was not killed
    assert tool_wall < serial, (tool_wall, serial)                      # 16 calls overlapped
    assert sandbox.run("print(1)", []).stdout == "1\n"                  # the sandbox still works


def test_python_tool_needs_a_complete_block():
    t = PythonTool()
    assert t.step("no code here") == (None, 0.0, True)
    assert t.step("```python\nprint(1)") == (None, 0.0, True)           # unclosed: no call
    obs, _, done = t.step("```python\nprint(1)\n```\n")
    assert obs == "```output\n1\n```\n" and not done
    with pytest.raises(ValueError, match="timeout_s"):
        PythonTool(timeout_s=0)
