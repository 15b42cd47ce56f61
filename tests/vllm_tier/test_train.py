"""GRPO steps with rollout.engine=vllm: the engine follows the trained policy."""
import json
from pathlib import Path

import pytest

from grpo.config import load_config
from grpo.data import apply_template
from grpo.policy import build_batch, score
from grpo.rollout.vllm import VLLMEngine
from grpo.trainer import Trainer

ROOT = Path(__file__).resolve().parents[2]


def test_vllm_engine_samples_from_the_updated_policy(tiny_overrides):
    import torch
    # A graded length reward: every group has reward variance, so every step updates the
    # policy (the accuracy reward can be 0 for a whole batch with a barely trained model).
    length_reward = "rewards=[{name: overlong_penalty, kwargs: {max_len: 32, cache_len: 32}}]"
    cfg = load_config(ROOT / "recipes" / "tiny" / "r1_zero.yaml",
                      tiny_overrides + ["rollout.engine=vllm", length_reward])
    trainer = Trainer(cfg)                      # what grpo.trainer.train(cfg) runs
    assert isinstance(trainer.engine, VLLMEngine)
    tok = trainer.tok
    prompt = tok(apply_template("r1_zero_tiny", "What is 2+3?")).input_ids
    completion = tok("<think>2+3=5</think> <answer>5</answer>").input_ids + [tok.eos_token_id]

    def policy_logprobs():
        with torch.no_grad():
            lp, _ = score(trainer.policy, build_batch([prompt], [completion], tok.pad_token_id))
        return lp[0].tolist()

    before = trainer.engine.score([prompt], [completion])[0]
    assert max(abs(a - b) for a, b in zip(before, policy_logprobs())) < 1e-3

    run_dir = trainer.train()

    after = trainer.engine.score([prompt], [completion])[0]
    trained = policy_logprobs()
    assert max(abs(a - b) for a, b in zip(after, trained)) < 1e-3, "engine lags the policy"
    assert max(abs(a - b) for a, b in zip(after, before)) > 1e-2, "training changed nothing"
    assert trainer.engine.weight_version == cfg.train.steps

    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == cfg.train.steps
    for r in rows:
        assert r["time/sync"] < r["time/step"]
        assert r["completion_len/mean"] > 0


def test_lora_policy_is_served_merged_during_training(tiny_overrides):
    import torch
    length_reward = "rewards=[{name: overlong_penalty, kwargs: {max_len: 32, cache_len: 32}}]"
    cfg = load_config(ROOT / "recipes" / "tiny" / "r1_zero.yaml",
                      tiny_overrides + ["rollout.engine=vllm", length_reward, "train.steps=2",
                                        "model.lora={r: 4, alpha: 16}", "train.lr=1e-2"])
    trainer = Trainer(cfg)
    trainer.train()
    tok = trainer.tok
    prompt = tok(apply_template("r1_zero_tiny", "What is 4+4?")).input_ids
    completion = tok("<think>4+4=8</think> <answer>8</answer>").input_ids + [tok.eos_token_id]
    with torch.no_grad():
        lp, _ = score(trainer.policy, build_batch([prompt], [completion], tok.pad_token_id))
        with trainer.policy.disable_adapter():
            base, _ = score(trainer.policy, build_batch([prompt], [completion], tok.pad_token_id))
    served = trainer.engine.score([prompt], [completion])[0]
    assert max(abs(a - b) for a, b in zip(served, lp[0].tolist())) < 1e-3
    assert max(abs(a - b) for a, b in zip(lp[0].tolist(), base[0].tolist())) > 1e-3   # the adapter learned


def test_overlapped_vllm_rollouts_train_and_end_synced(tiny_overrides):
    """rollout.overlap with vLLM: batches after the first are one step stale, the sampler's
    log-probs serve as the old policy, and the engine serves the final weights."""
    import torch
    length_reward = "rewards=[{name: overlong_penalty, kwargs: {max_len: 32, cache_len: 32}}]"
    cfg = load_config(ROOT / "recipes" / "tiny" / "r1_zero.yaml",
                      tiny_overrides + ["rollout.engine=vllm", length_reward, "rollout.overlap=true",
                                        "train.micro_batch_tokens=512", "train.lr=1e-3"])
    trainer = Trainer(cfg)
    run_dir = trainer.train()
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["rollout/stale_steps"] for r in rows] == [0] + [1] * (cfg.train.steps - 1)
    assert rows[0]["clip_frac"] < 1e-3              # step 0: behaviour == current policy
    tok = trainer.tok
    prompt = tok(apply_template("r1_zero_tiny", "What is 2+3?")).input_ids
    completion = tok("<think>2+3=5</think> <answer>5</answer>").input_ids + [tok.eos_token_id]
    with torch.no_grad():
        lp, _ = score(trainer.policy, build_batch([prompt], [completion], tok.pad_token_id))
    served = trainer.engine.score([prompt], [completion])[0]
    assert max(abs(a - b) for a, b in zip(served, lp[0].tolist())) < 1e-3, "engine lags the policy"


def test_max_staleness_2_with_vllm_is_bounded_corrected_and_ends_synced(tiny_overrides):
    """rollout.max_staleness: 2 on real vLLM: two generations queue ahead on the engine's
    thread, each batch at most 2 optimizer steps old; TIS (auto for vllm) is measured on
    every step; the engine serves the final weights."""
    import torch
    length_reward = "rewards=[{name: overlong_penalty, kwargs: {max_len: 32, cache_len: 32}}]"
    cfg = load_config(ROOT / "recipes" / "tiny" / "r1_zero.yaml",
                      tiny_overrides + ["rollout.engine=vllm", length_reward, "rollout.max_staleness=2",
                                        "train.steps=5"])
    trainer = Trainer(cfg)
    seen = []
    gen = trainer.engine.generate
    trainer.engine.generate = lambda *a, **k: (seen.append(trainer.engine.weight_version), gen(*a, **k))[1]
    rows = [json.loads(line) for line in (trainer.train() / "metrics.jsonl").read_text().splitlines()]
    assert [r["rollout/stale_steps"] for r in rows] == [0, 1, 2, 2, 2]
    assert seen == [0, 1, 1, 2, 3]            # the weight version each batch was sampled with
    # Step 0 is on-policy: the only mismatch is vLLM's kernels against the trainer's.
    assert rows[0]["rollout_correction/mismatch_kl"] < 1e-3
    assert abs(rows[0]["rollout_correction/is_ratio_mean"] - 1) < 1e-2
    assert all(r["rollout_correction/mismatch_kl"] > rows[0]["rollout_correction/mismatch_kl"] for r in rows[2:])
    # is_ratio_max is the raw ratio; where it passes the cap, TIS truncated those tokens.
    high = cfg.algorithm.rollout_is_high
    assert all(r["rollout_correction/masked_frac"] > 0 for r in rows if r["rollout_correction/is_ratio_max"] > high)
    assert all(r["rollout_correction/masked_frac"] == 0 for r in rows if r["rollout_correction/is_ratio_max"] <= high)
    tok = trainer.tok
    prompt = tok(apply_template("r1_zero_tiny", "What is 2+3?")).input_ids
    completion = tok("<think>2+3=5</think> <answer>5</answer>").input_ids + [tok.eos_token_id]
    with torch.no_grad():
        lp, _ = score(trainer.policy, build_batch([prompt], [completion], tok.pad_token_id))
    served = trainer.engine.score([prompt], [completion])[0]
    assert max(abs(a - b) for a, b in zip(served, lp[0].tolist())) < 1e-3, "engine lags the policy"


def test_cli_train_and_eval_with_vllm_exit_cleanly(tiny_overrides, tmp_path):
    """`grpo train` with the vllm engine exits 0 with no traceback (the process group is vLLM's
    to destroy: shutting it down first made vLLM's own shutdown raise at exit), and `grpo eval
    --engine vllm` prints its JSON alone on stdout (vLLM logs on stderr)."""
    import subprocess
    import sys
    recipe = str(ROOT / "recipes" / "tiny" / "r1_zero.yaml")
    sets = [x for o in tiny_overrides + ["rollout.engine=vllm", "train.steps=1", "output.save_every=1"]
            for x in ("--set", o)]
    p = subprocess.run([sys.executable, "-m", "grpo.cli", "train", recipe, *sets], capture_output=True, text=True,
                       cwd=ROOT, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "Traceback" not in p.stderr and "Error" not in p.stderr, p.stderr[-2000:]
    ckpt = tmp_path / "t" / "checkpoints" / "step-1"
    p = subprocess.run([sys.executable, "-m", "grpo.cli", "eval", recipe, "--model", str(ckpt), "--engine", "vllm",
                        "--n", "8", "--k", "2", *sets], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    res = json.loads(p.stdout)
    assert res["n_prompts"] == 8 and res["k"] == 2 and 0 <= res["pass@1"] <= 1
