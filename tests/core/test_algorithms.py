"""Advantages, losses, KL and aggregation against hand-computed values."""
import math

import pytest
import torch

from grpo.algos import core as A


def test_grpo_advantage_hand_computed():
    r = torch.tensor([1.0, 0.0, 0.0, 1.0])                  # B=1, G=4: mean .5, unbiased std .5774
    adv = A.ADVANTAGES["grpo"](r, 4)
    std = math.sqrt(((0.5 ** 2) * 4) / 3)
    expected = torch.tensor([0.5, -0.5, -0.5, 0.5]) / (std + 1e-4)
    assert torch.allclose(adv, expected, atol=1e-6)


def test_advantages_are_per_group():
    r = torch.tensor([1.0, 0.0, 5.0, 5.0])                  # B=2, G=2
    assert torch.allclose(A.ADVANTAGES["dr_grpo"](r, 2), torch.tensor([0.5, -0.5, 0.0, 0.0]))
    assert torch.allclose(A.ADVANTAGES["grpo"](r, 2)[2:], torch.zeros(2))


def test_rloo_is_leave_one_out():
    r = torch.tensor([3.0, 0.0, 0.0])
    # 3 - mean(0,0) = 3; 0 - mean(3,0) = -1.5
    assert torch.allclose(A.ADVANTAGES["rloo"](r, 3), torch.tensor([3.0, -1.5, -1.5]))


def test_clipped_surrogate_negative_advantage():
    old = torch.zeros(1, 3)
    logp = torch.log(torch.tensor([[0.5, 0.9, 1.3]]))
    loss, m = A.clipped_surrogate(logp, old, torch.tensor([-1.0]), clip_low=0.2, clip_high=0.28)
    # A<0: loss = -min(r*A, clip(r)*A) = max(r, clip(r)); ratio 0.5 clipped up to 0.8
    assert torch.allclose(loss, torch.tensor([[0.8, 0.9, 1.3]]))
    assert m["clip_low"].tolist() == [[True, False, False]]
    assert not m["clip_high"].any()


def test_clip_higher_asymmetry():
    old = torch.zeros(1, 1)
    logp = torch.log(torch.tensor([[1.25]]))
    sym, _ = A.clipped_surrogate(logp, old, torch.tensor([1.0]), 0.2, 0.2)
    high, _ = A.clipped_surrogate(logp, old, torch.tensor([1.0]), 0.2, 0.28)
    assert sym.item() == pytest.approx(-1.2) and high.item() == pytest.approx(-1.25)


def test_surrogate_gradient_is_advantage_at_ratio_one():
    logp = torch.zeros(2, 3, requires_grad=True)
    loss, _ = A.clipped_surrogate(logp, logp.detach(), torch.tensor([2.0, -1.0]), 0.2, 0.2)
    loss.sum().backward()
    assert torch.allclose(logp.grad, torch.tensor([[-2.0] * 3, [1.0] * 3]))


def test_kl_estimators():
    logp, ref = torch.tensor([-1.0]), torch.tensor([-2.0])
    assert A.KL_ESTIMATORS["k1"](logp, ref).item() == pytest.approx(1.0)
    assert A.KL_ESTIMATORS["k2"](logp, ref).item() == pytest.approx(0.5)
    assert A.KL_ESTIMATORS["k3"](logp, ref).item() == pytest.approx(math.exp(-1) + 1 - 1)


def _loss_mask():
    loss = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    return loss, mask


def test_aggregations_hand_computed():
    loss, mask = _loss_mask()
    assert A.AGGREGATIONS["token_mean"](loss, mask, 4, 2, 10).item() == pytest.approx(10 / 4)
    assert A.AGGREGATIONS["seq_mean"](loss, mask, 4, 2, 10).item() == pytest.approx((2 + 4) / 2)
    assert A.AGGREGATIONS["constant"](loss, mask, 4, 2, 10).item() == pytest.approx(10 / 20)


@pytest.mark.parametrize("name", ["token_mean", "seq_mean", "constant"])
def test_micro_batches_sum_to_full_batch(name):
    torch.manual_seed(0)
    loss = torch.randn(6, 5)
    mask = (torch.rand(6, 5) > 0.3).float()
    mask[:, 0] = 1
    n_tok, n_seq = int(mask.sum()), 6
    full = A.AGGREGATIONS[name](loss, mask, n_tok, n_seq, 5)
    parts = sum(A.AGGREGATIONS[name](loss[i:i + 2], mask[i:i + 2], n_tok, n_seq, 5) for i in (0, 2, 4))
    assert torch.allclose(full, parts, atol=1e-6)


def test_token_logprobs_matches_log_softmax():
    logits = torch.randn(2, 3, 7)
    ids = torch.randint(0, 7, (2, 3))
    ref = torch.log_softmax(logits, -1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(A.token_logprobs(logits, ids), ref, atol=1e-6)


def test_unknown_name_lists_choices():
    with pytest.raises(ValueError, match="known"):
        A.get(A.ADVANTAGES, "ppo", "advantage")
