"""rollout.max_staleness: k generations queue ahead; the decoupled PPO objective corrects them."""
import threading
import time
from pathlib import Path

import pytest
import torch

from grpo.config import ConfigError, load_config
from grpo.run.metrics import read_metrics
from grpo.model.policy import load_policy
from grpo.rollout.overlap import Prefetcher
from grpo.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[2]


def _cfg(tmp_path, name, *extra, steps=5):
    return load_config(ROOT / "recipes/tiny/r1_zero.yaml", [
        f"model.path={ROOT / 'data/tiny_model'}", f"output.dir={tmp_path}", f"output.name={name}",
        f"train.steps={steps}", "train.prompts_per_step=4", "rollout.n=4", "rollout.max_new_tokens=40",
        "output.tensorboard=false", "data.num_samples=64", "algorithm.track_kl=false", "train.lr=1e-3",
        "rewards=[{name: overlong_penalty, kwargs: {max_len: 24, cache_len: 24}}]", "rollout.engine=hf", *extra])


def test_two_step_staleness_is_bounded_logged_and_ends_synced(tmp_path):
    tr = Trainer(_cfg(tmp_path, "k2", "rollout.max_staleness=2"))
    seen = []
    gen = tr.engine.generate
    tr.engine.generate = lambda *a, **k: (seen.append(tr.engine.weight_version), gen(*a, **k))[1]
    rows = read_metrics(tr.train())
    assert [r["rollout/stale_steps"] for r in rows] == [0, 1, 2, 2, 2]
    # step 0 on-policy (version 0); steps 1 and 2 queued together after sync 1 (the initial
    # weights); each later batch queued behind one more sync.
    assert seen == [0, 1, 1, 2, 3]
    # the decoupled objective's IS weight (auto -> tis for stale batches) is measured on stale steps only
    assert rows[0]["rollout_correction/mismatch_kl"] is None
    assert all(r["rollout_correction/mismatch_kl"] > 0 for r in rows[2:])
    assert all(r["rollout_correction/is_ratio_max"] >= r["rollout_correction/is_ratio_mean"] > 0 for r in rows[1:])
    for (n, p), (_, q) in zip(tr.policy.named_parameters(), tr.engine.model.named_parameters()):
        assert torch.equal(p, q), n


def test_overlap_true_is_staleness_one(tmp_path):
    rows = read_metrics(Trainer(_cfg(tmp_path, "ov", "rollout.overlap=true", steps=3)).train())
    assert [r["rollout/stale_steps"] for r in rows] == [0, 1, 1]


def test_staleness_needs_the_policy_distribution():
    with pytest.raises(ConfigError, match="max_staleness needs temperature=1"):
        load_config(ROOT / "recipes/tiny/r1_zero.yaml", ["rollout.max_staleness=2", "rollout.temperature=0.7"])
    with pytest.raises(ConfigError, match="rollout_correction=tis needs temperature=1"):
        load_config(ROOT / "recipes/tiny/r1_zero.yaml", ["algorithm.rollout_correction=tis", "rollout.top_p=0.9"])


class _SlowEngine:
    """Records whether a weight update ever lands while a generation runs."""

    def __init__(self):
        self.running = threading.Event()
        self.overlaps, self.log = 0, []

    def generate(self, prompts, sampling):
        self.running.set()
        time.sleep(0.05)
        self.running.clear()
        self.log.append(("gen", prompts[0]))
        return prompts

    def update_weights(self, named):
        self.overlaps += self.running.is_set()
        self.log.append(("sync", named))


def test_prefetcher_queues_syncs_between_generations():
    eng = _SlowEngine()
    pf = Prefetcher(eng, max_staleness=2)
    pf.start(1, ["a"], None, version=0)
    pf.start(2, ["b"], None, version=0)
    with pytest.raises(RuntimeError, match="2 rollouts are already in flight"):
        pf.start(3, ["c"], None)
    pf.sync("w1")
    assert pf.take(1)[0] == ["a"] and pf.busy and pf.next_step == 3
    pf.start(3, ["c"], None, version=1)
    assert pf.take(2)[2] == 0 and pf.take(3)[2] == 1
    assert pf.take(5) is None
    pf.close()
    assert eng.overlaps == 0 and eng.log == [("gen", "a"), ("gen", "b"), ("sync", "w1"), ("gen", "c")]


def test_explicit_tis_on_policy_with_the_hf_engine_measures_no_mismatch(tmp_path):
    """The hf engine samples the trainer's own module: its log-probs equal the trainer's, so
    TIS weights are 1 and the update is the uncorrected one."""
    params, rows = [], []
    for corr in ("none", "tis"):
        tr = Trainer(_cfg(tmp_path, f"c{corr}", f"algorithm.rollout_correction={corr}", steps=2))
        torch.manual_seed(0)
        rows.append(read_metrics(tr.train()))
        params.append(torch.cat([p.detach().flatten() for p in tr.policy.parameters()]))
    assert all(r["rollout_correction/mismatch_kl"] is None for r in rows[0])
    assert all(0 <= r["rollout_correction/mismatch_kl"] < 1e-6 and r["rollout_correction/masked_frac"] == 0
               for r in rows[1])
    torch.testing.assert_close(params[0], params[1], atol=1e-5, rtol=1e-4)
