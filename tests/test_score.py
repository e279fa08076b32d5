from __future__ import annotations

import math

import pytest
import torch

from rbmdiff import RBM, VPSDE, RbmdiffError, samplers
from rbmdiff import score as score_module
from rbmdiff.exact import binary_states, visible_mean_given_field
from rbmdiff.score import (
    FreeEnergyScore,
    PosteriorScore,
    exact_mean,
    gibbs_mean,
    hidden_enum_mean,
    logit_bound,
    make_score,
    meanfield_mean,
    tap_mean,
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
    """‖σ_t s_θ(a_t) + ζ‖² = (α_t/σ_t)² 4L² ‖m_θ(a_t, t) - v‖²  (docs/math.md §5), per example."""
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


def test_gradients_flow_to_parameters_through_differentiable_m_methods(tiny_rbm):
    a, t = _a_t(6)
    for method in ("exact", "meanfield", "tap"):
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


def _brute_m(rbm: RBM, u: torch.Tensor) -> torch.Tensor:
    """E[v] under visible bias b + u by summing over all 2^(n+m) joint states (autograd-able)."""
    s = binary_states(rbm.n_visible + rbm.n_hidden, dtype=torch.float64)
    v, h = s[:, : rbm.n_visible], s[:, rbm.n_visible:]
    logw = -rbm.energy(v, h)[None, :] + u @ v.T  # (B, 2^(n+m))
    return torch.softmax(logw, 1) @ v


@pytest.mark.parametrize("chunk_states", [1, 3, 7, 32, None])
def test_chunked_hidden_enumeration_equals_direct_sum_and_its_gradient(chunk_states):
    """Chunked m (uneven chunks, one state per chunk, all in one) and its recomputing backward
    against autograd through the brute-force joint sum, for W, b, c and u."""
    rbm = RBM.random(6, 5, scale=1.0, seed=7, dtype=torch.float64)
    g = torch.Generator().manual_seed(8)
    u = 3 * torch.randn(4, 6, generator=g, dtype=torch.float64)
    probe = torch.randn(4, 6, generator=g, dtype=torch.float64)  # a random linear read-out
    grads = []
    for fn in (lambda r, x: hidden_enum_mean(r, x, chunk_states=chunk_states), _brute_m):
        r, x = rbm.detach().requires_grad_(), u.clone().requires_grad_()
        m = fn(r, x)
        grads.append([m.detach(), *torch.autograd.grad((m * probe).sum(), [*r.parameters(), x])])
    for got, want in zip(*grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_chunked_hidden_enumeration_passes_gradcheck():
    rbm = RBM.random(4, 3, scale=1.0, seed=2, dtype=torch.float64)
    u = torch.randn(2, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    params = [p.detach().clone().requires_grad_() for p in (u, *rbm.parameters())]
    assert torch.autograd.gradcheck(
        lambda u, W, b, c: hidden_enum_mean(RBM(W, b, c), u, chunk_states=3), params)


def test_exact_m_enumerates_the_cheaper_layer(monkeypatch):
    """n = 3 visible, m = 10 hidden: visible enumeration; n = 14, m = 3: hidden chunks.
    Both equal the brute-force sum."""
    calls = []
    for name in ("visible_enum_mean", "hidden_enum_mean"):
        real = getattr(score_module, name)
        monkeypatch.setattr(score_module, name,
                            lambda r, u, real=real, name=name: calls.append(name) or real(r, u))
    for n, m in ((3, 10), (14, 3)):
        rbm = RBM.random(n, m, scale=0.5, seed=n, dtype=torch.float64)
        u = torch.randn(3, n, generator=torch.Generator().manual_seed(m), dtype=torch.float64)
        torch.testing.assert_close(exact_mean(rbm, u), _brute_m(rbm, u))
    assert calls == ["visible_enum_mean", "hidden_enum_mean"]


MEMORY_SCRIPT = """
import resource, torch
torch.set_num_threads(1)
from rbmdiff import RBM
from rbmdiff.score import hidden_enum_mean
rbm = RBM.random(64, 16, scale=0.3, seed=0).requires_grad_()
u = 3 * torch.randn(256, 64, generator=torch.Generator().manual_seed(0))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
(hidden_enum_mean(rbm, u) ** 2).sum().backward()
assert all(torch.isfinite(p.grad).all() for p in rbm.parameters())
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""
MEMORY_BOUND_MIB = 512


@pytest.mark.slow
def test_exact_m_on_the_digits_setting_stays_within_a_memory_bound():
    """Digits: n = 64, m = 16 (2^16 hidden states), batch 64 × 4 noise draws.  Forward and
    backward of exact m grow the peak RSS of a fresh process by < 512 MiB (the whole
    (B, 2^16, n) tensor alone would be 4 GiB in float32)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT], capture_output=True, text=True,
                         timeout=600, check=True)
    growth_mib = float(out.stdout.strip().splitlines()[-1])
    assert growth_mib < MEMORY_BOUND_MIB


def test_tap_error_is_third_order_in_the_couplings_and_meanfield_second():
    """W = ε W₀ with O(1) biases and field: |m_MF - m| = O(ε²), |m_TAP - m| = O(ε³).
    Slopes of log max-error against log ε over ε ∈ {0.05, 0.1, 0.2} (converged sweeps)."""
    g = torch.Generator().manual_seed(1)
    W0, b, c = (torch.randn(*shape, generator=g, dtype=torch.float64)
                for shape in ((6, 4), (6,), (4,)))
    u = torch.randn(8, 6, generator=g, dtype=torch.float64)
    scales = torch.tensor([0.05, 0.1, 0.2], dtype=torch.float64)
    errors = {"mf": [], "tap": []}
    for e in scales.tolist():
        rbm = RBM(e * W0, b, c)
        exact_m = _brute_m(rbm, u)
        errors["mf"].append((meanfield_mean(rbm, u, sweeps=300) - exact_m).abs().max())
        errors["tap"].append((tap_mean(rbm, u, sweeps=300) - exact_m).abs().max())
    x = scales.log() - scales.log().mean()
    slope = {k: float((x * torch.stack(v).log()).sum() / (x * x).sum()) for k, v in errors.items()}
    assert 1.7 < slope["mf"] < 2.3
    assert 2.7 < slope["tap"] < 3.4


def test_tap_gradient_is_finite_and_matches_finite_differences(tiny_rbm):
    """Autograd through the unrolled TAP sweeps = central differences of its value (W₀₀)."""
    u = torch.randn(3, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    rbm = tiny_rbm.detach().requires_grad_()
    tap_mean(rbm, u, sweeps=20).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in rbm.parameters())
    h, W = 1e-6, tiny_rbm.W.clone()
    W_plus, W_minus = W.clone(), W.clone()
    W_plus[0, 0] += h
    W_minus[0, 0] -= h
    fd = (tap_mean(RBM(W_plus, tiny_rbm.b, tiny_rbm.c), u, sweeps=20).sum()
          - tap_mean(RBM(W_minus, tiny_rbm.b, tiny_rbm.c), u, sweeps=20).sum()) / (2 * h)
    assert float(rbm.W.grad[0, 0]) == pytest.approx(float(fd), rel=1e-6, abs=1e-8)


def test_default_m_method_is_exact_where_enumeration_is_affordable():
    """bas (n ≤ 16) and small hidden layers: exact; digits/16 and digits/64: TAP.  The sde
    sampler takes its m from this rule."""
    from rbmdiff.score import default_m_method

    assert default_m_method(16, 16) == default_m_method(9, 40) == "exact"
    assert default_m_method(64, 12) == "exact"
    assert default_m_method(64, 16) == default_m_method(64, 64) == "tap"
    rbm = RBM.random(20, 13, scale=0.1, seed=0)
    s = samplers.get("sde", steps=2).sample(rbm, 4, seed=0)
    assert s.info["m_method"] == "tap"
