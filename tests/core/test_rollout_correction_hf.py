"""The real hf engine samples from a deliberately stale copy of the policy (its weights two
optimizer steps older, at the tiny recipe's lr 1e-4) and records its own log-probs; the
trainer's pieces (build_batch, score_shared_prompt, the policy loss, rollout_correction)
estimate the policy gradient from those samples with none / TIS / MIS, against the *exact*
on-policy gradient.

Exact: each prompt stops mid-trace ("... <think>8+5=") and the reward is 1 when the two
sampled tokens are the step's right result ("13"), so E_pi[R] is a sum over all V^2 token
pairs, differentiable in closed form (one forward of V continuations per prompt).
Measured on the shared 2-core CPU box (2026-12-01; N = 3 x 768 samples, mismatch KL 0.065
per token): no correction 0.63 relative error, token TIS 0.064, sequence TIS 0.064 (an
on-policy sample of the same size: 0.14), token MIS 0.44 (its [0.5, 2] band drops ~13% of
the tokens: biased, still closer than none). Geometric TIS (not asserted) ~0.33.
"""
import copy
from pathlib import Path

import pytest
import torch

from grpo.algos import losses as L
from grpo.data import apply_template
from grpo.model.policy import build_batch, load_policy, score_shared_prompt
from grpo.rollout.base import SamplingParams, end_token_ids
from grpo.rollout.hf import HFEngine
from grpo.rollout.overlap import behaviour_logprobs

ROOT = Path(__file__).resolve().parents[2]

STEPS = [("What is 3+4+5?", "3+4=", "7."), ("What is 8+5+2?", "8+5=", "13"), ("What is 6+9+1?", "6+9=", "15")]
PROMPTS = [apply_template("r1_zero_tiny", q) + " <think>" + s for q, s, _ in STEPS]
N = 768                                   # samples per prompt


def _grads(model) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def _exact_value(model, tok) -> torch.Tensor:
    """E_pi[R] over the prompts, exactly: R = 1 iff the two sampled tokens spell the step's result."""
    V, total = len(tok), 0.0
    ended = torch.tensor([v in set(end_token_ids(tok, model.generation_config)) for v in range(V)])
    for p, (_, _, target) in zip(PROMPTS, STEPS):
        ids = tok(p, return_tensors="pt").input_ids                                     # [1, P]
        lp1 = torch.log_softmax(model(input_ids=ids).logits[0, -1].float(), -1)         # [V]
        pairs = torch.cat([ids.repeat(V, 1), torch.arange(V)[:, None]], 1)              # [V, P+1]
        lp2 = torch.log_softmax(model(input_ids=pairs).logits[:, -1].float(), -1)       # [V, V]
        t0, t1 = tok.convert_tokens_to_ids(list(target))
        p_right = lp2[:, t1].exp() * (torch.arange(V) == t0)                            # [V]
        total = total + (lp1.exp() * p_right.masked_fill(ended, 0.0)).sum()   # a stop token ends it: R 0
    return total / len(PROMPTS)


def _exact_grad(model, tok) -> torch.Tensor:
    model.zero_grad(set_to_none=True)
    _exact_value(model, tok).backward()
    return _grads(model)


def _sample(model, tok, seed: int):
    """N completions of 2 tokens per prompt from ``model`` through the hf engine, its log-probs recorded."""
    torch.manual_seed(seed)
    groups = HFEngine(model, tok, max_batch=4096, return_logprobs=True).generate(
        PROMPTS, SamplingParams(n=N, max_new_tokens=2))
    comps = [c for g in groups for c in g.completions]
    batch = build_batch([g.prompt_ids for g in groups for _ in range(N)], [c.token_ids for c in comps],
                        tok.pad_token_id, group=[i // N for i in range(len(comps))])
    reward = torch.tensor([float(c.text.startswith(STEPS[i // N][2])) for i, c in enumerate(comps)])
    return batch, behaviour_logprobs(groups, batch.mask.shape[1]), reward


def _estimate(policy, batch, behav, reward, method: str, level: str = "token", loss: str = "ppo_clip"):
    """The trainer's estimate of grad E[R]: policy loss x correction weight, summed over tokens / N."""
    policy.zero_grad(set_to_none=True)
    logp, _ = score_shared_prompt(policy, batch)                                        # [N, 2]
    adv = reward - reward.view(len(PROMPTS), N).mean(1).repeat_interleave(N)           # group baseline
    loss_tok, _ = L.POLICY_LOSSES[loss](logp, logp.detach(), adv, batch.mask, 0.2, 0.2)
    w, met = L.rollout_correction(logp.detach(), behav, batch.mask, method, level, 0.5, 2.0)
    (-(loss_tok * w * batch.mask).sum() / len(batch)).backward()                      # ascent direction
    return _grads(policy), met


@pytest.fixture(scope="module")
def stale_setup():
    torch.manual_seed(0)
    tok, policy = load_policy(str(ROOT / "data/tiny_model"))
    sampler = copy.deepcopy(policy).requires_grad_(False)          # the weights two steps older
    opt = torch.optim.Adam(policy.parameters(), lr=1e-4)
    for _ in range(2):                                              # two real optimizer steps up E[R]
        g = _exact_grad(policy, tok)
        for p in policy.parameters():
            p.grad = -p.grad
        opt.step()
        opt.zero_grad(set_to_none=True)
    return tok, policy, sampler, _exact_grad(policy, tok)


def test_tis_and_mis_with_the_hf_engine_stay_closer_to_the_exact_gradient(stale_setup):
    tok, policy, sampler, exact = stale_setup
    rel = lambda g: ((g - exact).norm() / exact.norm()).item()   # noqa: E731
    on = rel(_estimate(policy, *_sample(policy, tok, 1), "none")[0])
    stale = _sample(sampler, tok, 2)
    err, mets = {}, {}
    for method, level in [("none", "token"), ("tis", "token"), ("mis", "token"), ("tis", "sequence")]:
        g, mets[method, level] = _estimate(policy, *stale, method, level)
        err[method, level] = rel(g)
    kl = mets["none", "token"]["mismatch_kl"]
    print(f"on-policy {on:.3f}, mismatch KL {kl:.4f}, " + ", ".join(f"{m}/{lv} {e:.3f}" for (m, lv), e in err.items()))
    assert 0.02 < kl < 0.3, kl                              # a real, moderate shift (measured ~0.06)
    assert on < 0.3, on                                     # N is enough: on-policy noise 0.14
    base = err.pop(("none", "token"))
    assert base > 0.4, (base, err)                          # uncorrected: 0.63 off the exact gradient
    assert err["tis", "token"] < 0.25 * base and err["tis", "sequence"] < 0.25 * base, (err, base)
    assert err["mis", "token"] < 0.75 * base, (err, base)   # MIS drops tokens: biased, still closer
    assert mets["mis", "token"]["masked_frac"] > 0 and mets["tis", "token"]["is_ratio_max"] > 1


def test_the_sampler_logprobs_of_the_live_policy_match_the_trainer(stale_setup):
    """Control: the engine sampling the policy itself records the trainer's log-probs (ratio 1)."""
    tok, policy, _, _ = stale_setup
    batch, behav, _ = _sample(policy, tok, 3)
    with torch.no_grad():
        logp, _ = score_shared_prompt(policy, batch)
    assert ((logp - behav) * batch.mask).abs().max().item() < 1e-4
