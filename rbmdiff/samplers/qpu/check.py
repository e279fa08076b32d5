"""The verdict on a QPU run: do the reads (v, h) follow the model's law p(v, h) ∝ exp(−E)?

A simultaneous test of many statistics against a reference of the logical model:

- moments: ⟨v_i⟩, ⟨h_j⟩, ⟨v_i h_j⟩ and ⟨E⟩, each a z-score (read mean − model mean) /
  √(var/N + se_ref²), var the statistic's variance under the model (floored at 1/N, one
  read's worth); the binary ones take an exact two-sided test instead, so that units which
  are rarely on do not raise false alarms: the binomial tail against an exact reference,
  Fisher's test of the reads' count against the Gibbs reference's chains otherwise;
- histograms, where a layer has at most ``HIST_BITS`` units: the total-variation distance of
  that layer's empirical law from the exact law, against the TV of perfect samples of the same
  size (mean and sd from ``NULL_DRAWS`` multinomial draws): z = (TV − mean) / sd, one-sided.

The reference is exact when the smaller layer has at most ``EXACT_BITS`` units (that layer
enumerated, the other summed in closed form), else ``GIBBS_CHAINS`` block-Gibbs chains of
``GIBBS_SWEEPS`` sweeps, whose own standard errors enter each z. The run fails when the
Bonferroni-adjusted p-value of the worst statistic is below ``ALPHA``: under the model a run
fails with probability at most ALPHA, whatever the number of statistics. Pseudo-likelihood β
(:mod:`.temperature`) sees only single flips; these statistics see the weights between modes
too (Raymond, Yarkoni & Andriyash 2016). docs/math.md §6a gives the test's measured power.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import binom, hypergeom, norm

from rbmdiff.exact import EXACT_LAW_BITS, state_chunks, state_index
from rbmdiff.rbm import RBM

EXACT_BITS = EXACT_LAW_BITS  # enumerate the smaller layer up to 2^20 states
HIST_BITS = 16  # histogram test of a layer with at most this many units
NULL_DRAWS = 200  # perfect samples drawn for the TV's null distribution
GIBBS_CHAINS, GIBBS_SWEEPS = 2000, 2000
ALPHA = 0.01  # family-wise false-alarm rate of one run's verdict


@dataclass
class Reference:
    """The model's statistics: names (K,), per-read mean and variance, the reference's own
    standard error (0 when exact), the exact laws of small layers, and ⟨E⟩, sd(E)."""

    kind: str  # "exact" or "gibbs"
    names: list[str]
    mean: np.ndarray  # (K,)
    var: np.ndarray  # (K,)
    se: np.ndarray  # (K,)
    laws: dict[str, np.ndarray]  # "v" / "h": (2^k,) exact law of that layer
    energy_mean: float
    energy_sd: float


def statistics(rbm: RBM, v: torch.Tensor, h: torch.Tensor) -> np.ndarray:
    """Per-read statistics [v (n), h (m), v⊗h (n·m), E (1)].  -> (B, n + m + n·m + 1)."""
    W, b, c = (p.detach().to(torch.float64) for p in rbm.parameters())
    v, h = v.to(torch.float64), h.to(torch.float64)
    vh = (v[:, :, None] * h[:, None, :]).reshape(len(v), -1)
    e = -((v @ W) * h).sum(-1) - v @ b - h @ c
    return torch.cat([v, h, vh, e[:, None]], 1).numpy()


def mean_statistics(rbm: RBM, v: torch.Tensor, h: torch.Tensor) -> np.ndarray:
    """``statistics(rbm, v, h).mean(0)`` without the (B, n·m) per-read table (10 GB for 2,000
    reads of a 784×840 model): ⟨v h⟩ is vᵀh / B.  -> (n + m + n·m + 1,)"""
    v, h = v.to(torch.float64), h.to(torch.float64)
    vh = (v.T @ h / len(v)).reshape(-1)
    return torch.cat([v.mean(0), h.mean(0), vh, _energy(rbm, v, h).mean()[None]]).numpy()


def _energy(rbm: RBM, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    W, b, c = (p.detach().to(torch.float64) for p in rbm.parameters())
    v, h = v.to(torch.float64), h.to(torch.float64)
    return -((v @ W) * h).sum(-1) - v @ b - h @ c


def stat_names(n: int, m: int) -> list[str]:
    return ([f"<v{i}>" for i in range(n)] + [f"<h{j}>" for j in range(m)]
            + [f"<v{i} h{j}>" for i in range(n) for j in range(m)] + ["<E>"])


def reference(rbm: RBM, *, seed: int = 0) -> Reference:
    """The model's reference statistics: exact, or a long Gibbs run (module docstring)."""
    if min(rbm.n_visible, rbm.n_hidden) <= EXACT_BITS:
        return _exact_reference(rbm)
    return _gibbs_reference(rbm, seed=seed)


def _exact_reference(rbm: RBM) -> Reference:
    """Enumerate the smaller layer A (states s, law p(s) ∝ exp(−F_A(s))); given s the other
    layer B is independent Bernoulli with means μ = σ(bias_B + s W_AB), so
    ⟨a⟩ = Σ p s, ⟨b⟩ = Σ p μ, ⟨a b⟩ = Σ p s⊗μ, and with x = bias_B + s W_AB,
    E[E | s] = −μ·x − bias_A·s, Var[E | s] = Σ x² μ(1 − μ)."""
    W, b, c = (p.detach().to(torch.float64) for p in rbm.parameters())
    visible_first = rbm.n_visible <= rbm.n_hidden
    Wab, ba, bb = (W, b, c) if visible_first else (W.T, c, b)
    k, kb = Wab.shape
    logw = torch.cat([s @ ba + torch.nn.functional.softplus(bb + s @ Wab).sum(-1)
                      for s in state_chunks(k, dtype=torch.float64)])
    p_all = torch.softmax(logw, 0)
    ma, mb, mab = torch.zeros(k, dtype=torch.float64), torch.zeros(kb, dtype=torch.float64), 0
    e1 = e2 = 0.0
    start = 0
    for s in state_chunks(k, dtype=torch.float64):
        p = p_all[start:start + len(s)]
        start += len(s)
        x = bb + s @ Wab
        mu = torch.sigmoid(x)
        ma, mb = ma + p @ s, mb + p @ mu
        mab = mab + (s * p[:, None]).T @ mu
        ee = -(mu * x).sum(-1) - s @ ba
        e1 = e1 + float(p @ ee)
        e2 = e2 + float(p @ (ee**2 + (x**2 * mu * (1 - mu)).sum(-1)))
    mv, mh, mvh = (ma, mb, mab) if visible_first else (mb, ma, mab.T)
    binary = torch.cat([mv, mh, mvh.reshape(-1)]).numpy()
    mean = np.append(binary, e1)
    var = np.append(binary * (1 - binary), max(e2 - e1**2, 0.0))
    laws = {}
    if k <= HIST_BITS:
        laws["v" if visible_first else "h"] = p_all.numpy()
    if kb <= HIST_BITS:  # the other layer's law: p(t) ∝ exp(−F_B(t)), enumerated the same way
        logwb = torch.cat([t @ bb + torch.nn.functional.softplus(ba + t @ Wab.T).sum(-1)
                           for t in state_chunks(kb, dtype=torch.float64)])
        laws["h" if visible_first else "v"] = torch.softmax(logwb, 0).numpy()
    return Reference("exact", stat_names(rbm.n_visible, rbm.n_hidden), mean, var,
                     np.zeros_like(mean), laws, e1, math.sqrt(var[-1]))


def _gibbs_reference(rbm: RBM, *, seed: int) -> Reference:
    """``GIBBS_CHAINS`` independent block-Gibbs chains of ``GIBBS_SWEEPS`` sweeps from uniform
    starts; each chain's last (v, h) is one draw."""
    g = torch.Generator().manual_seed(seed)
    model = rbm.detach().to(torch.float64)
    v = torch.bernoulli(torch.full((GIBBS_CHAINS, rbm.n_visible), 0.5, dtype=torch.float64),
                        generator=g)
    v = model.gibbs(v, GIBBS_SWEEPS, generator=g)
    h = model.sample_hidden(v, generator=g)
    mean = mean_statistics(rbm, v, h)
    var = mean * (1 - mean) * len(v) / (len(v) - 1)  # 0/1 statistics, ddof = 1
    var[-1] = float(_energy(rbm, v, h).var())
    return Reference("gibbs", stat_names(rbm.n_visible, rbm.n_hidden), mean, var,
                     np.sqrt(var / GIBBS_CHAINS), {}, float(mean[-1]), math.sqrt(var[-1]))


def tv_null(law: np.ndarray, num: int, rng: np.random.Generator) -> tuple[float, float]:
    """Mean and sd of TV(p̂_N, p) for ``num`` perfect draws from ``law``, by simulation."""
    tv = [0.5 * np.abs(rng.multinomial(num, law) / num - law).sum() for _ in range(NULL_DRAWS)]
    return float(np.mean(tv)), float(np.std(tv, ddof=1))


def fidelity(rbm: RBM, v: torch.Tensor, h: torch.Tensor, ref: Reference, *, seed: int,
             alpha: float = ALPHA) -> dict:
    """Test reads (v, h) against ``ref`` (module docstring).  -> info fields: fidelity_ok,
    fidelity_p (Bonferroni-adjusted p of the worst statistic), fidelity_worst (its name),
    fidelity_z (its z), fidelity_stats (how many were tested), fidelity_reference; per
    tested layer fidelity_tv_{v,h} with its perfect-sample floor fidelity_tv_{v,h}_floor;
    and the mean energy of the reads against the model's (energy_mean_reads,
    energy_mean_model, energy_z, energy_reference)."""
    num = len(v)
    f_mean = mean_statistics(rbm, v, h)
    se = np.sqrt(np.maximum(ref.var, 1.0 / num) / num + ref.se**2)
    z = (f_mean - ref.mean) / se
    p = 2 * norm.sf(np.abs(z))
    if ref.kind == "exact":  # binary statistics: exact binomial tails (rare units included)
        k = np.rint(f_mean[:-1] * num)
        mu = np.clip(ref.mean[:-1], 0.0, 1.0)
        tail = np.minimum(binom.cdf(k, num, mu), binom.sf(k - 1, num, mu))
        p[:-1] = np.minimum(1.0, 2 * tail)
        z[:-1] = np.sign(z[:-1]) * norm.isf(p[:-1] / 2)
    else:  # binary statistics against the reference's chains: Fisher's exact test, two-sided
        # (a pair the reference never saw on is rare, not impossible: a normal test with the
        # reference's variance 0 would read each read with it on as one more sd)
        k = np.rint(f_mean[:-1] * num)
        k_ref = np.rint(ref.mean[:-1] * GIBBS_CHAINS)
        total, on = num + GIBBS_CHAINS, k + k_ref
        tail = np.minimum(hypergeom.cdf(k, total, on, num), hypergeom.sf(k - 1, total, on, num))
        p[:-1] = np.minimum(1.0, 2 * tail)
        z[:-1] = np.sign(z[:-1]) * norm.isf(p[:-1] / 2)
    names = list(ref.names)
    p, z = list(p), list(z)
    out: dict = {}
    rng = np.random.default_rng(seed)
    for layer, x in (("v", v), ("h", h)):
        law = ref.laws.get(layer)
        if law is None:
            continue
        counts = np.bincount(state_index(x.to(torch.int64)).numpy(), minlength=len(law))
        tv = 0.5 * float(np.abs(counts / num - law).sum())
        mean, sd = tv_null(law, num, rng)
        zt = (tv - mean) / sd if sd > 0 else 0.0
        names.append(f"TV({layer})")
        z.append(zt)
        p.append(float(norm.sf(zt)))
        out[f"fidelity_tv_{layer}"], out[f"fidelity_tv_{layer}_floor"] = tv, mean
    worst = int(np.argmin(p))
    p_adj = min(1.0, len(p) * float(p[worst]))
    return {"fidelity_ok": bool(p_adj >= alpha), "fidelity_p": p_adj,
            "fidelity_worst": names[worst], "fidelity_z": float(z[worst]),
            "fidelity_stats": len(p), "fidelity_reference": ref.kind, **out,
            "energy_mean_reads": float(f_mean[-1]), "energy_mean_model": ref.energy_mean,
            "energy_z": float(z[len(ref.names) - 1]), "energy_reference": ref.kind}


def beta_tolerance(ref: Reference, num: int, *, z: float = 3.0) -> float:
    """The smallest |β − 1| that ``num`` reads can resolve through their mean energy:
    d⟨E⟩/dβ = −Var(E) at β = 1, and ⟨E⟩ of N reads is known to ± z·sd(E)/√N, so
    tol = z / (√N · sd(E))."""
    return z / (math.sqrt(num) * ref.energy_sd) if ref.energy_sd > 0 else math.inf
