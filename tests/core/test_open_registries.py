"""A recipe names its own advantage / policy loss / aggregation by file.py:fn; rewards get trainer_state."""
import json
from pathlib import Path

import pytest
import torch

from grpo.config import ConfigError, load_config
from grpo.run.metrics import read_metrics
from grpo.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[2]

USER = '''
import json, torch
LOG = {log!r}

def my_advantage(rewards, group_size):
    """Reward minus the group's max: every sample but the best is pushed down."""
    r = rewards.view(-1, group_size)
    out = (r - r.max(1, keepdim=True).values).view(-1)
    with open(LOG, "a") as fh:
        fh.write(json.dumps({{"fn": "advantage", "n": len(rewards), "out": out.tolist()}}) + "\\n")
    return out

def my_loss(logp, old_logp, adv, mask, clip_low, clip_high):
    with open(LOG, "a") as fh:
        fh.write(json.dumps({{"fn": "loss", "shape": list(logp.shape)}}) + "\\n")
    return -adv.unsqueeze(-1) * logp, {{"clip_low": torch.zeros_like(mask, dtype=torch.bool),
                                       "clip_high": torch.zeros_like(mask, dtype=torch.bool)}}

def my_agg(loss, mask, n_tokens, n_seqs, constant):
    return (loss * mask).sum() / max(n_tokens, 1)

def lengthy(prompts, completions, trainer_state, **kw):
    """Scores the schedule itself: step / total_steps, the same for every completion."""
    with open(LOG, "a") as fh:
        fh.write(json.dumps({{"fn": "reward", "step": trainer_state.step, "total": trainer_state.total_steps,
                             "trl": [trainer_state.global_step, trainer_state.max_steps]}}) + "\\n")
    return [trainer_state.progress] * len(completions)
'''


def _cfg(tmp_path, *extra, steps=2):
    return load_config(ROOT / "recipes/tiny/r1_zero.yaml", [
        f"model.path={ROOT / 'data/tiny_model'}", f"output.dir={tmp_path}", "output.name=reg",
        f"train.steps={steps}", "train.prompts_per_step=2", "rollout.n=4", "rollout.max_new_tokens=24",
        "output.tensorboard=false", "data.num_samples=16", "algorithm.track_kl=false", *extra])


@pytest.fixture
def user_file(tmp_path):
    log = tmp_path / "calls.jsonl"
    f = tmp_path / "my_algos.py"
    f.write_text(USER.format(log=str(log)))
    return f, log


def test_recipe_uses_a_users_advantage_loss_and_aggregation(tmp_path, user_file):
    f, log = user_file
    run = Trainer(_cfg(tmp_path, f"algorithm.advantage={f}:my_advantage", f"algorithm.policy_loss={f}:my_loss",
                       f"algorithm.loss_agg={f}:my_agg")).train()
    calls = [json.loads(x) for x in log.read_text().splitlines()]
    advs = [c for c in calls if c["fn"] == "advantage"]
    assert len(advs) == 2 and all(c["n"] == 8 and max(c["out"]) == 0.0 for c in advs)
    # A step whose advantages are all zero has nothing to learn and skips its update (no loss call).
    learnable = sum(any(v != 0 for v in c["out"]) for c in advs)
    assert sum(c["fn"] == "loss" for c in calls) >= learnable >= 1
    rows = read_metrics(run)
    assert len(rows) == 2 and sum(r["update_skipped"] == 0 for r in rows) == learnable
    assert all(r["update_tokens"] > 0 for r in rows if not r["update_skipped"])


def test_reward_gets_trainer_state(tmp_path, user_file):
    f, log = user_file
    run = Trainer(_cfg(tmp_path, f"rewards=[{{name: '{f}:lengthy'}}]", steps=3)).train()
    calls = [json.loads(x) for x in log.read_text().splitlines() if '"reward"' in x]
    assert [(c["step"], c["total"]) for c in calls] == [(0, 3), (1, 3), (2, 3)]
    assert calls[1]["trl"] == [1, 3]
    rows = read_metrics(run)
    assert [round(r["reward/mean"], 4) for r in rows] == [0.0, 0.3333, 0.6667]   # not 0 with a TypeError
    errs = [k for k in rows[0] if k.startswith("reward/") and k.endswith("/errors")]
    assert errs and all(r[k] == 0 for r in rows for k in errs)


@pytest.mark.parametrize("key,value,msg", [
    ("algorithm.advantage", "grpoo", "did you mean 'grpo'"),
    ("algorithm.policy_loss", "ppo", "unknown policy loss 'ppo'"),
    ("algorithm.loss_agg", "missing_file.py:agg", "not found"),
    ("algorithm.kl_estimator", "k4", "unknown KL estimator"),
    ("algorithm.policy_loss", "grpo.algos.losses:nope", "no function 'nope'"),
])
def test_bad_names_are_one_line_config_errors(key, value, msg):
    with pytest.raises(ConfigError, match=msg) as e:
        load_config(None, [f"{key}={value}"])
    assert "\n" not in str(e.value) and key in str(e.value)


def test_a_file_that_does_not_import_is_one_line(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import no_such_module_xyz\n")
    with pytest.raises(ConfigError, match="failed to import: ModuleNotFoundError") as e:
        load_config(None, [f"algorithm.advantage={bad}:f"])
    assert "\n" not in str(e.value)
