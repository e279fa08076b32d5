"""Sample statistics (docs/math.md §7): one flat record per sampler run, a Parquet row."""

from __future__ import annotations

import json
import math
from dataclasses import asdict

import torch

from rbmdiff.data import is_binary
from rbmdiff.errors import RbmdiffError
from rbmdiff.exact import (
    EXACT_LAW_BITS,
    log_partition,
    mean_log_likelihood,
    state_index,
    total_variation,
    visible_law,
)
from rbmdiff.rbm import RBM
from rbmdiff.records import QPU_FACTS, Record
from rbmdiff.samplers.base import Samples

MMD_MAX_ROWS = 2000  # MMD is O(B²): each side is subsampled (fixed seed) to this many rows


def mean_abs_err(v: torch.Tensor, ref: torch.Tensor) -> float:
    """Per-unit mean error: mean_i |E_samples[v_i] - E_ref[v_i]|."""
    return float((v.double().mean(0) - ref.double().mean(0)).abs().mean())


def correlations(v: torch.Tensor) -> torch.Tensor:
    """Pearson correlations of the units, constant units counted as uncorrelated.  -> (n, n)."""
    v = v.double()
    n = v.shape[1]
    cov = torch.cov(v.T) if v.shape[0] > 1 else torch.zeros(n, n, dtype=torch.float64)
    return _correlation_of(cov)


def _correlation_of(cov: torch.Tensor) -> torch.Tensor:
    """cov_ij / (σ_i σ_j), 0 where a unit is constant.  (n, n) -> (n, n)."""
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
    bx, by = x.shape[0], y.shape[0]
    if bx < 2 or by < 2:
        return float("nan")
    n = x.shape[1]
    weights = torch.exp(-torch.arange(n + 1, dtype=torch.float64) / (bandwidth or n / 4))

    def kernel_sum(a: torch.Tensor, b: torch.Tensor, off_diagonal: bool = False) -> float:
        """Σ k(a_i, b_j) from the exact counts of each Hamming distance (integers, so the
        sum does not depend on the order of a matrix product's additions)."""
        d = (a @ (1 - b).T + (1 - a) @ b.T).round().long()
        counts = torch.bincount(d.flatten(), minlength=n + 1)
        if off_diagonal:  # a is b: drop the pairs (i, i), at distance 0
            counts[0] -= a.shape[0]
        return math.fsum((counts.double() * weights).tolist())

    sxx = kernel_sum(x, x, off_diagonal=True) / (bx * (bx - 1))
    syy = kernel_sum(y, y, off_diagonal=True) / (by * (by - 1))
    return sxx + syy - 2 * kernel_sum(x, y) / (bx * by)


def _subsample(z: torch.Tensor, k: int, g: torch.Generator) -> torch.Tensor:
    if z.shape[0] <= k:
        return z
    return z[torch.randperm(z.shape[0], generator=g)[:k]]


class SampleStats:
    """Streaming accumulator of the docs/math.md §7 statistics: memory O(n² + 2^n + K·n), whatever
    the number of samples.  Unit means and correlations come from running first and second
    moments, TV from state counts (n ≤ 20), MMD from a uniform reservoir of K rows."""

    def __init__(self, rbm: RBM, *, reservoir: int = MMD_MAX_ROWS, seed: int = 0) -> None:
        n = rbm.n_visible
        self.rbm, self.count, self.free_energy_sum = rbm, 0, 0.0
        self.first = torch.zeros(n, dtype=torch.float64)
        self.second = torch.zeros(n, n, dtype=torch.float64)
        self.states = torch.zeros(2**n, dtype=torch.float64) if n <= EXACT_LAW_BITS else None
        self.reservoir = torch.empty(0, n, dtype=torch.float64)
        self.capacity, self.rng = reservoir, torch.Generator().manual_seed(seed)

    def update(self, v: torch.Tensor) -> None:
        """Add a batch v: (B, n) of 0/1."""
        v = v.double()
        self.first += v.sum(0)
        self.second += v.T @ v
        if self.states is not None:
            self.states += torch.bincount(state_index(v), minlength=self.states.numel())
        with torch.no_grad():
            self.free_energy_sum += float(self.rbm.free_energy(v.to(self.rbm.dtype)).sum())
        self._reservoir_add(v)
        self.count += v.shape[0]

    def _reservoir_add(self, v: torch.Tensor) -> None:
        """Algorithm R (Vitter 1985), vectorised: row i (global index) replaces slot
        j ~ U{0..i} when j < K; later rows win ties, as in the sequential algorithm."""
        room = self.capacity - self.reservoir.shape[0]
        self.reservoir = torch.cat([self.reservoir, v[:room]])
        rest = v[room:] if room > 0 else v
        if rest.shape[0] == 0:
            return
        start = self.count + max(room, 0)
        idx = torch.arange(start, start + rest.shape[0], dtype=torch.float64)
        j = (torch.rand(rest.shape[0], generator=self.rng, dtype=torch.float64) * (idx + 1))
        j = j.long()
        keep = j < self.capacity
        self.reservoir[j[keep]] = rest[keep]

    def mean(self) -> torch.Tensor:
        return self.first / self.count

    def correlations(self) -> torch.Tensor:
        """Pearson correlations from the moments (constant units: 0).  -> (n, n)."""
        mu = self.mean()
        return _correlation_of(self.second / self.count - mu[:, None] * mu[None, :])

    def record(self, info: dict, test: torch.Tensor, *, log_z: float | None = None) -> dict:
        """Every field of docs/math.md §7.  test: (N, n) held-out data in [0, 1].

        Exact fields: ``test_log_likelihood`` when min(n, m) ≤ 20 (binary test data),
        ``tv_exact`` (TV between the samples' empirical law and p_θ) when n ≤ 20; else NaN.
        """
        if self.count == 0:
            raise RbmdiffError("no samples were accumulated; nothing to summarise")
        rbm, n = self.rbm, self.rbm.n_visible
        test_v = test.to(torch.float64)
        test_binary = is_binary(test_v)
        # Grey levels are p(v_i = 1): unit means compare directly, correlations and MMD
        # against one fixed binary draw v ~ Bernoulli(test).
        g = torch.Generator().manual_seed(0)
        ref = test_v if test_binary else torch.bernoulli(test_v, generator=g)
        i, j = torch.triu_indices(n, n, offset=1)
        corr_diff = self.correlations()[i, j] - correlations(ref)[i, j]
        fields = {
            "sampler": info.get("sampler"),
            "params": json.dumps(info.get("params", {}), sort_keys=True, default=str),
            "seed": info.get("seed"),
            "num_samples": self.count,
            "wall_s": info.get("wall_s", math.nan),
            "samples_per_s": info.get("samples_per_s", math.nan),
            "cost_units": info.get("cost_units", math.nan),
            "cost_unit": info.get("cost_unit"),
            "multiply_adds": float(info.get("multiply_adds", math.nan) or math.nan),
            "mean_abs_err": float((self.mean() - test_v.mean(0)).abs().mean()),
            "corr_rmse": float(corr_diff.pow(2).mean().sqrt()) if n > 1 else 0.0,
            "mmd": mmd_hamming(self.reservoir, ref),
            "mean_free_energy": self.free_energy_sum / self.count,
        }
        ll = tv = math.nan
        with torch.no_grad():
            if min(n, rbm.n_hidden) <= EXACT_LAW_BITS and test_binary:
                log_z = log_partition(rbm) if log_z is None else log_z
                ll = mean_log_likelihood(rbm, test_v, log_z)
            if self.states is not None:
                _, p = visible_law(rbm)
                tv = total_variation(self.states / self.count, p)
        record = asdict(Record(**fields, test_log_likelihood=ll, tv_exact=tv))
        for key in INFO_FIELDS:
            if key in info:
                record[key] = info[key]
        return record


INFO_FIELDS = tuple(QPU_FACTS)  # the QPU facts a record keeps, where the info has them


def sample_record(
    samples: Samples, rbm: RBM, test: torch.Tensor, *, log_z: float | None = None
) -> dict:
    """The docs/math.md §7 record of one run held in memory (see :class:`SampleStats`)."""
    stats = SampleStats(rbm)
    stats.update(samples.v)
    return stats.record(samples.info, test, log_z=log_z)
