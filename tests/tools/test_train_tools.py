"""Tiny training runs with envs: the calculator, a user's env from a file (its observations
are not trained on: update_tokens excludes them), a hostile one (the run finishes), and
one-line recipe errors."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from tools_fixtures import ROOT, tiny_dir  # noqa: F401

from grpo.config import ConfigError, load_config
from grpo.train.trainer import train

HERE = Path(__file__).parent


def recipe(tmp_path, tiny_dir, env: str, *extra) -> list[str]:
    return [f"model.path={tiny_dir}", "data.source=builtin:arithmetic", "data.num_samples=32",
            "data.template=r1_zero_tiny", "rollout.engine=hf", "rollout.n=4", "rollout.max_new_tokens=32",
            "rollout.max_total_tokens=96", "rollout.max_turns=3", f"rollout.env={{name: '{env}'}}",
            "train.steps=2", "train.prompts_per_step=2", "train.micro_batch_size=8", "train.threads=1",
            "train.warmup_steps=0", f"output.dir={tmp_path}", "output.name=t", "output.save_every=100",
            "output.tensorboard=false", *extra]


def run(tmp_path, overrides) -> list[dict]:
    cfg = load_config(None, overrides)
    out = train(cfg, overwrite=True)
    return [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]


def test_calculator_run_logs_tool_metrics(tmp_path, tiny_dir):
    rows = run(tmp_path, recipe(tmp_path, tiny_dir, "calculator", "rewards=[{name: math_accuracy}]"))
    assert len(rows) == 2
    for r in rows:
        for k in ("tool/calls_per_completion", "tool/error_rate", "tool/time", "tool/turns", "time/tools"):
            assert isinstance(r[k], (int, float)), k
        assert r["tool/turns"] >= 1


def test_user_env_from_a_file_and_its_observations_carry_no_loss(tmp_path, tiny_dir):
    rows = run(tmp_path, recipe(tmp_path, tiny_dir, f"{HERE / 'hint_env.py'}:Hint",
                                "rewards=[{name: math_accuracy}, {name: env_reward, weight: 0.5}]"))
    N, hint = 8, len("<result>7</result>")                                # the tiny tokenizer: 1 char, 1 token
    for r in rows:
        calls = round(r["tool/calls_per_completion"] * N)
        assert calls > 0
        total = round(r["completion_len/mean"] * N)
        assert r["update_tokens"] == total - calls * hint                 # sampled tokens only
        assert r["reward/env_reward/mean"] == pytest.approx(0.5 * calls / N)


def test_a_run_whose_tool_calls_are_all_hostile_finishes(tmp_path, tiny_dir):
    rows = run(tmp_path, recipe(tmp_path, tiny_dir, f"{HERE / 'hostile_env.py'}:Hostile",
                                "rewards=[{name: math_accuracy}]", "rollout.n=8", "rollout.max_total_tokens=400"))
    assert len(rows) == 2
    for r in rows:                     # 16 episodes a step, nearly all calling; all calls fail
        assert r["tool/calls_per_completion"] >= 0.5 and r["tool/error_rate"] >= 0.85, r
    texts = [json.loads(ln)["completion"] for ln in (tmp_path / "t" / "samples" / "step-1.jsonl").read_text().splitlines()]
    seen = "\n".join(texts)
    for what in ("error: killed", "error: timed out", "error: output too large", "error: out of memory"):
        assert what in seen, what      # the fork bomb, the loop, 100 MB, 8 GiB: each an observation
    assert "root:" not in seen and max(len(t) for t in texts) < 2000


@pytest.mark.parametrize("env, msg", [
    ("calculater", "unknown env 'calculater'; did you mean 'calculator'?"),
    ("nowhere/env.py:Env", "file 'nowhere/env.py' not found"),
    (f"{HERE / 'hint_env.py'}:Nope", "has no class 'Nope'"),
    ("grpo.nope_module:X", "cannot import module 'grpo.nope_module'"),
])
def test_bad_env_specs_are_one_line_errors(tmp_path, tiny_dir, env, msg):
    from grpo.train.trainer import Trainer
    with pytest.raises(ConfigError, match=msg.replace("(", r"\(").replace("?", r"\?")):
        Trainer(load_config(None, recipe(tmp_path, tiny_dir, env)), overwrite=True)


def test_cli_reports_bad_env_kwargs_in_one_line(tmp_path, tiny_dir):
    """One subprocess (the in-process recipe errors are in test_envs.py)."""
    y = tmp_path / "r.yaml"
    y.write_text(f"model: {{path: {tiny_dir}}}\ndata: {{source: 'builtin:arithmetic'}}\n")
    sets = [*recipe(tmp_path, tiny_dir, "calculator"), "rollout.env.kwargs={colour: red}"]
    p = subprocess.run([sys.executable, "-m", "grpo.cli", "train", str(y), *sum((["--set", s] for s in sets), [])],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert p.returncode != 0 and "unexpected keyword argument 'colour'" in p.stderr, p.stderr[-2000:]
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) <= 3, p.stderr[-2000:]
