"""Annealed importance sampling of log Z (Salakhutdinov & Murray 2008, §4)."""

from __future__ import annotations

import itertools
import math

import torch
from torch.nn.functional import softplus

from rbmdiff.rbm import RBM

SCHEDULES = ("linear", "sm08")
# Salakhutdinov & Murray (2008) §4.1: 500 β's uniform in [0, ½], 4,000 in [½, 0.9],
# 10,000 in [0.9, 1]; "sm08" keeps these fractions of the 14,500 for any number of β's.
SM08_PIECES = ((0.5, 500), (0.9, 4000), (1.0, 10000))


def temperatures(num_betas: int, schedule: str = "linear") -> torch.Tensor:
    """β_0 = 0 < β_1 < … < β_{K-1} = 1 (float64, (K,)) for the named schedule."""
    if schedule == "linear":
        return torch.linspace(0.0, 1.0, num_betas, dtype=torch.float64)
    if schedule != "sm08":
        raise ValueError(f"AIS schedule {schedule!r}: use one of {SCHEDULES}")
    total = sum(k for _, k in SM08_PIECES)
    parts, start = [torch.zeros(1, dtype=torch.float64)], 0.0
    for end, k in SM08_PIECES:
        count = max(1, round((num_betas - 1) * k / total))
        parts.append(torch.linspace(start, end, count + 1, dtype=torch.float64)[1:])
        start = end
    return torch.cat(parts)


def base_rate_bias(x: torch.Tensor, *, eps: float = 1e-3) -> torch.Tensor:
    """b_A = logit(mean(x)) clipped to [ε, 1-ε]: the base-rate model of the data (S&M 2008).
    x: (N, n) -> (n,)."""
    return torch.logit(x.to(torch.float64).mean(0).clamp(eps, 1 - eps))


def log_partition_ais(
    rbm: RBM,
    *,
    num_chains: int = 200,
    num_betas: int = 2000,
    base_bias: torch.Tensor | None = None,
    schedule: str = "linear",
    seed: int = 0,
) -> tuple[float, float]:
    """Estimate log Z with AIS from a base-rate model to the RBM; returns (log Ẑ, its std err).

    Path p_k(v) ∝ exp((1-β_k) b_Aᵀv) · exp(β_k bᵀv) Π_j (1 + exp(β_k (c + Wᵀv)_j)),
    β from 0 to 1 (``schedule``: :func:`temperatures`); base log Z_A = Σ_i softplus(b_A,i)
    + m log 2.  ``base_bias`` b_A: the data's base rate (:func:`base_rate_bias`, as S&M 2008)
    where the data are at hand; by default the model's own visible bias b (its W = 0 part,
    far closer to an MNIST model than the uniform b_A = 0).  Transitions are block-Gibbs
    sweeps that leave p_k invariant.  The standard
    error is the delta-method error of log mean w: std(w) / (√M mean(w)); it understates the
    error when the weights are heavy-tailed (compare independent runs).  The field c + Wᵀv is
    computed once per step, in the model's dtype, and shared by the weight update and the
    hidden draw; weights accumulate in float64.  Runs on the model's device; memory is
    O(num_chains · (n + m)).
    """
    g = torch.Generator(device=rbm.W.device).manual_seed(seed)
    W, b, c = (p.detach() for p in rbm.parameters())
    b_A = (b.clone() if base_bias is None
           else base_bias.detach().to(device=b.device, dtype=b.dtype))
    db = (b - b_A).to(torch.float64)
    betas = temperatures(num_betas, schedule).tolist()

    v = torch.bernoulli(torch.sigmoid(b_A).expand(num_chains, -1), generator=g)
    log_w = torch.zeros(num_chains, dtype=torch.float64, device=b.device)
    for beta_prev, beta in itertools.pairwise(betas):
        x = c + v @ W  # (M, m): the hidden field at the current state
        x64 = x.to(torch.float64)
        # log p*_k(v) - log p*_{k-1}(v) at the state drawn from T_{k-1}.
        log_w += ((beta - beta_prev) * (v.to(torch.float64) @ db)
                  + (softplus(beta * x64) - softplus(beta_prev * x64)).sum(-1))
        # One Gibbs sweep leaving p_k invariant.
        h = torch.bernoulli(torch.sigmoid(beta * x), generator=g)
        v = torch.bernoulli(torch.sigmoid((1 - beta) * b_A + beta * (b + h @ W.T)), generator=g)
    log_z_base = float(softplus(b_A.to(torch.float64)).sum()) + W.shape[1] * math.log(2.0)
    log_mean_w = float(torch.logsumexp(log_w, 0)) - math.log(num_chains)
    w_rel = torch.exp(log_w - log_w.max())
    stderr = float(w_rel.std() / (math.sqrt(num_chains) * w_rel.mean()))
    return log_z_base + log_mean_w, stderr
