"""A global check of the reads beside the local (pseudo-likelihood) one: their mean energy
E(v, h) against the model's ⟨E⟩ at β = 1.

Pseudo-likelihood sees only single-unit flips, so reads with the right local temperature but
wrong weights between modes pass it (Raymond, Yarkoni & Andriyash 2016); the mean energy
moves with those weights. The reference is exact when one layer has at most ``EXACT_BITS``
units (that layer enumerated, the other summed in closed form), else a long Gibbs run.
"""

from __future__ import annotations

import math

import torch

from rbmdiff.exact import EXACT_LAW_BITS, state_chunks
from rbmdiff.rbm import RBM

EXACT_BITS = EXACT_LAW_BITS
Z_LIMIT = 4.0  # the difference is significant beyond |z| = 4 ...
SD_FLOOR = 0.1  # ... and matters beyond 0.1 standard deviations of the reads' energy


def exact_mean_energy(rbm: RBM) -> float:
    """⟨E⟩ under p(v, h) ∝ exp(−E), enumerating the smaller layer.

    Given v, E[E | v] = −bᵀv − Σ_j x_j σ(x_j), x = c + vW (and symmetrically given h), and
    p(v) ∝ exp(−F(v)).
    """
    W, b, c = (p.detach().to(torch.float64) for p in rbm.parameters())
    if rbm.n_visible <= rbm.n_hidden:
        W, b, c, k = W, b, c, rbm.n_visible
    else:
        W, b, c, k = W.T, c, b, rbm.n_hidden
    logw, mean = [], []
    for s in state_chunks(k, dtype=torch.float64):
        x = c + s @ W
        logw.append(s @ b + torch.nn.functional.softplus(x).sum(-1))  # −F
        mean.append(-(s @ b) - (x * torch.sigmoid(x)).sum(-1))
    logw, mean = torch.cat(logw), torch.cat(mean)
    return float((torch.softmax(logw, 0) * mean).sum())


def gibbs_mean_energy(rbm: RBM, *, chains: int = 2000, sweeps: int = 2000,
                      seed: int = 0) -> tuple[float, float]:
    """⟨E⟩ and its standard error from ``chains`` independent Gibbs chains of ``sweeps``."""
    g = torch.Generator().manual_seed(seed)
    model = rbm.detach()
    v = torch.bernoulli(torch.full((chains, rbm.n_visible), 0.5, dtype=rbm.dtype), generator=g)
    v = model.gibbs(v, sweeps, generator=g)
    e = _mean_energy_given_v(model, v)
    return float(e.mean()), float(e.std() / math.sqrt(chains))


def _mean_energy_given_v(rbm: RBM, v: torch.Tensor) -> torch.Tensor:
    W, b, c = (p.detach().to(torch.float64) for p in rbm.parameters())
    v = v.to(torch.float64)
    x = c + v @ W
    return -(v @ b) - (x * torch.sigmoid(x)).sum(-1)


def energy_check(rbm: RBM, v: torch.Tensor, h: torch.Tensor, *, seed: int = 0) -> dict:
    """Mean energy of the reads (v, h) against the model's: energy_mean_reads,
    energy_mean_model, energy_z (the difference over its standard error), energy_shift_sd (the
    difference in standard deviations of the reads' energy), energy_reference ('exact' or
    'gibbs') and energy_check_ok (False when |z| > Z_LIMIT and |shift| > SD_FLOOR)."""
    W, b, c = (p.detach().to(torch.float64) for p in rbm.parameters())
    v, h = v.to(torch.float64), h.to(torch.float64)
    e = -((v @ W) * h).sum(-1) - v @ b - h @ c
    se_reads = float(e.std() / math.sqrt(len(e))) if len(e) > 1 else math.inf
    if min(rbm.n_visible, rbm.n_hidden) <= EXACT_BITS:
        ref, se_ref, kind = exact_mean_energy(rbm), 0.0, "exact"
    else:
        (ref, se_ref), kind = gibbs_mean_energy(rbm, seed=seed), "gibbs"
    se = math.hypot(se_reads, se_ref)
    diff = float(e.mean()) - ref
    z = diff / se if se > 0 else 0.0
    shift = diff / float(e.std()) if len(e) > 1 and float(e.std()) > 0 else 0.0
    return {"energy_mean_reads": float(e.mean()), "energy_mean_model": ref, "energy_z": z,
            "energy_shift_sd": shift, "energy_reference": kind,
            "energy_check_ok": bool(abs(z) <= Z_LIMIT or abs(shift) <= SD_FLOOR)}
