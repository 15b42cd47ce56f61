"""train.schedule: the lr after warm-up (grpo/train/optim.py), one step of it per optimizer step."""
from pathlib import Path

import pytest

from grpo.train import trainer as trainer_mod
from grpo.config import ConfigError, load_config
from grpo.run.metrics import read_metrics
from grpo.train.optim import lr_factor
from grpo.train.trainer import train

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "tiny" / "r1_zero.yaml"


def test_linear_decay_counts_mu_optimizer_steps_per_train_step(tiny_overrides):
    run = train(load_config(RECIPE, tiny_overrides + [
        "train.steps=4", "train.warmup_steps=1", "train.lr=7e-4", "train.schedule=linear", "algorithm.mu=2"]))
    # 8 optimizer steps; the logged lr is that of each train step's last one (s = 1, 3, 5, 7):
    # 1 - (s - 1) / 7 after one warm-up step.
    assert [r["lr"] for r in read_metrics(run)] == pytest.approx([7e-4, 5e-4, 3e-4, 1e-4])


def test_cosine_ends_near_zero_and_never_rises():
    f = [lr_factor(s, 100, 10, "cosine") for s in range(100)]
    assert f[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert all(a >= b for a, b in zip(f[9:], f[10:])) and 0 < f[-1] < 1e-3


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_decayed_schedule_resumes_where_it_stopped(tiny_overrides, tmp_path, monkeypatch, schedule):
    sets = tiny_overrides + ["train.steps=4", "train.lr=4e-4", "train.warmup_steps=0", f"train.schedule={schedule}", "output.save_every=2"]
    full = train(load_config(RECIPE, sets + ["output.name=full"]))
    real = trainer_mod.Trainer.step

    def crash_at_3(self, step):
        if step == 2:                        # 0-based: the third step, after step 2's checkpoint
            raise RuntimeError("crash")
        return real(self, step)
    monkeypatch.setattr(trainer_mod.Trainer, "step", crash_at_3)
    with pytest.raises(RuntimeError):
        train(load_config(RECIPE, sets + ["output.name=part"]))
    monkeypatch.setattr(trainer_mod.Trainer, "step", real)
    part = train(load_config(RECIPE, sets + ["output.name=part"]), resume=True)
    lrs = [r["lr"] for r in read_metrics(full)]
    assert [r["lr"] for r in read_metrics(part)] == pytest.approx(lrs)
    assert lrs[-1] < max(lrs)                # it decayed


def test_unknown_schedule_is_a_config_error(tiny_overrides):
    with pytest.raises(ConfigError, match="schedule"):
        load_config(RECIPE, tiny_overrides + ["train.schedule=cosin"])
