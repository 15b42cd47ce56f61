"""SmolLM2-135M-Instruct (the real-model tier's model) trained with rollout.engine=vllm.

Bounds (stated in the README): with the engine synced after every update, vLLM's log-probs
of its own samples and the trainer's differ only by kernels, so the logged
``rollout_correction/mismatch_kl`` (k3 estimate of KL(sampler || trainer) per token) is below
1e-3 and the TIS ratio's mean within 1% of 1 (measured: ~1e-6 and 1.000); the ratio never
exceeds the cap ``rollout_is_high``.
"""
from grpo.config import load_config
from grpo.rollout.base import end_token_ids
from grpo.train.trainer import Trainer

from _helpers import ROOT, Recorder, engine_lag, max_diff, metrics, policy_logprobs

RECIPE = ROOT / "recipes" / "cpu" / "smollm2_word_problems.yaml"


def _overrides(real_model, tmp_path, *extra):
    return [f"model.path={real_model}", f"output.dir={tmp_path}", "output.name=t", "train.steps=2",
            "train.prompts_per_step=2", "rollout.n=4", "rollout.max_new_tokens=48", "output.save_every=100",
            "output.tensorboard=false", "train.lr=1e-5", "train.warmup_steps=0",
            "rollout.temperature=1.0",                 # T 1: the sampler's log-probs are the policy's (TIS)
            # a graded length term: every group has reward variance, so no update is skipped
            "rewards=[{name: math_accuracy}, {name: cosine_length, weight: 0.1, kwargs: {max_len: 48}}]", *extra]


def _first_group(groups):
    """(P, C) of the first group of a generate call."""
    g = groups[0]
    return [g.prompt_ids] * len(g.completions), [c.token_ids for c in g.completions]


def test_smollm2_on_vllm_ends_completions_at_sampled_end_tokens_and_mismatch_is_bounded(real_model, tmp_path):
    cfg = load_config(RECIPE, _overrides(real_model, tmp_path))
    trainer = Trainer(cfg)
    rec = Recorder(trainer.engine)
    rows = metrics(trainer.train())
    tok = trainer.tok
    ends = set(end_token_ids(tok, trainer.engine._gen_config))
    assert tok.convert_tokens_to_ids("<|im_end|>") in ends
    comps = [c for groups in rec.groups for g in groups for c in g.completions]
    assert len(comps) == 2 * 2 * 4
    for c in comps:
        assert not ends & set(c.token_ids[:-1]), "an end token inside a completion"
        if c.finish_reason == "stop":
            assert c.token_ids[-1] in ends, "a stopped completion ends with the end token it sampled"
        else:
            assert c.finish_reason == "length" and len(c.token_ids) == 48
        assert c.text == tok.decode(c.token_ids, skip_special_tokens=True)
        assert len(c.logprobs) == len(c.token_ids)
    assert any(c.finish_reason == "stop" for c in comps)
    for r in rows:
        assert r["rollout_correction/mismatch_kl"] < 1e-3
        assert abs(r["rollout_correction/is_ratio_mean"] - 1) < 1e-2
        assert r["rollout_correction/is_ratio_max"] <= cfg.algorithm.rollout_is_high + 1e-6
    assert engine_lag(trainer, *_first_group(rec.groups[-1])) < 2e-3, "the engine lags the trained policy"


def test_smollm2_lora_on_vllm_is_served_merged(real_model, tmp_path):
    cfg = load_config(RECIPE, _overrides(real_model, tmp_path, "model.lora={r: 8, alpha: 16}", "train.lr=1e-3"))
    trainer = Trainer(cfg)
    rec = Recorder(trainer.engine)
    trainer.train()
    P, C = _first_group(rec.groups[-1])
    assert engine_lag(trainer, P, C) < 2e-3
    with trainer.policy.disable_adapter():
        base = policy_logprobs(trainer.policy, trainer.tok, P, C)
    lora = policy_logprobs(trainer.policy, trainer.tok, P, C)
    assert max_diff(lora, base) > 1e-3, "the adapter learned nothing"
