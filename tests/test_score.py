from __future__ import annotations

import math

import pytest
import torch

from rbmdiff import RBM, VPSDE, RbmdiffError
from rbmdiff.exact import binary_states, visible_mean_given_field
from rbmdiff.score import (
    FreeEnergyScore,
    PosteriorScore,
    gibbs_mean,
    logit_bound,
    make_score,
    meanfield_mean,
    to_logit,
)
from rbmdiff.train import dsm_loss

SDE = VPSDE(0.1, 20.0)


def _a_t(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = 3 * torch.randn(5, n, generator=g, dtype=torch.float64)
    t = torch.tensor([0.05, 0.2, 0.4, 0.7, 1.0], dtype=torch.float64)
    return a, t


def test_free_energy_score_is_autograd_of_free_energy(tiny_rbm):
    a, t = _a_t(6)
    a.requires_grad_(True)
    (grad,) = torch.autograd.grad(-tiny_rbm.free_energy(torch.sigmoid(a)).sum(), a)
    score = FreeEnergyScore(sde=SDE)(tiny_rbm, a.detach(), t)
    torch.testing.assert_close(score, grad)


def log_p_t(rbm: RBM, a: torch.Tensor, t: torch.Tensor, eps: float) -> torch.Tensor:
    """log p_t(a) = log Σ_v p(v) N(a; α_t L(2v - 1), σ_t² I), by enumerating all v."""
    L = logit_bound(eps)
    v = binary_states(rbm.n_visible, dtype=torch.float64)
    log_pv = -rbm.free_energy(v)  # unnormalised: constant in a
    mean = SDE.alpha(t)[:, None, None] * L * (2 * v[None] - 1)  # (B, 2^n, n)
    var = SDE.sigma(t)[:, None, None] ** 2
    log_n = (-((a[:, None, :] - mean) ** 2) / (2 * var)).sum(-1)  # (B, 2^n)
    return torch.logsumexp(log_pv[None] + log_n, 1)


@pytest.mark.parametrize("eps", [1e-3, 0.05])
def test_posterior_score_is_score_of_noised_marginal(tiny_rbm, eps):
    """Exact m: s_θ(a, t) = ∇_a log p_t(a) by autograd of the brute-force marginal, and by
    central finite differences (step 1e-5, float64: truncation error ~1e-10 · |∂³|)."""
    a, t = _a_t(6)
    score = PosteriorScore(sde=SDE, eps=eps, m_method="exact")(tiny_rbm, a, t)
    x = a.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(log_p_t(tiny_rbm, x, t, eps).sum(), x)
    torch.testing.assert_close(score, grad, rtol=1e-9, atol=1e-9)
    h = 1e-5
    fd = torch.stack([
        (log_p_t(tiny_rbm, a + h * e, t, eps) - log_p_t(tiny_rbm, a - h * e, t, eps)) / (2 * h)
        for e in torch.eye(6, dtype=torch.float64)
    ], 1)
    torch.testing.assert_close(score, fd, rtol=1e-5, atol=1e-5)


def test_meanfield_is_exact_without_couplings_and_converges_with_them():
    """W = 0: the RBM factorises and one sweep gives the exact m.  Weak W: the fixed point
    is within O(|W|²) of exact, and more sweeps do not move it away."""
    n, m = 5, 3
    g = torch.Generator().manual_seed(2)
    u = torch.randn(4, n, generator=g, dtype=torch.float64)
    free = RBM(torch.zeros(n, m, dtype=torch.float64), torch.randn(n, generator=g,
               dtype=torch.float64), torch.randn(m, generator=g, dtype=torch.float64))
    torch.testing.assert_close(meanfield_mean(free, u, sweeps=1, damping=1.0),
                               visible_mean_given_field(free, u))
    weak = RBM.random(n, m, scale=0.05, seed=4, dtype=torch.float64)
    exact_m = visible_mean_given_field(weak, u)
    err = (meanfield_mean(weak, u, sweeps=50) - exact_m).abs().max()
    assert err < 5e-3


def test_gibbs_mean_within_monte_carlo_error(tiny_rbm):
    """Clamped-field Gibbs m vs exact m. 4,000 replicas of one row, 40 sweeps, second half
    averaged: each unit's estimate has std ≤ 0.5/√(4000·20) ≈ 0.002 if sweeps were
    independent; autocorrelation inflates it a few-fold, so 0.02 is a > 5σ band."""
    u = torch.randn(1, 6, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    exact_m = visible_mean_given_field(tiny_rbm, u)
    est = gibbs_mean(tiny_rbm, u.expand(4000, -1), sweeps=40,
                     generator=torch.Generator().manual_seed(0)).mean(0, keepdim=True)
    assert (est - exact_m).abs().max() < 0.02


def test_dsm_loss_with_exact_posterior_is_denoising_regression(tiny_rbm):
    """‖σ_t s_θ(a_t) + ζ‖² = (α_t/σ_t)² 4L² ‖m_θ(a_t, t) - v‖²  (DESIGN §5), per example."""
    eps = 1e-2
    score = PosteriorScore(sde=SDE, eps=eps, m_method="exact")
    L = logit_bound(eps)
    v = torch.bernoulli(torch.full((7, 6), 0.5, dtype=torch.float64),
                        generator=torch.Generator().manual_seed(1))
    t = torch.linspace(0.05, 1.0, 7, dtype=torch.float64)
    a_t, zeta = SDE.marginal_sample(to_logit(v, eps), t, generator=torch.Generator().manual_seed(2))
    lhs = ((SDE.sigma(t)[:, None] * score(tiny_rbm, a_t, t) + zeta) ** 2).sum(-1)
    ratio = (SDE.alpha(t) / SDE.sigma(t))[:, None]
    rhs = (ratio**2 * 4 * L**2 * (score.m(tiny_rbm, a_t, t) - v) ** 2).sum(-1)
    torch.testing.assert_close(lhs, rhs)
    # And dsm_loss draws exactly this with the same generator stream.
    loss = dsm_loss(tiny_rbm, score, v, t_eps=0.05, generator=torch.Generator().manual_seed(3))
    assert math.isfinite(float(loss)) and float(loss) > 0


def test_gradients_flow_to_parameters_through_both_m_methods(tiny_rbm):
    a, t = _a_t(6)
    for method in ("exact", "meanfield"):
        rbm = tiny_rbm.detach().requires_grad_()
        PosteriorScore(sde=SDE, m_method=method)(rbm, a, t).sum().backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in rbm.parameters())


def test_logit_map_and_bad_options():
    assert to_logit(torch.tensor([0.0, 1.0], dtype=torch.float64), 1e-3).tolist() == pytest.approx(
        [-logit_bound(1e-3), logit_bound(1e-3)])
    with pytest.raises(RbmdiffError, match="ε"):
        to_logit(torch.zeros(1), 0.7)
    with pytest.raises(RbmdiffError, match="unknown score"):
        make_score("nope", sde=SDE)
    with pytest.raises(RbmdiffError, match="m_method"):
        PosteriorScore(sde=SDE, m_method="magic")
