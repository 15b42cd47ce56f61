"""Model inputs a new user tries: GGUF paths, empty or partial model directories, thread
defaults honoured by every command, and updates with nothing to learn."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from grpo.config import load_config
from grpo.model.policy import ModelError, check_model_dir, default_threads, load_policy, set_threads

ROOT = Path(__file__).resolve().parents[2]
RECIPE = str(ROOT / "recipes" / "tiny" / "r1_zero.yaml")


def test_gguf_file_is_folded_into_model_path():
    cfg = load_config(None, ["model.path=/models/smol", "model.gguf_file=smol.Q4.gguf"])
    assert cfg.model.path == "/models/smol/smol.Q4.gguf" and cfg.model.gguf_file is None
    again = load_config(None, [f"model.path={cfg.model.path}"])       # a dumped config re-validates the same
    assert again.model.path == cfg.model.path


def test_missing_gguf_is_one_line():
    with pytest.raises(ModelError, match="GGUF file not found"):
        load_policy("/nowhere/model.Q4_1.gguf")


@pytest.mark.parametrize("files,missing", [
    ((), "config.json"),
    (("config.json",), "weights"),
    (("config.json", "model.safetensors"), "a tokenizer"),
])
def test_incomplete_model_dir(tmp_path, files, missing):
    for f in files:
        (tmp_path / f).write_text("{}")
    with pytest.raises(ModelError, match=missing) as e:
        check_model_dir(str(tmp_path))
    assert "\n" not in str(e.value)


def test_eval_on_partial_model_dir_is_one_line(tmp_path):
    (tmp_path / "config.json").write_text((ROOT / "data/tiny_model/config.json").read_text())
    r = subprocess.run([sys.executable, "-m", "grpo.cli", "eval", RECIPE, "--model", str(tmp_path), "--k", "2"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "sentencepiece" not in r.stderr.lower()
    assert "not a complete model directory" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_default_threads(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    for cores, want in ((1, 1), (2, 1), (4, 2), (16, 8)):
        monkeypatch.setattr("os.sched_getaffinity", lambda pid, c=cores: set(range(c)))
        assert default_threads() == want
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert default_threads() == 3
    saved = torch.get_num_threads()
    try:
        assert set_threads(None) == 3 and torch.get_num_threads() == 3
        assert set_threads(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(saved)


def test_eval_sample_sft_honour_the_thread_setting(monkeypatch, tmp_path):
    """Every command sets threads through policy.set_threads (the same default as train)."""
    import grpo.stages.eval
    import grpo.model.policy
    import grpo.stages.sample
    import grpo.stages.sft
    calls = []

    class Stop(Exception):
        pass

    def record(n=None):
        calls.append(n)
        raise Stop
    monkeypatch.setattr(grpo.model.policy, "set_threads", record)
    monkeypatch.setattr(grpo.stages.sft, "set_threads", record)
    cfg = load_config(RECIPE, ["train.threads=3"])
    for run in (lambda: grpo.stages.eval.eval_config(cfg),
                lambda: grpo.stages.sample.sample(grpo.stages.sample.load_sample_config(None, ["threads=2"])),
                lambda: grpo.stages.sft.sft(grpo.stages.sft.load_sft_config(None, ["data.source=builtin:arithmetic_cot",
                                                                     "train.threads=4"])),
                lambda: grpo.stages.eval.evaluate_model("data/tiny_model", grpo.stages.eval.EvalSpec())):
        with pytest.raises(Stop):
            run()
    assert calls == [3, 2, 4, None]


def _train(tmp_path, tiny_overrides, reward_body, *extra):
    from grpo.train.trainer import Trainer
    f = tmp_path / "const_reward.py"
    f.write_text(f"def reward(prompts, completions, **kw):\n    return [{reward_body} for _ in completions]\n")
    cfg = load_config(RECIPE, tiny_overrides + ["train.steps=1", "output.save_every=100",
                                                f"rewards=[{{name: '{f}:reward'}}]", *extra])
    tr = Trainer(cfg)
    before = {k: v.clone() for k, v in tr.policy.state_dict().items()}
    m = tr.step(0)
    changed = any(not torch.equal(before[k], v) for k, v in tr.policy.state_dict().items())
    return m, changed


@pytest.mark.parametrize("extra", [(), ("algorithm.advantage=rloo",), ("algorithm.dynamic_sampling=true",)])
def test_zero_variance_step_skips_the_update(tmp_path, tiny_overrides, extra, monkeypatch):
    from grpo.train.trainer import Trainer
    calls = []
    real = Trainer._update
    monkeypatch.setattr(Trainer, "_update", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    m, changed = _train(tmp_path, tiny_overrides, "1.0", *extra)
    assert not calls and not changed and m["update_skipped"] == 1
    assert m["entropy"] is None and m["loss"] is None and m["grad_norm"] is None


def test_all_tokens_masked_skips_the_update(tmp_path, tiny_overrides):
    # Every completion cut at 2 tokens and masked (DAPO overlong filtering): nothing to train on.
    # Random rewards: the groups have variance, only the mask leaves nothing to learn.
    m, changed = _train(tmp_path, tiny_overrides, "__import__('random').random()",
                        "algorithm.mask_truncated=true", "rollout.max_new_tokens=2")
    if m["truncated_frac"] == 1:
        assert m["update_skipped"] == 1 and m["entropy"] is None and not changed
    else:                           # some completion ended within 2 tokens: it is trained on
        assert m["update_skipped"] == 0 and m["entropy"] is not None


def test_kl_term_still_updates_zero_variance_groups(tmp_path, tiny_overrides):
    m, _ = _train(tmp_path, tiny_overrides, "1.0", "algorithm.beta=0.1")
    assert m["update_skipped"] == 0 and m["entropy"] is not None and m["kl"] is not None
