"""A deliberately shifted sampler: TIS / MIS keep the update closer to the on-policy gradient.

The policy is a product of T independent categoricals (logits ``theta [T, V]``); the reward
of a sequence counts its token-0s, so the on-policy gradient of E_pi[R] is exact in closed
form: d/dtheta_t of p_t(0). The sampler draws from shifted logits (theta + delta: older
weights, another dtype or kernel), and the gradient is estimated through the trainer's own
pieces (policy loss by name, rollout_correction weights, a sum over tokens / N).
"""
import pytest
import torch

from grpo.algos import losses as L

T, V, N = 4, 6, 40000


def _setup(shift: float, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(T, V, generator=g)
    sampler_logits = theta + shift * torch.randn(T, V, generator=g)
    ys = torch.multinomial(torch.softmax(sampler_logits, -1), N, replacement=True, generator=g).T   # [N, T]
    exact = torch.autograd.functional.jacobian(lambda th: torch.softmax(th, -1)[:, 0].sum(), theta)
    return theta, sampler_logits, ys, exact


def _estimate(theta, sampler_logits, ys, method, level="token", policy_loss="ppo_clip"):
    th = theta.clone().requires_grad_(True)
    logp = torch.log_softmax(th, -1)[torch.arange(T), ys]                    # [N, T]
    samp = torch.log_softmax(sampler_logits, -1)[torch.arange(T), ys]
    mask = torch.ones(N, T)
    R = (ys == 0).float().sum(-1)
    adv = R - R.mean()
    loss, _ = L.POLICY_LOSSES[policy_loss](logp, logp.detach(), adv, mask, 0.2, 0.2)
    w, met = L.rollout_correction(logp.detach(), samp, mask, method, level, low=0.5, high=2.0)
    (-(loss * w).sum() / N).backward()                                          # ascent direction
    return th.grad, met


def _rel_err(g, exact):
    return ((g - exact).norm() / exact.norm()).item()


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("policy_loss", ["ppo_clip", "cispo"])
def test_tis_and_mis_stay_closer_to_the_on_policy_gradient(policy_loss, seed):
    theta, samp, ys, exact = _setup(shift=0.3, seed=seed)
    err = {}
    for method, level in [("none", "token"), ("tis", "token"), ("mis", "token"), ("tis", "sequence"),
                          ("tis", "geometric")]:
        g, met = _estimate(theta, samp, ys, method, level, policy_loss)
        err[f"{method}/{level}"] = _rel_err(g, exact)
    assert met["mismatch_kl"] > 0.02                       # the shift is real (KL ~0.03-0.04 per token)
    base = err.pop("none/token")
    assert base > 0.15, base                               # no correction: 15-20% off the on-policy gradient
    for name in ("tis/token", "mis/token", "tis/sequence"):
        assert err[name] < 0.5 * base, (name, err, base)   # measured: 4-10x closer
    assert err["tis/geometric"] < 0.9 * base, (err, base)  # the geometric mean corrects less (biased)


def test_a_narrow_mis_band_under_a_large_shift_is_counted():
    """Masking is for rare outliers: when the shift is large the dropped share is reported
    (28% here) and the estimate is no better than none; a wider band fixes it."""
    theta, samp, ys, exact = _setup(shift=0.6)
    g_none, _ = _estimate(theta, samp, ys, "none")
    g_mis, met = _estimate(theta, samp, ys, "mis")
    assert met["masked_frac"] > 0.2
    assert _rel_err(g_mis, exact) > 0.8 * _rel_err(g_none, exact)
    th = theta.clone().requires_grad_(True)
    logp = torch.log_softmax(th, -1)[torch.arange(T), ys]
    w, _ = L.rollout_correction(logp.detach(), torch.log_softmax(samp, -1)[torch.arange(T), ys],
                                torch.ones(N, T), "mis", low=0.2, high=5.0)
    R = (ys == 0).float().sum(-1)
    (-(L.ppo_clip_loss(logp, logp.detach(), R - R.mean(), None, 0.2, 0.2)[0] * w).sum() / N).backward()
    assert _rel_err(th.grad, exact) < 0.25 * _rel_err(g_none, exact)


def test_on_policy_sampler_changes_nothing():
    """No shift: the weights are 1 and the estimate is the uncorrected one."""
    theta, samp, ys, exact = _setup(shift=0.0)
    g0, _ = _estimate(theta, samp, ys, "none")
    g1, met = _estimate(theta, samp, ys, "tis")
    torch.testing.assert_close(g0, g1)
    assert met["mismatch_kl"] == pytest.approx(0.0, abs=1e-6) and met["masked_frac"] == 0.0
    assert _rel_err(g1, exact) < 0.1                       # and the estimator is the on-policy one
