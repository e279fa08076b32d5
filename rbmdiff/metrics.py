"""Sample statistics (DESIGN §7): one flat record per sampler run, ready to be a Parquet row."""

from __future__ import annotations

import json
import math

import torch

from rbmdiff.exact import (
    EXACT_LAW_BITS,
    empirical_law,
    log_partition,
    total_variation,
    visible_law,
)
from rbmdiff.rbm import RBM
from rbmdiff.samplers.base import Samples

EXACT_LL_BITS = 20  # exact log Z when the smaller layer has at most this many units
MMD_MAX_ROWS = 2000  # MMD is O(B²): each side is subsampled (fixed seed) to this many rows


def mean_abs_err(v: torch.Tensor, ref: torch.Tensor) -> float:
    """Per-unit mean error: mean_i |E_samples[v_i] - E_ref[v_i]|."""
    return float((v.double().mean(0) - ref.double().mean(0)).abs().mean())


def correlations(v: torch.Tensor) -> torch.Tensor:
    """Pearson correlations of the units, constant units counted as uncorrelated.  -> (n, n)."""
    v = v.double()
    cov = torch.cov(v.T) if v.shape[0] > 1 else torch.zeros(v.shape[1], v.shape[1])
    std = cov.diagonal().clamp_min(0).sqrt()
    denom = std[:, None] * std[None, :]
    return torch.where(denom > 1e-12, cov / denom.clamp_min(1e-12), torch.zeros_like(cov))


def corr_rmse(v: torch.Tensor, ref: torch.Tensor) -> float:
    """RMSE over unit pairs i < j of the correlation matrices of samples and reference."""
    n = v.shape[1]
    if n < 2:
        return 0.0
    i, j = torch.triu_indices(n, n, offset=1)
    diff = correlations(v)[i, j] - correlations(ref)[i, j]
    return float(diff.pow(2).mean().sqrt())


def mmd_hamming(
    x: torch.Tensor, y: torch.Tensor, *, bandwidth: float | None = None, seed: int = 0
) -> float:
    """Unbiased MMD² (Gretton et al. 2012, eq. 3) with the Hamming kernel
    k(x, y) = exp(-d_H(x, y) / h), h = n/4 by default.  x: (B, n), y: (B', n) binary."""
    g = torch.Generator().manual_seed(seed)
    x, y = (_subsample(z.double().round(), MMD_MAX_ROWS, g) for z in (x, y))
    h = bandwidth or x.shape[1] / 4

    def gram(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        d = a @ (1 - b).T + (1 - a) @ b.T  # Hamming distances
        return torch.exp(-d / h)

    kxx, kyy, kxy = gram(x, x), gram(y, y), gram(x, y)
    bx, by = x.shape[0], y.shape[0]
    if bx < 2 or by < 2:
        return float("nan")
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (bx * (bx - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (by * (by - 1))
    return float(sxx + syy - 2 * kxy.mean())


def _subsample(z: torch.Tensor, k: int, g: torch.Generator) -> torch.Tensor:
    if z.shape[0] <= k:
        return z
    return z[torch.randperm(z.shape[0], generator=g)[:k]]


def sample_record(
    samples: Samples, rbm: RBM, test: torch.Tensor, *, log_z: float | None = None
) -> dict:
    """Every field of DESIGN §7 for one run.  test: (N, n) held-out data in [0, 1].

    Exact fields: ``test_log_likelihood`` when min(n, m) ≤ 20 (binary test data),
    ``tv_exact`` (TV between the samples' empirical law and p_θ) when n ≤ 20; else NaN.
    """
    info = samples.info
    v = samples.v
    test_v = test.to(torch.float32)
    test_binary = bool(((test_v == 0) | (test_v == 1)).all())
    # Grey levels are p(v_i = 1): unit means compare directly, correlations and MMD against
    # one fixed binary draw v ~ Bernoulli(test).
    g = torch.Generator().manual_seed(0)
    ref = test_v if test_binary else torch.bernoulli(test_v, generator=g)
    record = {
        "sampler": info.get("sampler"),
        "params": json.dumps(info.get("params", {}), sort_keys=True, default=str),
        "seed": info.get("seed"),
        "num_samples": v.shape[0],
        "wall_s": info.get("wall_s", math.nan),
        "samples_per_s": info.get("samples_per_s", math.nan),
        "cost_units": info.get("cost_units", math.nan),
        "cost_unit": info.get("cost_unit"),
        "multiply_adds": float(info.get("multiply_adds", math.nan) or math.nan),
        "mean_abs_err": mean_abs_err(v, test_v),
        "corr_rmse": corr_rmse(v, ref),
        "mmd": mmd_hamming(v, ref),
        "mean_free_energy": float(rbm.free_energy(v.to(rbm.dtype)).mean()),
        "test_log_likelihood": math.nan,
        "tv_exact": math.nan,
    }
    with torch.no_grad():
        if min(rbm.n_visible, rbm.n_hidden) <= EXACT_LL_BITS and test_binary:
            log_z = log_partition(rbm) if log_z is None else log_z
            record["test_log_likelihood"] = float(
                (-rbm.free_energy(test_v.to(rbm.dtype))).mean() - log_z
            )
        if rbm.n_visible <= EXACT_LAW_BITS:
            _, p = visible_law(rbm)
            record["tv_exact"] = total_variation(empirical_law(v), p)
    for key in ("chain_break_fraction", "beta_eff", "beta_eff_low", "beta_eff_high",
                "qpu_access_time", "num_qubits", "mock"):
        if key in info:
            record[key] = info[key]
    return record
