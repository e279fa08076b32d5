from __future__ import annotations

import math

import pytest
import torch

from rbmdiff import VPSDE, RbmdiffError


def test_alpha_sigma_closed_forms():
    sde = VPSDE(0.1, 20.0)
    t = torch.tensor([0.0, 0.25, 1.0], dtype=torch.float64)
    integral = 0.1 * t + 0.5 * t**2 * 19.9
    torch.testing.assert_close(sde.alpha(t), torch.exp(-0.5 * integral))
    ones = torch.ones(3, dtype=torch.float64)
    torch.testing.assert_close(sde.alpha(t) ** 2 + sde.sigma(t) ** 2, ones)
    # At t = 1: ∫β = 0.1 + 9.95 = 10.05, so α_1 = e^{-5.025}.
    assert float(sde.alpha(t)[2]) == pytest.approx(math.exp(-5.025))
    # Small t keeps relative precision: σ_t² ≈ β_min t.
    tiny = torch.tensor([1e-8], dtype=torch.float64)
    assert float(sde.sigma(tiny) ** 2) == pytest.approx(1e-9, rel=1e-6)


def test_marginal_sample_moments_within_4_sigma():
    """a_t = α a_0 + σ ζ: sample mean α a_0 ± 4σ/√N, sample variance σ² ± 4σ²√(2/N)."""
    sde = VPSDE()
    N = 20000
    a0 = torch.full((N, 1), 2.0, dtype=torch.float64)
    t = torch.full((N,), 0.3, dtype=torch.float64)
    a_t, zeta = sde.marginal_sample(a0, t, generator=torch.Generator().manual_seed(0))
    alpha, sigma = float(sde.alpha(t[:1])), float(sde.sigma(t[:1]))
    assert abs(float(a_t.mean()) - 2 * alpha) < 4 * sigma / math.sqrt(N)
    assert abs(float(a_t.var()) - sigma**2) < 4 * sigma**2 * math.sqrt(2 / N)
    torch.testing.assert_close(a_t, alpha * a0 + sigma * zeta)


def test_impossible_schedules_are_refused():
    with pytest.raises(RbmdiffError, match="β_min"):
        VPSDE(5.0, 1.0)
    with pytest.raises(RbmdiffError):
        VPSDE(0.0, 1.0)
