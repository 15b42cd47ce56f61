"""GRPO steps with rollout.engine=vllm: the engine follows the trained policy."""
import json


from grpo.config import load_config
from grpo.rollout.vllm import VLLMEngine
from grpo.train.trainer import Trainer

from _helpers import LENGTH_REWARD, ROOT, engine_lag, max_diff, metrics, policy_logprobs, probe


def test_vllm_engine_samples_from_the_updated_policy(tiny_overrides):
    cfg = load_config(ROOT / "recipes" / "tiny" / "r1_zero.yaml",
                      tiny_overrides + ["rollout.engine=vllm", LENGTH_REWARD])
    trainer = Trainer(cfg)                      # what grpo.train.trainer.train(cfg) runs
    assert isinstance(trainer.engine, VLLMEngine)
    P, C = probe(trainer.tok)
    before = trainer.engine.score(P, C)
    assert engine_lag(trainer, P, C) < 1e-3

    run_dir = trainer.train()

    assert engine_lag(trainer, P, C) < 1e-3, "engine lags the policy"
    assert max_diff(trainer.engine.score(P, C), before) > 1e-2, "training changed nothing"
    assert trainer.engine.weight_version == cfg.train.steps

    rows = metrics(run_dir)
    assert len(rows) == cfg.train.steps
    for r in rows:
        assert r["time/sync"] < r["time/step"]
        assert r["completion_len/mean"] > 0


def test_lora_policy_is_served_merged_during_training(tiny_overrides):
    cfg = load_config(ROOT / "recipes" / "tiny" / "r1_zero.yaml",
                      tiny_overrides + ["rollout.engine=vllm", LENGTH_REWARD, "train.steps=2",
                                        "model.lora={r: 4, alpha: 16}", "train.lr=1e-2"])
    trainer = Trainer(cfg)
    trainer.train()
    P, C = probe(trainer.tok, 4, 4)
    with trainer.policy.disable_adapter():
        base = policy_logprobs(trainer.policy, trainer.tok, P, C)
    assert engine_lag(trainer, P, C) < 1e-3
    assert max_diff(policy_logprobs(trainer.policy, trainer.tok, P, C), base) > 1e-3   # the adapter learned


def test_overlapped_vllm_rollouts_train_and_end_synced(tiny_overrides):
    """rollout.overlap with vLLM: batches after the first are one step stale, the sampler's
    log-probs serve as the old policy, and the engine serves the final weights."""
    cfg = load_config(ROOT / "recipes" / "tiny" / "r1_zero.yaml",
                      tiny_overrides + ["rollout.engine=vllm", LENGTH_REWARD, "rollout.overlap=true",
                                        "train.micro_batch_tokens=512", "train.lr=1e-3"])
    trainer = Trainer(cfg)
    run_dir = trainer.train()
    rows = metrics(run_dir)
    assert [r["rollout/stale_steps"] for r in rows] == [0] + [1] * (cfg.train.steps - 1)
    assert rows[0]["clip_frac"] < 1e-3              # step 0: behaviour == current policy
    assert engine_lag(trainer, *probe(trainer.tok)) < 1e-3, "engine lags the policy"


def test_max_staleness_2_with_vllm_is_bounded_corrected_and_ends_synced(tiny_overrides):
    """rollout.max_staleness: 2 on real vLLM: two generations queue ahead on the engine's
    thread, each batch at most 2 optimizer steps old; TIS (auto for vllm) is measured on
    every step; the engine serves the final weights."""
    cfg = load_config(ROOT / "recipes" / "tiny" / "r1_zero.yaml",
                      tiny_overrides + ["rollout.engine=vllm", LENGTH_REWARD, "rollout.max_staleness=2",
                                        "train.steps=5"])
    trainer = Trainer(cfg)
    seen = []
    gen = trainer.engine.generate
    trainer.engine.generate = lambda *a, **k: (seen.append(trainer.engine.weight_version), gen(*a, **k))[1]
    rows = metrics(trainer.train())
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
    assert engine_lag(trainer, *probe(trainer.tok)) < 1e-3, "engine lags the policy"


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
