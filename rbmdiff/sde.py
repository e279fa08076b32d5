"""Variance-preserving SDE (Song et al. 2021, eq. 11): da = -½β(t) a dt + √β(t) dW."""

from __future__ import annotations

import math

import torch

from rbmdiff.errors import RbmdiffError


class VPSDE:
    """β(t) = β_min + t(β_max - β_min) on t ∈ [0, 1]  (DESIGN §3).

    α_t = exp(-½ ∫₀ᵗ β(s) ds),  σ_t² = 1 - α_t²,  a_t = α_t a_0 + σ_t ζ.
    """

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0) -> None:
        if not (math.isfinite(beta_min) and math.isfinite(beta_max)):
            raise RbmdiffError(f"β_min={beta_min}, β_max={beta_max} must be finite")
        if beta_min <= 0 or beta_max < beta_min:
            raise RbmdiffError(
                f"need 0 < β_min ≤ β_max, got β_min={beta_min}, β_max={beta_max}"
            )
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        """β(t) = β_min + t(β_max - β_min)."""
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def integral_beta(self, t: torch.Tensor) -> torch.Tensor:
        """∫₀ᵗ β(s) ds = β_min t + ½ t² (β_max - β_min)."""
        return self.beta_min * t + 0.5 * t**2 * (self.beta_max - self.beta_min)

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        """α_t = exp(-½ ∫₀ᵗ β)."""
        return torch.exp(-0.5 * self.integral_beta(t))

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        """σ_t = √(1 - α_t²), computed as √(-expm1(-∫β)) to keep precision at small t."""
        return torch.sqrt(-torch.expm1(-self.integral_beta(t)))

    def marginal_sample(
        self, a0: torch.Tensor, t: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """a_t = α_t a_0 + σ_t ζ, ζ ~ N(0, I).  a0: (B, n), t: (B,) -> (a_t, ζ), each (B, n)."""
        zeta = torch.randn(a0.shape, generator=generator, dtype=a0.dtype)
        alpha, sigma = self.alpha(t)[:, None], self.sigma(t)[:, None]
        return alpha * a0 + sigma * zeta, zeta

    def as_dict(self) -> dict[str, float]:
        return {"beta_min": self.beta_min, "beta_max": self.beta_max}

    def __repr__(self) -> str:
        return f"VPSDE(beta_min={self.beta_min}, beta_max={self.beta_max})"
