"""rollout.overlap: one-step off-policy rollouts sampled while the previous step trains."""
from pathlib import Path

import pytest
import torch

from grpo.config import ConfigError, load_config
from grpo.data import apply_template
from grpo.run.metrics import read_metrics
from grpo.model.policy import build_batch, load_policy, score
from grpo.rollout.base import SamplingParams
from grpo.rollout.hf import HFEngine
from grpo.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[2]


def test_sampler_log_probs_are_the_policy_log_probs():
    """At temperature 1 the engine's per-token log-probs are the policy's: an overlapped
    step's PPO ratio is exactly new/behaviour policy."""
    tok, model = load_policy(str(ROOT / "data/tiny_model"), trainable=False)
    eng = HFEngine(model, tok, private_copy=True, return_logprobs=True)
    torch.manual_seed(0)
    groups = eng.generate([apply_template("r1_zero_tiny", "What is 3+4?")], SamplingParams(n=4, max_new_tokens=24))
    P = [g.prompt_ids for g in groups for _ in g.completions]
    C = [c.token_ids for g in groups for c in g.completions]
    with torch.no_grad():
        lp, _ = score(model, build_batch(P, C, tok.pad_token_id))
    for i, c in enumerate(groups[0].completions):
        torch.testing.assert_close(torch.tensor(c.logprobs), lp[i, :len(c.token_ids)], atol=1e-4, rtol=1e-4)


def test_private_copy_follows_updates_only_when_told():
    tok, model = load_policy(str(ROOT / "data/tiny_model"), trainable=True)
    eng = HFEngine(model, tok, private_copy=True)
    assert eng.model is not model
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    first = lambda m: next(m.parameters())  # noqa: E731
    assert not torch.equal(first(eng.model), first(model))
    eng.update_weights(model.named_parameters())
    assert torch.equal(first(eng.model), first(model))


def _cfg(tmp_path, name, overlap, steps=4):
    return load_config(ROOT / "recipes/tiny/r1_zero.yaml", [
        f"model.path={ROOT / 'data/tiny_model'}", f"output.dir={tmp_path}", f"output.name={name}",
        f"train.steps={steps}", "train.prompts_per_step=4", "rollout.n=4", "rollout.max_new_tokens=40",
        "output.tensorboard=false", "data.num_samples=64", "algorithm.track_kl=false", "train.lr=1e-3",
        "rewards=[{name: overlong_penalty, kwargs: {max_len: 24, cache_len: 24}}]",   # variance in every group
        "rollout.engine=hf", f"rollout.overlap={str(overlap).lower()}"])


def test_overlapped_run_is_one_step_stale_and_ends_synced(tmp_path):
    tr = Trainer(_cfg(tmp_path, "ov", True))
    seen = []                                        # weight version the engine sampled each batch with
    gen = tr.engine.generate
    tr.engine.generate = lambda *a, **k: (seen.append(tr.engine.weight_version), gen(*a, **k))[1]
    run = tr.train()
    rows = read_metrics(run)
    assert [r["rollout/stale_steps"] for r in rows] == [0, 1, 1, 1]
    # step 0 samples with the initial weights; step k>=1's batch was sampled during step k-1,
    # right after sync number k (the weights after k-1 updates).
    assert seen == [0, 1, 2, 3]
    assert all(r["time/rollout_sampling"] > 0 for r in rows)
    for (n, p), (_, q) in zip(tr.policy.named_parameters(), tr.engine.model.named_parameters()):
        assert torch.equal(p, q), n                  # the engine serves the final weights
    init = load_policy(str(ROOT / "data/tiny_model"))[1]
    assert any(not torch.equal(p, q) for p, q in zip(tr.policy.parameters(), init.parameters()))


def test_first_overlapped_step_equals_the_on_policy_step(tmp_path):
    """Step 0 is on-policy in both modes (same seed, same samples): the behaviour log-probs
    then give ratio 1 and the same update as the detached current log-probs."""
    params = []
    for overlap in (False, True):
        tr = Trainer(_cfg(tmp_path, f"s{overlap}", overlap, steps=1))
        tr.train()
        params.append(torch.cat([p.detach().flatten() for p in tr.policy.parameters()]))
    torch.testing.assert_close(params[0], params[1], atol=1e-5, rtol=1e-4)


def test_overlap_needs_the_policy_distribution():
    with pytest.raises(ConfigError, match="temperature=1"):
        load_config(ROOT / "recipes/tiny/r1_zero.yaml", ["rollout.overlap=true", "rollout.top_p=0.9"])


def test_overlapped_run_resumes(tmp_path):
    """The batch in flight is not checkpointed: a resumed run samples its first step on-policy."""
    from grpo.train.trainer import train
    train(_cfg(tmp_path, "r", True, steps=2))
    cfg = _cfg(tmp_path, "r", True, steps=4)
    cfg.output.save_every = 2
    train(cfg, resume=True)
    rows = read_metrics(tmp_path / "r")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert [r["rollout/stale_steps"] for r in rows] == [0, 1, 0, 1]


def test_engine_sleeps_during_each_update_when_asked(tmp_path):
    cfg = _cfg(tmp_path, "sl", False, steps=2)
    cfg.rollout.sleep = True
    tr = Trainer(cfg)
    calls = []
    tr.engine.sleep = lambda: calls.append("sleep")
    gen, upd = tr.engine.generate, tr._update
    tr.engine.generate = lambda *a, **k: (calls.append("generate"), gen(*a, **k))[1]
    tr._update = lambda *a, **k: (calls.append("update"), upd(*a, **k))[1]
    tr.train()
    assert calls == ["generate", "sleep", "update"] * 2
    with pytest.raises(ConfigError, match="sleep"):
        load_config(ROOT / "recipes/tiny/r1_zero.yaml", ["rollout.overlap=true", "rollout.sleep=true"])
