"""GRPO steps with rollout.engine=vllm: the engine follows the trained policy."""
import json
from pathlib import Path

import pytest

pytest.importorskip("vllm")

from grpo.config import load_config  # noqa: E402
from grpo.data import apply_template  # noqa: E402
from grpo.policy import build_batch, score  # noqa: E402
from grpo.rollout.vllm import VLLMEngine  # noqa: E402
from grpo.trainer import Trainer  # noqa: E402

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
