"""β of reads by maximum pseudo-likelihood (a local estimate; Besag 1975, Raymond, Yarkoni &
Andriyash 2016), with a bootstrap interval."""

from __future__ import annotations

import math

import dimod
import numpy as np


def estimate_beta(
    h: dict, J: dict, samples: dimod.SampleSet, *, num_bootstrap: int, seed: int
) -> tuple[float, float, float]:
    """β of reads assumed ∝ exp(−β E_s), E_s = Σ h s + Σ J s s, with a 95% bootstrap
    interval.  -> (β̂, β_low, β_high); inf when no read shows an excitation (far too cold);
    β̂ ≤ 0 when the reads are hotter than anything a positive β explains (far too hot).

    β̂ maximises the pseudo-likelihood Π_reads Π_i σ(−β f_i), f_i the energy lost by flipping
    unit i (``dwave.system.temperatures``): it solves Σ_s ψ_s(β) = 0, ψ_s = Σ_i f_i σ(β f_i).
    The interval is the estimating-function bootstrap (Hu & Kalbfleisch 2000): for reads S*
    resampled with replacement, β* = β̂ − Σ_{S*} ψ_s(β̂) / Σ_{S*} ψ'_s(β̂). (dwave-system's own
    ``num_bootstrap_samples`` resamples only that many reads, so its interval does not
    shrink with the number of reads.)
    """
    from dwave.system.temperatures import effective_field, maximum_pseudolikelihood_temperature
    from scipy.special import expit

    bqm = dimod.BinaryQuadraticModel.from_ising(h, J)
    f, _ = effective_field(bqm, samples, current_state_energy=True)  # (B, N)
    f = np.repeat(f, samples.record.num_occurrences, axis=0)
    T, _ = maximum_pseudolikelihood_temperature(en1=f)
    if T == 0:  # every flip costs energy in every read: no excitation seen
        return math.inf, math.inf, math.inf
    beta = 1 / float(T)  # negative when the root lies at β < 0: reads hotter than β = 0
    if not math.isfinite(beta):
        return math.nan, math.nan, math.nan
    if num_bootstrap == 0:
        return beta, beta, beta
    s = expit(beta * f)  # σ(β f), (B, N)
    psi, dpsi = (f * s).sum(1), (f * f * s * (1 - s)).sum(1)  # ψ_s, ψ'_s: (B,)
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(num_bootstrap):
        idx = rng.integers(0, len(f), size=len(f))
        boot.append(beta - psi[idx].sum() / dpsi[idx].sum())
    low, high = np.percentile(boot, [2.5, 97.5]).tolist()
    return beta, float(low), float(high)
