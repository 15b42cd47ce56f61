"""Observation (tool output) tokens carry zero loss: the loss mask of multi-turn episodes
goes through build_batch into every policy loss and aggregation, so the logits at
observation positions get exactly zero gradient and changing them changes nothing."""
import pytest
import torch
from tools_fixtures import ScriptedEngine, tiny_dir, tiny_tok  # noqa: F401

from grpo.algos import core as A
from grpo.algos import losses as L
from grpo.envs.calculator import Calculator
from grpo.model.policy import build_batch
from grpo.rollout.base import SamplingParams
from grpo.rollout.multiturn import MultiTurnEngine, with_rows


@pytest.fixture(scope="module")
def batch(tiny_tok):
    turns = [" <think><calc>3+7+2</calc>", "<calc>12*2</calc>", "</think> <answer>24</answer>"]
    eng = ScriptedEngine(tiny_tok, turns)
    groups = MultiTurnEngine(eng, Calculator, tiny_tok, max_turns=5, max_total_tokens=200).generate(
        with_rows(["3+7+2=", "x="], [{"prompt": "a"}, {"prompt": "b"}]), SamplingParams(n=2, max_new_tokens=64))
    comps = [c for g in groups for c in g.completions]
    comps[1].loss_mask, comps[1].token_ids = None, comps[1].token_ids[:30]   # a single-turn row too
    b = build_batch([g.prompt_ids for g in groups for _ in g.completions], [c.token_ids for c in comps],
                    tiny_tok.pad_token_id, loss_mask=[c.loss_mask for c in comps])
    return b, comps


def test_build_batch_mask_is_the_loss_mask(batch):
    b, comps = batch
    for i, c in enumerate(comps):
        want = c.loss_mask if c.loss_mask is not None else [1] * len(c.token_ids)
        assert b.mask[i, :len(c.token_ids)].tolist() == want
        assert b.mask[i, len(c.token_ids):].sum() == 0
        assert b.attention_mask[i, -b.mask.shape[1]:].sum() == len(c.token_ids)   # the model still reads them
    assert (b.mask == 0).logical_and(b.attention_mask[:, -b.mask.shape[1]:] == 1).sum() == 2 * 3 * 19


def test_build_batch_rejects_a_mask_of_the_wrong_length():
    with pytest.raises(ValueError, match="loss_mask 0 has 2 entries for 3 tokens"):
        build_batch([[1]], [[1, 2, 3]], 0, loss_mask=[[1, 0]])


def _loss(logits, b, loss_name, agg_name, beta):
    torch.manual_seed(1)
    logp = A.token_logprobs(logits, b.completion_ids)                     # [N, C]
    old = (logp.detach() + 0.3 * torch.randn_like(logp)).clamp(max=0)     # ratios away from 1: clipping on
    ref = old - 0.2
    adv = torch.tensor([1.0, -0.5, 0.7, -1.2])
    mask = b.mask
    n_tokens = int(mask.sum())
    tok, _ = A.get(L.POLICY_LOSSES, loss_name, "policy loss")(logp, old, adv, mask, 0.2, 0.28)
    if beta:
        tok = tok + beta * A.get(A.KL_ESTIMATORS, "k3", "kl")(logp, ref)
    return A.get(A.AGGREGATIONS, agg_name, "agg")(tok, mask, n_tokens, len(b), b.mask.shape[1])


@pytest.mark.parametrize("loss_name", sorted(L.POLICY_LOSSES))
@pytest.mark.parametrize("agg_name", sorted(A.AGGREGATIONS))
@pytest.mark.parametrize("beta", [0.0, 0.1])
def test_observation_logits_get_zero_gradient_and_change_nothing(batch, loss_name, agg_name, beta):
    b, _ = batch
    torch.manual_seed(0)
    N, C = b.completion_ids.shape
    logits = torch.randn(N, C, 104, requires_grad=True)                   # [N, C, V]
    loss = _loss(logits, b, loss_name, agg_name, beta)
    loss.backward()
    obs = (b.mask == 0)                                                   # observations and padding
    assert logits.grad[obs].abs().max() == 0
    assert logits.grad[b.mask == 1].abs().sum() > 0                       # sampled tokens do learn
    moved = logits.detach().clone()
    moved[obs] += 20 * torch.randn_like(moved[obs])                       # any other observation logits
    assert torch.equal(_loss(moved, b, loss_name, agg_name, beta), loss.detach())
