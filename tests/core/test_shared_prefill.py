"""The hf engine's shared prefill (each prompt's prefill once for its G samples) samples the
same distribution as generate's own G-fold expansion: left-padded prompts of different
lengths keep generate's positions, and the sampler's log-probs are the policy's."""
from pathlib import Path

import torch

from grpo.data import apply_template
from grpo.model.policy import build_batch, load_policy, score
from grpo.rollout.base import SamplingParams
from grpo.rollout.hf import HFEngine

ROOT = Path(__file__).resolve().parents[2]
# Different lengths, so the shorter prompts are left-padded in the batch.
PROMPTS = [apply_template("r1_zero_tiny", q) for q in ("What is 3+4?", "What is 3+4+5+6?", "1+2?")]


def _sample(share: bool, seed: int = 0, n: int = 4):
    tok, model = load_policy(str(ROOT / "data/tiny_model"), trainable=False)
    eng = HFEngine(model, tok, return_logprobs=True, share_prefill=share)
    torch.manual_seed(seed)
    return tok, model, eng.generate(PROMPTS, SamplingParams(n=n, max_new_tokens=24))


def test_shared_prefill_log_probs_are_the_policy_log_probs():
    tok, model, groups = _sample(True)
    P = [g.prompt_ids for g in groups for _ in g.completions]
    C = [c.token_ids for g in groups for c in g.completions]
    with torch.no_grad():
        lp, _ = score(model, build_batch(P, C, tok.pad_token_id))
    flat = [c for g in groups for c in g.completions]
    assert len(flat) == 12 and all(c.token_ids for c in flat)
    for i, c in enumerate(flat):
        torch.testing.assert_close(torch.tensor(c.logprobs), lp[i, :len(c.token_ids)], atol=1e-4, rtol=1e-4)


def test_shared_prefill_samples_what_generate_samples():
    """Same seed, same random draws: the same completions as without sharing (the logits
    agree to float rounding, so the sampled tokens do), and each group keeps its prompt."""
    for seed in (0, 1):
        _, _, a = _sample(True, seed)
        _, _, b = _sample(False, seed)
        assert [g.prompt_ids for g in a] == [g.prompt_ids for g in b]
        assert [[c.token_ids for c in g.completions] for g in a] == [[c.token_ids for c in g.completions] for g in b]


def test_one_sample_per_prompt_needs_no_sharing():
    _, _, a = _sample(True, 0, n=1)
    _, _, b = _sample(False, 0, n=1)
    assert [[c.token_ids for c in g.completions] for g in a] == [[c.token_ids for c in g.completions] for g in b]
