from __future__ import annotations

import pytest
import torch

from rbmdiff import RBM, VPSDE, RbmdiffError, samplers
from rbmdiff.data import load_dataset
from rbmdiff.exact import empirical_law, total_variation, visible_law
from rbmdiff.metrics import sample_record
from rbmdiff.samplers.sde import probability_flow, reverse_sde
from tests.conftest import expected_tv

DESIGN_7_FIELDS = {
    "sampler", "params", "num_samples", "wall_s", "samples_per_s", "cost_units",
    "mean_abs_err", "corr_rmse", "mmd", "mean_free_energy", "test_log_likelihood", "tv_exact",
}


@pytest.fixture(scope="module")
def rbm_8x4() -> RBM:
    return RBM.random(8, 4, scale=1.0, seed=0, dtype=torch.float64)


@pytest.mark.parametrize("beta", [1.0, 2.0])
def test_gibbs_matches_exact_law_within_tv_003(rbm_8x4, beta):
    """50,000 independent chains, 200 burn-in sweeps.  Bound: for the 256-state law,
    E TV(p̂, p) ≤ ½ √(2/(πN)) Σ√p_i ≤ ½ √(2/(π·50,000)) · 16 = 0.0286 (Σ√p_i ≤ √256), and
    for these laws ≈ 0.018 (β=1) / 0.012 (β=2) with std ≈ 0.001; residual burn-in bias
    after 200 sweeps is negligible (8×4 RBM mixes in a few sweeps).  So TV ≤ 0.03 holds
    with margin, and fails for a sampler off by a few per cent."""
    N = 50_000
    tempered = RBM(beta * rbm_8x4.W, beta * rbm_8x4.b, beta * rbm_8x4.c)
    _, p = visible_law(tempered)
    s = samplers.get("gibbs", num_sweeps=200, beta=beta).sample(rbm_8x4, N, seed=1)
    tv = total_variation(empirical_law(s.v), p)
    assert tv <= 0.03, (tv, expected_tv(p, N))
    assert tv <= expected_tv(p, N) + 6 * 0.001
    assert s.info["cost_units"] == 200 and s.info["sampler"] == "gibbs"


def test_float32_gibbs_with_a_clamped_field_matches_the_shifted_law(rbm_8x4):
    """RBM.gibbs with an extra visible field u samples p(v | u) ∝ e^{-F(v) + uᵀv}, the law of
    the RBM with visible bias b + u; float32 model (the compiled kernel where it builds).
    50,000 chains from v = 0, 200 sweeps: same bound as above (E TV ≤ 0.0286 for 256 states,
    seed 2)."""
    N = 50_000
    rbm = rbm_8x4.to(torch.float32)
    u = torch.linspace(-1.5, 1.5, 8)
    _, p = visible_law(RBM(rbm_8x4.W, rbm_8x4.b + u.double(), rbm_8x4.c))
    v = rbm.gibbs(torch.zeros(N, 8), 200, field=u, generator=torch.Generator().manual_seed(2))
    tv = total_variation(empirical_law(v), p)
    assert tv <= 0.03 and tv <= expected_tv(p, N) + 6 * 0.001, (tv, expected_tv(p, N))


def test_gibbs_thinning_and_data_init(rbm_8x4):
    data = torch.bernoulli(torch.full((10, 8), 0.5), generator=torch.Generator().manual_seed(0))
    s = samplers.get("gibbs", num_sweeps=5, num_chains=100, thin=2, init="data",
                     init_data=data).sample(rbm_8x4, 1000, seed=0)
    assert s.v.shape == (1000, 8) and s.info["cost_units"] == 5 + 9 * 2
    with pytest.raises(RbmdiffError, match="init_data"):
        samplers.get("gibbs", init="data")


def gaussian_score(sde: VPSDE, mu: float, s: float):
    """Exact score of a_t when a_0 ~ N(μ, s²): -(a - α_t μ) / (α_t² s² + σ_t²)."""

    def score(a: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        alpha, sigma = sde.alpha(t)[:, None], sde.sigma(t)[:, None]
        return -(a - alpha * mu) / (alpha**2 * s**2 + sigma**2)

    return score


def test_reverse_sde_and_ode_recover_gaussian_moments():
    """a_0 ~ N(1.5, 0.5²) in 2-D, B = 20,000.  Monte-Carlo std of the mean over 40,000
    numbers is 0.5/200 = 0.0025, of the variance 0.25·√(2/40,000) = 0.0018; starting from
    N(0, I) instead of the exact t = 1 marginal N(0.0099, ≈1) adds ≤ 0.005 to the mean.
    Tolerances: 0.02 (mean) and 0.01 (variance) = 4σ + that offset + slack; the coarse
    (N = 10) SDE must be measurably worse than the fine one."""
    sde, mu, s = VPSDE(), 1.5, 0.5
    score = gaussian_score(sde, mu, s)

    def start(seed: int) -> torch.Tensor:
        return torch.randn(20_000, 2, generator=torch.Generator().manual_seed(seed),
                           dtype=torch.float64)

    errors = {}
    for steps in (10, 1000):
        g = torch.Generator().manual_seed(1)
        a = reverse_sde(score, sde, start(0), steps=steps, t_eps=1e-3, generator=g)
        errors[steps] = (abs(float(a.mean()) - mu), abs(float(a.var()) - s**2))
    assert errors[1000][0] < 0.02 and errors[1000][1] < 0.01
    assert errors[10][0] > 2 * errors[1000][0] and errors[10][1] > 2 * errors[1000][1]
    a = probability_flow(score, sde, start(0), steps=100, t_eps=1e-3)
    assert abs(float(a.mean()) - mu) < 0.02 and abs(float(a.var()) - s**2) < 0.01


def test_sde_with_exact_posterior_score_samples_the_rbm():
    """docs/math.md §4: with the exact family score, the reverse SDE samples p_θ(v).  4,000
    samples from a 6×4 RBM: E TV ≈ 0.04 for i.i.d. draws; allow 1.5× that + 0.01 for
    discretisation at N = 100."""
    rbm = RBM.random(6, 4, scale=1.0, seed=3, dtype=torch.float64)
    rbm.meta = {"score": "posterior", "eps": 1e-3}
    _, p = visible_law(rbm)
    s = samplers.get("sde", steps=100, batch_size=4000).sample(rbm, 4000, seed=0)
    assert total_variation(empirical_law(s.v), p) < 1.5 * expected_tv(p, 4000) + 0.01
    assert s.x is not None and ((s.x >= 0) & (s.x <= 1)).all()
    assert s.info["cost_units"] == 101 and s.info["m_method"] == "exact"


@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_ode_with_few_steps_samples_the_rbm(scale):
    """The probability-flow ODE with N = 5 Heun steps and the exact score: TV to the 6×4
    RBM's law within 1.5× that of i.i.d. draws + 0.02 (measured 0.056 / 0.048 against 0.045 /
    0.032).  With a Heun corrector on the last step it was 0.65 / 0.92: the drift ∝ 1/σ²(t_ε)
    overshot and inverted the samples."""
    rbm = RBM.random(6, 4, scale=scale, seed=3, dtype=torch.float64)
    rbm.meta = {"score": "posterior", "eps": 1e-3}
    _, p = visible_law(rbm)
    s = samplers.get("ode", steps=5, batch_size=4000).sample(rbm, 4000, seed=0)
    assert total_variation(empirical_law(s.v), p) < 1.5 * expected_tv(p, 4000) + 0.02
    assert s.info["cost_units"] == 2 * 5 - 1 + 1  # Heun, Euler's last step, the denoising


def test_registry_and_statistics_record():
    with pytest.raises(RbmdiffError, match="unknown sampler"):
        samplers.get("metropolis")
    with pytest.raises(RbmdiffError, match="no parameter"):
        samplers.get("gibbs", steps=3)
    bas = load_dataset("bas-3x3")
    rbm = RBM.random(9, 5, scale=0.5, seed=1)
    for name, params in (("gibbs", {"num_sweeps": 10}), ("sde", {"steps": 20}),
                         ("ode", {"steps": 5})):
        s = samplers.get(name, **params).sample(rbm, 200, seed=0)
        record = sample_record(s, rbm, bas.test)
        assert DESIGN_7_FIELDS <= record.keys()
        assert 0 <= record["tv_exact"] <= 1 and record["test_log_likelihood"] < 0
        assert record["num_samples"] == 200


def test_statistics_match_hand_computed_values():
    """Samples equal to the data: mean error 0, correlation RMSE 0, MMD² ≈ 0 (unbiased
    estimator: its expectation is 0, here |·| < 0.05); TV between identical laws 0."""
    from rbmdiff.metrics import corr_rmse, mean_abs_err, mmd_hamming

    x = torch.bernoulli(torch.full((400, 6), 0.3), generator=torch.Generator().manual_seed(0))
    assert mean_abs_err(x, x) == 0 and corr_rmse(x, x) == pytest.approx(0, abs=1e-12)
    assert abs(mmd_hamming(x, x.flip(0))) < 0.05
    far = 1 - x
    assert mmd_hamming(x, far) > 0.1 and mean_abs_err(x, far) == pytest.approx(
        float((1 - 2 * x.mean(0)).abs().mean()))
