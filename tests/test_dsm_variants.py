"""Oracle tests for the variance-reduced DSM options: each against brute force,
a closed form or autograd."""

from __future__ import annotations

import math

import pytest
import torch

import rbmdiff.score as score_module
from rbmdiff.data import load_dataset
from rbmdiff.exact import binary_states, visible_mean_given_field
from rbmdiff.rbm import RBM
from rbmdiff.score import gibbs_cov_mean, logit_bound, make_score, visible_enum_mean
from rbmdiff.sde import VPSDE, uniform01
from rbmdiff.train import dsm_loss, empirical_score, t_range_of_log_snr, train

SDE = VPSDE()
L = logit_bound(1e-3)


def test_stratified_uniforms_put_one_draw_in_each_stratum():
    u = uniform01(50, stratified=True, generator=torch.Generator().manual_seed(0))
    assert sorted((u * 50).floor().long().tolist()) == list(range(50))


def test_log_snr_and_its_inverse_agree_and_bound_the_likelihood_draws():
    t = torch.linspace(0.01, 1.0, 20, dtype=torch.float64)
    torch.testing.assert_close(SDE.t_of_log_snr(SDE.log_snr(t, L), L), t)
    lo, hi = t_range_of_log_snr(SDE, L, (-4.0, 4.0))
    assert float(SDE.log_snr(torch.tensor(lo, dtype=torch.float64), L)) == pytest.approx(4.0)
    t_draw, z = SDE.sample_likelihood_t(1000, lo, t_max=hi, stratified=True,
                                        generator=torch.Generator().manual_seed(1))
    assert lo <= float(t_draw.min()) and float(t_draw.max()) <= hi
    assert z == pytest.approx(8.0, rel=1e-6)  # uniform in log-SNR: Z = λ_max - λ_min


def test_visible_enumeration_equals_hidden_enumeration(tiny_rbm):
    u = 2.0 * torch.randn(5, tiny_rbm.n_visible, dtype=torch.float64,
                          generator=torch.Generator().manual_seed(0))
    expected = visible_mean_given_field(tiny_rbm, u)
    torch.testing.assert_close(visible_enum_mean(tiny_rbm, u), expected)


def _direct_visible_mean(rbm: RBM, u: torch.Tensor) -> torch.Tensor:
    """The definition: m = softmax_v(-F(v) + uᵀv) @ v over all 2^n states."""
    states = binary_states(rbm.n_visible, dtype=rbm.dtype)
    return torch.softmax(-rbm.free_energy(states)[None] + u @ states.T, 1) @ states


def test_factorised_visible_enumeration_matches_the_softmax_and_its_gradient(monkeypatch):
    """visible_enum_mean (Z = αᵀ E β over the two halves of v) against the softmax over all
    2^9 states, values and autograd gradients, for fields from 0.1 to 1,000 per unit (the
    log-SNR window [-4, 4] gives |u| up to ~150).  The last row is built so that the shifted
    factors are all below e^-4000 (b = -1000 and u = +1000 on the second half): it must be
    answered by the direct fallback, and still exactly."""
    rbm = RBM.random(9, 5, scale=1.0, seed=6, dtype=torch.float64)
    rbm.b[4:] = -1000.0
    gen = torch.Generator().manual_seed(7)
    u = torch.cat([s * torch.randn(4, 9, generator=gen, dtype=torch.float64)
                   for s in (0.1, 3.0, 100.0, 1000.0)])
    u[-1, 4:] = 1000.0 + torch.randn(5, generator=gen, dtype=torch.float64)
    calls = []
    direct = score_module._visible_enum_mean_direct
    monkeypatch.setattr(score_module, "_visible_enum_mean_direct",
                        lambda r, x: calls.append(len(x)) or direct(r, x))
    w = torch.randn(len(u), 9, generator=gen, dtype=torch.float64)
    fast, slow = rbm.detach().requires_grad_(), rbm.detach().requires_grad_()
    m_fast, m_slow = visible_enum_mean(fast, u), _direct_visible_mean(slow, u)
    ((m_fast * w).sum()).backward()
    ((m_slow * w).sum()).backward()
    torch.testing.assert_close(m_fast, m_slow)
    for p_fast, p_slow in zip(fast.parameters(), slow.parameters(), strict=True):
        torch.testing.assert_close(p_fast.grad, p_slow.grad)
    assert calls and calls[0] >= 1  # the built row went through the fallback


def test_empirical_score_is_the_gradient_of_the_noised_empirical_log_density():
    """s_data(a) = ∇_a log (1/N) Σ_k N(a; α L (2 v_k - 1), σ² I), checked by autograd."""
    ref = load_dataset("bas-3x3").train.to(torch.float64)
    t = torch.full((4,), 0.6, dtype=torch.float64)
    a = torch.randn(4, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    a.requires_grad_()
    alpha, sigma = SDE.alpha(t)[:, None, None], SDE.sigma(t)[:, None, None]
    means = alpha * L * (2 * ref[None] - 1)  # (B, N, n)
    log_p = torch.logsumexp(-((a[:, None] - means) ** 2).sum(-1) / (2 * sigma[..., 0] ** 2), 1)
    (grad,) = torch.autograd.grad(log_p.sum(), a)
    torch.testing.assert_close(empirical_score(SDE, ref, a.detach(), t, L), grad)


def test_gibbs_covariance_gradient_matches_the_exact_gradient_of_m(tiny_rbm):
    """∂(gᵀm)/∂θ by Cov(gᵀv, -∂F/∂θ) from 4,000 clamped chains vs autograd through exact m.
    Tolerance: ~5 standard errors of the covariance estimate at 4,000 chains (seed 0)."""
    u = torch.randn(3, tiny_rbm.n_visible, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(4))
    g = torch.randn(3, tiny_rbm.n_visible, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(5))
    exact_rbm = RBM(*(p.clone() for p in tiny_rbm.parameters())).requires_grad_()
    (visible_enum_mean(exact_rbm, u) * g).sum().backward()
    mc_rbm = RBM(*(p.clone() for p in tiny_rbm.parameters())).requires_grad_()
    m = gibbs_cov_mean(mc_rbm, u, sweeps=30, chains=4000,
                       generator=torch.Generator().manual_seed(0))
    (m * g).sum().backward()
    torch.testing.assert_close(m.detach(), visible_enum_mean(tiny_rbm, u), atol=0.03, rtol=0)
    for p_mc, p_ex in zip(mc_rbm.parameters(), exact_rbm.parameters(), strict=True):
        torch.testing.assert_close(p_mc.grad, p_ex.grad, atol=0.15, rtol=0.1)


def test_data_target_leaves_the_expected_dsm_loss_gradient_unchanged():
    """E over (t, ζ, row) of ∇ℓ is the same with the -ζ/σ target and with the exact noised-data
    score: 400 draws of the whole bas-3x3 set each; cosine > 0.97 (measured 0.99, seed 0)."""
    x = load_dataset("bas-3x3").train
    rbm = RBM.random(9, 4, scale=0.5, seed=0).requires_grad_()
    score = make_score("posterior", sde=SDE, m_method="exact")

    def mean_grad(**kw) -> torch.Tensor:
        gen = torch.Generator().manual_seed(0)
        loss = sum(dsm_loss(rbm, score, x, generator=gen, **kw) for _ in range(400))
        grads = torch.autograd.grad(loss, rbm.parameters())
        return torch.cat([g.flatten() for g in grads])

    plain, rb = mean_grad(), mean_grad(reference=x)
    assert float(torch.nn.functional.cosine_similarity(plain, rb, 0)) > 0.97


def test_variance_reduced_options_train_and_are_recorded():
    x = load_dataset("bas-3x3").train
    r = train(x, n_hidden=4, steps=5, batch_size=14, weighting="likelihood",
              log_snr_range=(-4, 4), stratified=True, data_target=True, n_noise=2,
              lr_schedule="cosine", ema=0.9, init_scale=0.3, m_method="gibbs_cov",
              gibbs_sweeps=3, gibbs_chains=4)
    training = r.rbm.meta["training"]
    assert training["n_noise"] == 2 and training["ema"] == 0.9 and training["data_target"]
    assert math.isfinite(r.history[-1]["kl_data_model"])
