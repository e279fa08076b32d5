"""The "thermal" mock: reads from the Boltzmann law ∝ exp(−β · E_p) of the programmed
(embedded, scaled) problem E_p of a bipartite RBM — an ideal device.

The embedded problem's qubits fall into chains, one per logical unit, and the chains into the
two logical layers; couplings join qubits of one chain or chains of different layers only.
Given every qubit of one layer, the chains of the other layer are therefore independent, and
each chain's 2^L joint state has an exact conditional law. Two ways to draw reads:

- exact (:func:`exact_reads`), when the smaller layer has at most ``EXACT_QUBITS`` qubits: that
  layer's states are enumerated with every chain of the other summed out, then each chain is
  drawn from its conditional;
- chain-block Gibbs (:func:`block_gibbs_reads`), otherwise: one independent Markov chain per
  read, alternating exact draws of all chains of one layer given the other, ``num_sweeps``
  times from a uniformly random start: the first half warms up from a hot β to β, the second
  half runs at β. Its stationary law is exactly the Boltzmann law of E_p; with strong chains
  it mixes like logical block Gibbs (annealed, then at fixed β) of the RBM at β_model.
"""

from __future__ import annotations

from typing import ClassVar

import dimod
import numpy as np
from scipy.special import logsumexp

from rbmdiff.errors import RbmdiffError

EXACT_QUBITS = 18  # enumerate up to 2^18 states of one layer's qubits
WARMUP_START = 0.02  # block Gibbs warms up from β · 0.02 to β
MAX_CHAIN = 12  # a chain's 2^L states are enumerated: refuse longer chains


class ThermalSampler(dimod.Sampler):
    """Reads ∝ exp(−beta · E) of an embedded bipartite problem (module docstring).

    ``layers``: two lists of chains (qubit lists), the embedding's visible and hidden chains.
    ``num_sweeps``: block-Gibbs sweeps per read when the problem is too large to enumerate.
    """

    parameters: ClassVar[dict] = {"beta": [], "seed": [], "num_reads": [], "num_sweeps": [],
                                  "layers": []}
    properties: ClassVar[dict] = {}

    def sample(self, bqm, *, beta: float, num_reads: int = 1, seed: int | None = None,
               num_sweeps: int = 1000, layers=None, **_) -> dimod.SampleSet:
        bqm = bqm.change_vartype(dimod.SPIN, inplace=False)
        if layers is None:
            raise RbmdiffError("the thermal mock needs the embedding's layers")
        used = set(bqm.variables)
        layers = [[[q for q in c if q in used] for c in layer] for layer in layers]
        layers = [[c for c in layer if c] for layer in layers]
        check_bipartite(bqm, layers)
        if max(len(c) for layer in layers for c in layer) > MAX_CHAIN:
            raise RbmdiffError(f"the thermal mock enumerates each chain: chains longer than "
                               f"{MAX_CHAIN} qubits are not supported")
        rng = np.random.default_rng(seed)
        sizes = [sum(len(c) for c in layer) for layer in layers]
        a, b = (0, 1) if sizes[0] <= sizes[1] else (1, 0)
        if sizes[a] <= EXACT_QUBITS:
            qa = [q for c in layers[a] for q in c]
            arr = exact_reads(bqm, qa, layers[b], beta, num_reads, rng)
            labels = qa + [q for c in layers[b] for q in c]
        else:
            arr = block_gibbs_reads(bqm, layers, beta, num_reads, num_sweeps, rng)
            labels = [q for layer in layers for c in layer for q in c]
        pos = {q: i for i, q in enumerate(labels)}
        order = [pos[v] for v in bqm.variables]
        return dimod.SampleSet.from_samples_bqm((arr[:, order], list(bqm.variables)), bqm)


def check_bipartite(bqm, layers: list[list[list]]) -> None:
    """Refuse a problem whose chains do not cover its qubits, or whose couplings join two
    chains of one layer."""
    owner = {q: (k, i) for k, layer in enumerate(layers) for i, c in enumerate(layer)
             for q in c}
    if len(owner) != len(bqm.variables):
        raise RbmdiffError("the thermal mock's layers do not cover the programmed qubits")
    for (u, v), _ in bqm.quadratic.items():
        (ku, cu), (kv, cv) = owner[u], owner[v]
        if ku == kv and cu != cv:
            raise RbmdiffError(f"qubits {u} and {v} couple two chains of one layer: the "
                               "thermal mock needs a bipartite embedded problem")


def _spins(k: int) -> np.ndarray:
    """All 2^k states of k spins, (2^k, k) of ±1."""
    idx = np.arange(2**k)[:, None] >> np.arange(k)[None, :]
    return (2 * (idx & 1) - 1).astype(np.float64)


def _local(bqm, qubits: list, states: np.ndarray) -> np.ndarray:
    """Energy of the biases and couplings inside ``qubits`` for each row of ``states``."""
    pos = {q: i for i, q in enumerate(qubits)}
    e = states @ np.array([bqm.get_linear(q) for q in qubits])
    for q in qubits:
        for r, j in bqm.iter_neighborhood(q):
            if r in pos and pos[r] > pos[q]:
                e += j * states[:, pos[q]] * states[:, pos[r]]
    return e


def _coupling(bqm, rows: list, cols: list) -> np.ndarray:
    """(len(rows), len(cols)) couplings J[r, c] between two disjoint qubit lists."""
    pr = {q: i for i, q in enumerate(rows)}
    out = np.zeros((len(rows), len(cols)))
    for k, q in enumerate(cols):
        for r, j in bqm.iter_neighborhood(q):
            if r in pr:
                out[pr[r], k] = j
    return out


def _draw(logits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One index per column of ``logits`` (S, ...), drawn ∝ exp(logits) over the first axis."""
    p = np.exp(logits - logits.max(0))
    c = np.cumsum(p, axis=0, out=p)
    u = rng.random(c.shape[1:]) * c[-1]
    return np.minimum((c < u).sum(0), logits.shape[0] - 1)


def exact_reads(bqm, qa: list, chains: list[list], beta: float, num_reads: int,
                rng: np.random.Generator) -> np.ndarray:
    """Exact reads (num_reads, |A| + Σ L_c) of ±1: A's qubits, then each chain's."""
    sa = _spins(len(qa))  # (2^|A|, |A|)
    logp = -beta * _local(bqm, qa, sa)
    conds = []
    for chain in chains:
        sc = _spins(len(chain))  # (2^L, L)
        energy = _local(bqm, chain, sc)[None, :] + (sa @ _coupling(bqm, qa, chain)) @ sc.T
        logp += logsumexp(-beta * energy, axis=1)
        conds.append((sc, energy))
    p = np.exp(logp - logsumexp(logp))
    rows = rng.choice(len(p), size=num_reads, p=p / p.sum())
    parts = [sa[rows]]
    for sc, energy in conds:
        parts.append(sc[_draw(-beta * energy[rows].T, rng)])
    return np.concatenate(parts, axis=1).astype(np.int8)


class _Layer:
    """One layer's chains grouped by length: for each length L, the chains' qubit columns
    (nC, L) in the layer's qubit order, their 2^L states and their internal energies."""

    def __init__(self, bqm, chains: list[list]) -> None:
        self.qubits = [q for c in chains for q in c]
        start = np.cumsum([0] + [len(c) for c in chains])
        self.groups = []
        for length in sorted({len(c) for c in chains}):
            idx = [i for i, c in enumerate(chains) if len(c) == length]
            cols = np.array([np.arange(start[i], start[i] + length) for i in idx])
            sc = _spins(length)
            local = np.stack([_local(bqm, chains[i], sc) for i in idx], 1)  # (2^L, nC)
            self.groups.append((cols, sc, local[:, None, :]))

    def draw(self, field: np.ndarray, beta: float, rng: np.random.Generator) -> np.ndarray:
        """Every chain's state given the field (R, Q) on the layer's qubits.  -> (R, Q)."""
        out = np.empty_like(field)
        for cols, sc, local in self.groups:
            energy = local + np.einsum("sl,rcl->src", sc, field[:, cols])  # (2^L, R, nC)
            out[:, cols] = sc[_draw(-beta * energy, rng)]
        return out


def warmup_schedule(beta: float, num_sweeps: int) -> np.ndarray:
    """Inverse temperatures of ``num_sweeps`` sweeps: geometric from beta · ``WARMUP_START`` up to
    beta over the first half, then beta for the second half."""
    half = num_sweeps // 2
    return np.concatenate([np.geomspace(beta * WARMUP_START, beta, half) if half else [],
                           np.full(max(1, num_sweeps - half), beta)])


def block_gibbs_reads(bqm, layers: list[list[list]], beta: float, num_reads: int,
                      num_sweeps: int, rng: np.random.Generator) -> np.ndarray:
    """Reads (num_reads, Q_0 + Q_1) of ±1 (layer 0's qubits, then layer 1's): one Markov chain
    per read from a uniformly random start, ``num_sweeps`` chain-block Gibbs sweeps on the
    schedule of :func:`warmup_schedule` (the warm-up only moves the start; the second half
    is the exact Gibbs kernel of the target law)."""
    from threadpoolctl import threadpool_limits

    first, second = _Layer(bqm, layers[0]), _Layer(bqm, layers[1])
    cross = _coupling(bqm, first.qubits, second.qubits)  # (Q_0, Q_1)
    s0 = rng.choice([-1.0, 1.0], size=(num_reads, len(first.qubits)))
    with threadpool_limits(1):  # small matrices: threads only add overhead
        for b in warmup_schedule(beta, num_sweeps):
            s1 = second.draw(s0 @ cross, b, rng)
            s0 = first.draw(s1 @ cross.T, b, rng)
    return np.concatenate([s0, s1], axis=1).astype(np.int8)
