"""Fault injection: no non-finite value reaches the weights or a checkpoint; a full disk is one line."""
import errno
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from grpo.run import checkpoint
from grpo.train import trainer as trainer_mod
from grpo.run.checkpoint import CheckpointError
from grpo.config import load_config
from grpo.run.metrics import read_metrics
from grpo.train.trainer import train

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "tiny" / "r1_zero.yaml"


def _finite(ckpt: Path) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in load_file(str(ckpt / "model.safetensors")).values())


def test_inf_reward_is_counted_and_never_reaches_the_weights(tiny_overrides, tmp_path):
    f = tmp_path / "bad_reward.py"
    f.write_text("import math\n"
                 "def inf_first(prompts, completions, **kw):\n"
                 "    return [math.inf] + [-math.inf] + [float('nan')] + [1.0] * (len(completions) - 3)\n")
    cfg = load_config(RECIPE, tiny_overrides + ["train.steps=2", f"rewards=[{{name: math_accuracy}}, {{name: '{f}:inf_first'}}]"])
    run = train(cfg)
    rows = read_metrics(run)
    assert [r["step"] for r in rows] == [1, 2]
    assert all(r["reward/inf_first/nonfinite"] == 3.0 for r in rows)
    assert all(r["reward/mean"] is not None and r["loss"] is not None for r in rows)
    assert _finite(run / "checkpoints" / "step-2")
    errs = [json.loads(ln) for ln in (run / "reward_errors.jsonl").read_text().splitlines()]
    assert [e["step"] for e in errs] == [1, 2] and "non-finite" in errs[0]["error"]   # once per step
    assert errs[0]["failed"] == 3 and "prompt" in errs[0] and "completion" in errs[0]


def test_non_finite_loss_skips_the_optimizer_step(tiny_overrides, tmp_path, monkeypatch):
    real = trainer_mod.A.clipped_surrogate
    calls = {"n": 0}

    def poisoned(*a, **kw):                    # the first step's loss is nan
        calls["n"] += 1
        loss, cm = real(*a, **kw)
        return (loss * float("nan"), cm) if calls["n"] == 1 else (loss, cm)

    monkeypatch.setattr(trainer_mod.A, "clipped_surrogate", poisoned)
    cfg = load_config(RECIPE, tiny_overrides + ["train.steps=2", "train.micro_batch_tokens=null",
                                                "train.micro_batch_size=64", "output.save_every=1"])
    tr = trainer_mod.Trainer(cfg)
    before = {k: v.detach().clone() for k, v in tr.policy.named_parameters()}
    run = tr.train()
    rows = read_metrics(run)
    assert rows[0]["skipped_steps"] == 1 and rows[1]["skipped_steps"] == 0
    step1 = load_file(str(run / "checkpoints" / "step-1" / "model.safetensors"))
    assert all(torch.equal(step1[k], before[k]) for k in step1 if k in before)   # no update happened
    assert _finite(run / "checkpoints" / "step-2")
    assert rows[0]["lr"] == rows[1]["lr"]      # the schedule waited for the skipped step


def _model():
    from transformers import AutoModelForCausalLM, AutoTokenizer
    return AutoModelForCausalLM.from_pretrained(ROOT / "data/tiny_model"), AutoTokenizer.from_pretrained(ROOT / "data/tiny_model")


def _opt(model):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)


def test_checkpoint_with_non_finite_weights_is_never_written(tmp_path):
    model, tok = _model()
    opt, sched = _opt(model)
    root = tmp_path / "ck"
    checkpoint.save(root, 1, model, tok, opt, sched, keep=2)
    with torch.no_grad():
        next(model.parameters())[0, 0] = float("inf")
    with pytest.raises(CheckpointError, match="non-finite"):
        checkpoint.save(root, 2, model, tok, opt, sched, keep=2)
    assert sorted(p.name for p in root.iterdir()) == ["step-1"]


def test_disk_full_during_save_is_one_error_and_leaves_nothing(tmp_path, monkeypatch):
    model, tok = _model()
    opt, sched = _opt(model)
    root = tmp_path / "ck"
    checkpoint.save(root, 1, model, tok, opt, sched, keep=2)

    def full(*a, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(checkpoint.torch, "save", full)
    with pytest.raises(CheckpointError, match="no space left on device") as e:
        checkpoint.save(root, 2, model, tok, opt, sched, keep=2)
    assert "\n" not in str(e.value)
    assert sorted(p.name for p in root.iterdir()) == ["step-1"]          # no .tmp-step-2 left
    assert checkpoint.damage(root / "step-1") is None


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    return r.returncode == 0


def test_real_full_disk_from_the_cli(tiny_overrides, tmp_path):
    """A 5 MiB tmpfs: the metrics fit, the first checkpoint (weights + Adam state ~11 MB) does not."""
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "5m"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        args = [sys.executable, "-m", "grpo.cli", "train", str(RECIPE)]
        for o in tiny_overrides + ["train.steps=2", f"output.dir={disk}"]:
            args += ["--set", o]
        r = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert r.returncode == 2, r.stderr[-2000:]
        lines = [ln for ln in r.stderr.splitlines() if ln.startswith("grpo: error:")]
        assert len(lines) == 1 and "no space left on device" in lines[0], r.stderr[-2000:]
        assert "Traceback" not in r.stderr
        ck = disk / "t" / "checkpoints"
        assert not list(ck.glob(".tmp-step-*")) and not list(ck.glob("step-*"))
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_damaged_latest_checkpoint_falls_back_with_a_warning(tiny_overrides, tmp_path, capsys):
    cfg = load_config(RECIPE, tiny_overrides + ["output.save_every=1", "train.steps=3", "output.keep_checkpoints=3"])
    run = train(cfg)
    ck = run / "checkpoints"
    st = ck / "step-3" / "model.safetensors"
    st.write_bytes(st.read_bytes()[: st.stat().st_size // 2])                 # truncated
    (ck / "step-2" / "trainer_state.json").write_text("{not json")             # unreadable
    assert checkpoint.latest_resumable(ck) == ck / "step-1"
    err = capsys.readouterr().err
    assert "step-3 is damaged (model.safetensors has" in err and "step-2 is damaged" in err
    resumed = load_config(RECIPE, tiny_overrides + ["output.save_every=1", "train.steps=4", "output.keep_checkpoints=3"])
    train(resumed, resume=True)
    assert [r["step"] for r in read_metrics(run)] == [1, 2, 3, 4]


@pytest.mark.parametrize("damage", ["nan_weights", "no_trainer_pt", "garbage_trainer_pt", "old_garbage_config",
                                    "no_weights", "no_state", "empty_dir"])
def test_damage_kinds_are_detected(tmp_path, damage):
    model, tok = _model()
    opt, sched = _opt(model)
    ck = checkpoint.save(tmp_path, 1, model, tok, opt, sched, keep=2)
    if damage == "nan_weights":                  # as written by a run before the non-finite guard
        from safetensors.torch import save_file
        w = load_file(str(ck / "model.safetensors"))
        k = next(iter(w))
        w[k][0] = float("nan")
        save_file(w, str(ck / "model.safetensors"), metadata={"format": "pt"})
        state = json.loads((ck / "trainer_state.json").read_text())
        state["files"]["model.safetensors"] = (ck / "model.safetensors").stat().st_size
        (ck / "trainer_state.json").write_text(json.dumps(state))
    elif damage == "no_trainer_pt":
        (ck / "trainer.pt").unlink()
    elif damage == "old_garbage_config":           # a checkpoint of an older version: no size manifest
        (ck / "trainer_state.json").write_text(json.dumps({"step": 1}))
        (ck / "config.json").write_text("{garbage")
    elif damage == "no_state":
        (ck / "trainer_state.json").unlink()
    elif damage == "empty_dir":
        import shutil
        shutil.rmtree(ck)
        ck.mkdir()
    elif damage == "no_weights":
        (ck / "trainer_state.json").write_text(json.dumps({"step": 1}))
        (ck / "model.safetensors").unlink()
    else:
        size = (ck / "trainer.pt").stat().st_size
        (ck / "trainer.pt").write_bytes(b"\0" * size)
    assert checkpoint.damage(ck) is not None
    with pytest.raises(CheckpointError, match="no intact checkpoint"):
        checkpoint.latest_resumable(tmp_path)


def test_weights_only_checkpoints_keep_the_last_full_one(tiny_overrides, tmp_path):
    cfg = load_config(RECIPE, tiny_overrides + ["output.save_every=1", "train.steps=5", "output.keep_checkpoints=2",
                                                "output.full_checkpoint_every=2"])
    run = train(cfg)
    ck = run / "checkpoints"
    assert checkpoint.all_steps(ck) == [4, 5]        # 4 full (a multiple of 2), 5 full (the last)
    part = load_config(RECIPE, tiny_overrides + ["output.save_every=1", "train.steps=3", "output.keep_checkpoints=1",
                                                 "output.full_checkpoint_every=2", "output.name=p"])
    run = train(part)
    ck = run / "checkpoints"
    assert checkpoint.all_steps(ck) == [3]
    model, tok = _model()
    opt, sched = _opt(model)
    root = tmp_path / "ck"
    for step, full in ((1, True), (2, False), (3, False)):
        checkpoint.save(root, step, model, tok, opt, sched, keep=1, full=full)
    assert checkpoint.all_steps(root) == [1, 3]          # the newest full one survives rotation
    assert not (root / "step-3" / "trainer.pt").exists()
    assert checkpoint.damage(root / "step-3") == "weights only (no optimizer state)"
    assert checkpoint.latest_resumable(root) == root / "step-1"
    assert checkpoint.latest(root) == root / "step-3"   # the newest weights, for eval


def test_logged_lr_is_the_lr_of_this_steps_update(tiny_overrides, tmp_path):
    run = train(load_config(RECIPE, tiny_overrides + ["train.steps=4", "train.warmup_steps=3", "train.lr=0.0003"]))
    lrs = [r["lr"] for r in read_metrics(run)]
    assert lrs == pytest.approx([1e-4, 2e-4, 3e-4, 3e-4])          # warm-up 1/3, 2/3, 1, 1


def test_sft_logs_the_lr_of_each_steps_update(tmp_path):
    from grpo.stages.sft import load_sft_config, sft
    rows = [{"prompt": f"What is {a}+1?", "completion": f" <answer>{a + 1}</answer>"} for a in range(8)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = load_sft_config(None, tree={
        "model": {"path": str(ROOT / "data/tiny_model")}, "data": {"source": str(tmp_path / "d.jsonl")},
        "template": "r1_zero_tiny", "output": {"dir": str(tmp_path), "name": "s"},
        "train": {"steps": 3, "batch_size": 4, "micro_batch_size": 4, "lr": 1e-2, "warmup_steps": 2, "threads": 1}})
    sft(cfg, progress=False)
    lrs = [json.loads(ln)["lr"] for ln in (tmp_path / "s" / "metrics.jsonl").read_text().splitlines()]
    assert lrs == pytest.approx([5e-3, 1e-2, 1e-2])          # warm-up 1/2, then 1; was [1e-2, 1e-2, 0]


def test_weights_made_non_finite_by_an_update_stop_the_run_before_any_save(tiny_overrides, tmp_path):
    cfg = load_config(RECIPE, tiny_overrides + ["train.steps=3", "output.save_every=1"])
    tr = trainer_mod.Trainer(cfg)
    real, calls = tr.opt.step, {"n": 0}

    def step(*a, **kw):                         # the second update overflows a weight
        out = real(*a, **kw)
        calls["n"] += 1
        if calls["n"] == 2:
            with torch.no_grad():
                next(tr.policy.parameters()).view(-1)[0] = float("inf")
        return out
    tr.opt.step = step
    with pytest.raises(checkpoint.NonFiniteError, match="became non-finite .* the last checkpoint is step-1"):
        tr.train()
    assert checkpoint.all_steps(tr.ckpt_root) == [1] and _finite(tr.ckpt_root / "step-1")
    assert not (tr.run_dir / ".lock").exists()


def test_full_disk_anywhere_in_a_run_is_one_line(monkeypatch, capsys):
    import grpo.train.trainer
    from grpo.cli import main

    def full(cfg, resume=False, overwrite=False):
        raise OSError(errno.ENOSPC, "No space left on device", "runs/x/metrics.jsonl")
    monkeypatch.setattr(grpo.train.trainer, "train", full)
    assert main(["train", str(RECIPE)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["grpo: error: no space left on device writing runs/x/metrics.jsonl; free some space, "
                   "then continue with --resume"]
