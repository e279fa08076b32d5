"""Variance-preserving SDE (Song et al. 2021, eq. 11): da = -½β(t) a dt + √β(t) dW."""

from __future__ import annotations

import math

import torch

from rbmdiff.errors import RbmdiffError


class VPSDE:
    """β(t) = β_min + t(β_max - β_min) on t ∈ [0, 1]  (docs/math.md §3).

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
        zeta = torch.randn(a0.shape, generator=generator, dtype=a0.dtype, device=a0.device)
        alpha, sigma = self.alpha(t)[:, None], self.sigma(t)[:, None]
        return alpha * a0 + sigma * zeta, zeta

    def t_of_integral(self, integral: torch.Tensor) -> torch.Tensor:
        """Inverse of ∫₀ᵗ β: the t ≥ 0 with β_min t + ½ t² (β_max - β_min) = integral."""
        d = self.beta_max - self.beta_min
        if d == 0:
            return integral / self.beta_min
        return (torch.sqrt(self.beta_min**2 + 2 * d * integral) - self.beta_min) / d

    def log_snr(self, t: torch.Tensor, L: float) -> torch.Tensor:
        """Per-unit log signal-to-noise ratio of binary data in logit space:
        λ(t) = log(α_t² L² / σ_t²) = 2 log L - log(e^{∫β} - 1)."""
        return 2 * math.log(L) - torch.log(torch.expm1(self.integral_beta(t)))

    def t_of_log_snr(self, lam: torch.Tensor, L: float) -> torch.Tensor:
        """Inverse of :meth:`log_snr`: t = I⁻¹(softplus(2 log L - λ))."""
        return self.t_of_integral(torch.nn.functional.softplus(2 * math.log(L) - lam))

    def sample_likelihood_t(
        self, size: int, t_eps: float, *, t_max: float = 1.0, stratified: bool = False,
        generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32,
    ) -> tuple[torch.Tensor, float]:
        """t ~ q(t) ∝ β(t)/σ_t² on [t_ε, t_max] by inverting its CDF; returns (t, Z).

        With I(t) = ∫₀ᵗ β, the antiderivative of β/σ² = I'/(1 - e^{-I}) is G = log(e^I - 1),
        so Z = G(t_max) - G(t_ε) and t = I⁻¹(softplus(G)) for G uniform on [G(t_ε), G(t_max)].
        E_q[Z f(t)] = ∫ β/σ² f dt: the likelihood weighting of Song et al. (2021b) for
        ‖σ_t s + ζ‖², which bounds KL(p_data ‖ p_θ) (their Thm. 1).  G = 2 log L - λ(t), so
        this is sampling uniform in log-SNR (Kingma et al. 2021, eq. 16).  ``stratified``:
        one uniform per stratum [k/size, (k+1)/size), shuffled (variance reduction).
        """
        ends = self.integral_beta(torch.tensor([t_eps, t_max], dtype=torch.float64))
        g0, g1 = (float(torch.log(torch.expm1(i))) for i in ends)
        g = g0 + (g1 - g0) * uniform01(size, stratified=stratified, generator=generator)
        t = self.t_of_integral(torch.nn.functional.softplus(g))
        return t.clamp(t_eps, t_max).to(dtype), g1 - g0

    def as_dict(self) -> dict[str, float]:
        return {"beta_min": self.beta_min, "beta_max": self.beta_max}

    def __repr__(self) -> str:
        return f"VPSDE(beta_min={self.beta_min}, beta_max={self.beta_max})"


def uniform01(
    size: int, *, stratified: bool = False, generator: torch.Generator | None = None
) -> torch.Tensor:
    """U[0, 1) draws (float64, on the generator's device); stratified: u_k = (π(k) + U_k)/size
    for a random permutation π, so each of the ``size`` equal strata holds exactly one draw."""
    device = None if generator is None else generator.device
    u = torch.rand(size, generator=generator, dtype=torch.float64, device=device)
    if not stratified:
        return u
    perm = torch.randperm(size, generator=generator, device=device)
    return (perm.to(torch.float64) + u) / size
