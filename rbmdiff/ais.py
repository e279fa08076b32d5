"""Annealed importance sampling of log Z (Salakhutdinov & Murray 2008, §4)."""

from __future__ import annotations

import math

import torch
from torch.nn.functional import softplus

from rbmdiff.rbm import RBM


def log_partition_ais(
    rbm: RBM,
    *,
    num_chains: int = 200,
    num_betas: int = 2000,
    base_bias: torch.Tensor | None = None,
    seed: int = 0,
) -> tuple[float, float]:
    """Estimate log Z with AIS from a base-rate model to the RBM; returns (log Ẑ, its std err).

    Path p_k(v) ∝ exp((1-β_k) b_Aᵀv) · exp(β_k bᵀv) Π_j (1 + exp(β_k (c + Wᵀv)_j)),
    β from 0 to 1; base log Z_A = Σ_i softplus(b_A,i) + m log 2.  Transitions are
    block-Gibbs sweeps that leave p_k invariant.  The standard error is the delta-method
    error of log mean w: std(w) / (√M mean(w)).  Runs on the model's device.
    """
    g = torch.Generator(device=rbm.W.device).manual_seed(seed)
    W, b, c = (p.detach().to(torch.float64) for p in rbm.parameters())
    b_A = (torch.zeros_like(b) if base_bias is None
           else base_bias.detach().to(device=b.device, dtype=torch.float64))
    betas = torch.linspace(0.0, 1.0, num_betas, dtype=torch.float64)

    def log_unnorm(v: torch.Tensor, beta: float) -> torch.Tensor:
        return (1 - beta) * (v @ b_A) + beta * (v @ b) + softplus(beta * (c + v @ W)).sum(-1)

    v = torch.bernoulli(torch.sigmoid(b_A).expand(num_chains, -1), generator=g)
    log_w = torch.zeros(num_chains, dtype=torch.float64, device=b.device)
    for k in range(1, num_betas):
        beta_prev, beta = float(betas[k - 1]), float(betas[k])
        log_w += log_unnorm(v, beta) - log_unnorm(v, beta_prev)
        # One Gibbs sweep leaving p_k invariant.
        h = torch.bernoulli(torch.sigmoid(beta * (c + v @ W)), generator=g)
        v = torch.bernoulli(torch.sigmoid((1 - beta) * b_A + beta * (b + h @ W.T)), generator=g)
    log_z_base = float(softplus(b_A).sum()) + W.shape[1] * math.log(2.0)
    log_mean_w = float(torch.logsumexp(log_w, 0)) - math.log(num_chains)
    w_rel = torch.exp(log_w - log_w.max())
    stderr = float(w_rel.std() / (math.sqrt(num_chains) * w_rel.mean()))
    return log_z_base + log_mean_w, stderr
