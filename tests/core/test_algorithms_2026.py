"""Policy losses by name and rollout correction, against values computed by hand."""
import math

import pytest
import torch

from grpo.algos import core as A
from grpo.algos import losses as L

ONE = torch.ones(1, 3)


def _grad(name, lp_vals, old_vals, adv, mask=ONE, lo=0.2, hi=0.2):
    lp = torch.tensor([lp_vals], requires_grad=True)
    loss, met = L.POLICY_LOSSES[name](lp, torch.tensor([old_vals]), torch.tensor([adv]), mask, lo, hi)
    (loss * mask).sum().backward()
    return loss.detach(), lp.grad, met


@pytest.mark.parametrize("name", sorted(L.POLICY_LOSSES))
def test_every_loss_is_minus_advantage_on_policy(name):
    """On-policy (ratio 1) every loss has gradient -A per token."""
    _, g, _ = _grad(name, [-1.0, -2.0, -0.5], [-1.0, -2.0, -0.5], 0.7)
    torch.testing.assert_close(g, torch.full((1, 3), -0.7))


def test_ppo_clip_by_hand():
    r = [1.5, 0.9, 0.7]                      # A > 0: 1.5 clipped at 1.2 (no grad), others unclipped
    loss, g, m = _grad("ppo_clip", [math.log(x) for x in r], [0.0] * 3, 1.0)
    torch.testing.assert_close(loss, torch.tensor([[-1.2, -0.9, -0.7]]))
    torch.testing.assert_close(g, torch.tensor([[0.0, -0.9, -0.7]]))   # d(-r)/dlogp = -r
    assert m["clip_high"].tolist() == [[True, False, False]]


def test_gspo_sequence_ratio_by_hand():
    # log-ratios 0.3, -0.1 over 2 masked-in tokens (3rd masked out): s = exp(0.1)
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    loss, g, m = _grad("gspo", [0.3, -0.1, 9.0], [0.0, 0.0, 0.0], -1.0, mask)
    s = math.exp(0.1)                       # inside [0.8, 1.2]: unclipped, loss = -s*A = s
    torch.testing.assert_close(loss[:, :2], torch.tensor([[s, s]]))
    torch.testing.assert_close(g, torch.tensor([[s, s, 0.0]]))        # -A * s per live token
    assert m["ratio"][0, 0].item() == pytest.approx(s)
    # s = exp(0.5) > 1.2 with A > 0: the whole sequence is clipped, no gradient
    _, g2, m2 = _grad("gspo", [0.5, 0.5, 0.5], [0.0] * 3, 1.0)
    assert torch.all(g2 == 0) and m2["clip_high"].all()


def test_cispo_keeps_gradient_of_clipped_tokens():
    r = [1.5, 0.5, 1.0]
    loss, g, m = _grad("cispo", [math.log(x) for x in r], [0.0] * 3, 2.0)
    # gradient -sg(min(r, 1.2)) * A: the clipped token still learns, with weight 1.2
    torch.testing.assert_close(g, torch.tensor([[-2.4, -1.0, -2.0]]))
    torch.testing.assert_close(loss, torch.tensor([[-2.4 * math.log(1.5), -1.0 * math.log(0.5), 0.0]]))
    assert m["clip_high"].tolist() == [[True, False, False]] and not m["clip_low"].any()


def test_sapo_soft_gate_by_hand():
    r, tau = 1.5, 1.0
    _, g, _ = _grad("sapo", [math.log(r)] * 3, [0.0] * 3, 1.0)
    sig = 1 / (1 + math.exp(-tau * (r - 1)))
    want = -4 * sig * (1 - sig) * r          # d/dlogp of -(4/tau) sigmoid(tau (r-1)) * A
    torch.testing.assert_close(g, torch.full((1, 3), want))
    _, gn, _ = _grad("sapo", [math.log(r)] * 3, [0.0] * 3, -1.0)    # A < 0: tau_neg = 1.05
    sn = 1 / (1 + math.exp(-1.05 * (r - 1)))
    torch.testing.assert_close(gn, torch.full((1, 3), 4 * sn * (1 - sn) * r))


# ----------------------------------------------------------------------------- rollout correction
TR = torch.log(torch.tensor([[3.0, 1.0, 0.25], [1.1, 0.9, 1.0]]))
SA = torch.zeros(2, 3)
M = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])


def test_tis_token_level_by_hand():
    w, met = L.rollout_correction(TR, SA, M, "tis", "token", high=2.0)
    torch.testing.assert_close(w, torch.tensor([[2.0, 1.0, 0.25], [1.1, 0.9, 0.0]]))
    assert met["is_ratio_max"] == pytest.approx(3.0)
    assert met["is_ratio_mean"] == pytest.approx((3 + 1 + 0.25 + 1.1 + 0.9) / 5)
    assert met["masked_frac"] == pytest.approx(1 / 5)
    d = [math.log(x) for x in (3, 1, 0.25, 1.1, 0.9)]
    assert met["mismatch_kl"] == pytest.approx(sum(math.exp(x) - x - 1 for x in d) / 5, rel=1e-5)


def test_mis_sequence_and_geometric_levels_by_hand():
    # sequence ratios: 3 * 1 * 0.25 = 0.75 and 1.1 * 0.9 = 0.99 (the masked 3rd token ignored)
    w, met = L.rollout_correction(TR, SA, M, "mis", "sequence", low=0.8, high=1.25)
    torch.testing.assert_close(w, torch.tensor([[0.0, 0.0, 0.0], [0.99, 0.99, 0.0]]))
    assert met["masked_frac"] == pytest.approx(3 / 5)
    # geometric: 0.75 ** (1/3) = 0.9086 and 0.99 ** (1/2) = 0.99499: both inside [0.9, 1.1]
    w, met = L.rollout_correction(TR, SA, M, "mis", "geometric", low=0.9, high=1.1)
    g1, g2 = 0.75 ** (1 / 3), 0.99 ** 0.5
    torch.testing.assert_close(w, torch.tensor([[g1] * 3, [g2, g2, 0.0]]))
    assert met["masked_frac"] == 0.0 and met["is_ratio_max"] == pytest.approx(g2, rel=1e-5)


def test_tis_sequence_level_truncates_the_product():
    w, _ = L.rollout_correction(torch.log(torch.tensor([[1.5, 1.5]])), torch.zeros(1, 2), torch.ones(1, 2),
                                "tis", "sequence", high=2.0)
    torch.testing.assert_close(w, torch.tensor([[2.0, 2.0]]))        # 2.25 capped at 2


def test_none_and_bad_names():
    w, met = L.rollout_correction(TR, SA, M, "none")
    assert torch.equal(w, M) and met["masked_frac"] == 0.0
    with pytest.raises(ValueError, match="known"):
        L.rollout_correction(TR, SA, M, "tiss")
    with pytest.raises(ValueError, match="level"):
        L.rollout_correction(TR, SA, M, "tis", "seq")


def test_weights_carry_no_gradient():
    tr = TR.clone().requires_grad_(True)
    w, _ = L.rollout_correction(tr, SA, M, "tis")
    assert not w.requires_grad


def test_registry_names_and_user_functions(tmp_path):
    f = tmp_path / "mine.py"
    f.write_text("def adv(rewards, group_size):\n    return rewards * 2\n")
    fn = A.get(A.ADVANTAGES, f"{f}:adv", "advantage")
    assert fn(torch.tensor([1.0]), 1).item() == 2.0
    assert A.get(L.POLICY_LOSSES, "grpo.algos.losses:cispo_loss", "policy loss") is L.cispo_loss
    for bad, msg in [(f"{f}:nope", "no function 'nope'"), (f"{tmp_path}/x.py:f", "not found"),
                     ("no_such_mod_xyz:f", "cannot import"), ("gspoo", "did you mean 'gspo'")]:
        with pytest.raises(ValueError, match=msg):
            A.get(L.POLICY_LOSSES, bad, "policy loss")
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(ValueError, match="failed to import: RuntimeError: boom"):
        A.get(A.ADVANTAGES, f"{broken}:f", "advantage")


# ----------------------------------------------------------------------------- paper defaults
def test_each_loss_takes_its_paper_clip_when_the_recipe_leaves_it_unset():
    from grpo.config import AlgorithmConfig
    got = {n: (AlgorithmConfig(policy_loss=n).clip_low, AlgorithmConfig(policy_loss=n).clip_high)
           for n in ("ppo_clip", "gspo", "cispo", "sapo")}
    assert got == {"ppo_clip": (0.2, 0.2), "gspo": (3e-4, 4e-4), "cispo": (0.2, 4.0), "sapo": (0.2, 0.2)}
    assert AlgorithmConfig(policy_loss="gspo", clip_high=0.28).clip_high == 0.28     # the recipe wins
    assert AlgorithmConfig(policy_loss="gspo", clip_low=None).clip_low == 3e-4       # explicit null: default
    assert AlgorithmConfig(policy_loss="grpo.algos.losses:gspo_loss").clip_high == 0.2     # a user's fn: PPO's


def test_gspo_at_its_paper_clip_stops_a_sequence_that_moved_by_a_tenth_of_a_percent():
    """mu 2's second pass: mean log-ratio 1e-3, s = 1.001. GSPO's band (clip_high 4e-4) stops
    the sequence (A > 0: no gradient); under PPO's 0.2 (the default before) it passed."""
    from grpo.config import AlgorithmConfig
    a = AlgorithmConfig(policy_loss="gspo")
    lp = torch.tensor([[0.0015, 0.0005, 0.0]], requires_grad=True)
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    loss, met = L.bind(a)(lp, torch.zeros(1, 3), torch.tensor([1.0]), mask)
    (loss * mask).sum().backward()
    torch.testing.assert_close(loss[:, :2], torch.full((1, 2), -(1 + 4e-4)))       # clipped value
    assert torch.all(lp.grad == 0) and met["clip_high"][0, :2].all()
    s = math.exp(1e-3)                                                              # under 0.2: gradient -s A
    _, g, _ = _grad("gspo", [0.0015, 0.0005, 0.0], [0.0] * 3, 1.0, mask, 0.2, 0.2)
    torch.testing.assert_close(g, torch.tensor([[-s, -s, 0.0]]))


def test_cispo_default_cap_is_five_and_sapo_takes_the_recipes_temperatures():
    from grpo.config import AlgorithmConfig
    lp = torch.log(torch.tensor([[6.0, 2.0]])).requires_grad_(True)
    cispo = L.bind(AlgorithmConfig(policy_loss="cispo"))
    loss, met = cispo(lp, torch.zeros(1, 2), torch.tensor([1.0]), torch.ones(1, 2))
    loss.sum().backward()
    torch.testing.assert_close(lp.grad, torch.tensor([[-5.0, -2.0]]))               # -min(r, 1 + 4) * A
    assert met["clip_high"].tolist() == [[True, False]]
    r, tau = 1.5, 4.0
    lp = torch.full((1, 2), math.log(r), requires_grad=True)
    a = AlgorithmConfig(policy_loss="sapo", sapo_tau_pos=tau, sapo_tau_neg=9.0)
    loss, _ = L.bind(a)(lp, torch.zeros(1, 2), torch.tensor([1.0]), torch.ones(1, 2))
    loss.sum().backward()
    sig = 1 / (1 + math.exp(-tau * (r - 1)))
    torch.testing.assert_close(lp.grad, torch.full((1, 2), -4 * sig * (1 - sig) * r))   # 4 s(1-s) r: -0.6299


def test_sapo_has_no_floor_for_negative_tokens_where_ppo_stops():
    """Why SAPO at mu 2 unlearns a shared phrase on the tiny model (docs/ALGORITHMS.md): a
    near-certain token of a negative-advantage sample already pushed to r = 0.5 in the first
    pass gets no more gradient from PPO (clip_low 0.2), but SAPO's smooth gate keeps 47% of it
    (tau_neg 1.05), 19% at tau_neg 4.2."""
    lp = [math.log(0.5)] * 3
    _, g_ppo, m = _grad("ppo_clip", lp, [0.0] * 3, -1.0)
    assert torch.all(g_ppo == 0) and m["clip_low"].all()
    _, g_sapo, _ = _grad("sapo", lp, [0.0] * 3, -1.0)
    s = 1 / (1 + math.exp(-1.05 * (0.5 - 1)))
    assert g_sapo[0, 0].item() == pytest.approx(4 * s * (1 - s) * 0.5, abs=1e-6)     # 0.4671 (descent lowers it)
    x = torch.tensor([lp], requires_grad=True)
    loss, _ = L.sapo_loss(x, torch.zeros(1, 3), torch.tensor([-1.0]), ONE, 0.2, 0.2, tau_neg=4.2)
    loss.sum().backward()
    assert x.grad[0, 0].item() == pytest.approx(0.1944, abs=1e-4)
