"""The solver: a D-Wave QPU, or one of two offline mocks with defined semantics.

Both mocks are ``MockDWaveSampler`` (the real Pegasus/Zephyr graph and properties: h_range,
j_range, extended_j_range, timing) with our own substitute sampler of the programmed
(embedded, scaled) problem E_p:

- ``"thermal"``: an ideal device, reads ∝ exp(−mock_beta · E_p). Exact (enumeration of the
  smaller layer's qubits, each chain of the other layer summed out; :class:`ThermalSampler`)
  when that layer has at most ``EXACT_QUBITS`` qubits; otherwise simulated annealing that
  warms up over the first half of ``mock_sweeps`` and stays at mock_beta for the second half
  (a fixed-β single-qubit Metropolis run: thermal only as far as it mixes; it does not mix a
  multimodal model embedded with chains, e.g. bas-4x4 K_{16,16} on P8: see BENCHMARKS.md).
- ``"annealer"``: simulated annealing of the embedded problem from β = min(0.1, mock_beta) up
  to mock_beta in ``mock_sweeps`` sweeps (geometric). Like a QPU, its reads freeze out before
  the end, so their effective β is below mock_beta and not known in advance.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import dimod
import numpy as np
from scipy.special import logsumexp

from rbmdiff.errors import RbmdiffError

MOCK_KINDS = ("thermal", "annealer")
EXACT_QUBITS = 18  # the thermal mock enumerates up to 2^18 states of one layer's qubits
NOMINAL_QPU_BETA = 5.0  # Advantage: β ≈ 5–6 in programmed units (DESIGN §6a)


def has_token() -> bool:
    """True when a D-Wave API token is configured (DWAVE_API_TOKEN or a dwave config file)."""
    if os.environ.get("DWAVE_API_TOKEN"):
        return True
    try:
        from dwave.cloud.config import load_config

        return bool(load_config().get("token"))
    except Exception:  # a broken config file means no usable token
        return False


class ThermalSampler(dimod.Sampler):
    """Exact Boltzmann reads ∝ exp(−beta · E) of an embedded bipartite problem.

    ``layers``: two lists of chains (qubit lists); couplings join qubits of one chain or of
    chains on different layers. The layer with fewer qubits (A) is enumerated; given A, every
    chain of the other layer is independent, so p(A) ∝ exp(−β E_A) Π_c Z_c(A) with Z_c a sum over
    the chain's 2^L states. Reads: A from p(A), then each chain from its conditional law.
    Problems beyond ``EXACT_QUBITS`` go to a fixed-β simulated annealing run instead.
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
        sizes = [sum(len(c) for c in layer) for layer in layers]
        a, b = (0, 1) if sizes[0] <= sizes[1] else (1, 0)
        if sizes[a] > EXACT_QUBITS or max(len(c) for c in layers[b]) > 12:
            return fixed_beta_anneal(bqm, beta=beta, num_reads=num_reads, seed=seed,
                                     num_sweeps=num_sweeps)
        rng = np.random.default_rng(seed)
        qa = [q for c in layers[a] for q in c]
        arr = _exact_reads(bqm, qa, [c for c in layers[b] if c], beta, num_reads, rng)
        labels = qa + [q for c in layers[b] for q in c]
        order = [labels.index(v) for v in bqm.variables]
        samples = (arr[:, order], list(bqm.variables))
        return dimod.SampleSet.from_samples_bqm(samples, bqm)


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


def _exact_reads(bqm, qa: list, chains: list[list], beta: float, num_reads: int,
                 rng: np.random.Generator) -> np.ndarray:
    """Reads (num_reads, |A| + Σ L_c) of ±1: A's qubits, then each chain's."""
    sa = _spins(len(qa))  # (2^|A|, |A|)
    pa = {q: i for i, q in enumerate(qa)}
    logp = -beta * _local(bqm, qa, sa)
    conds = []
    for chain in chains:
        sc = _spins(len(chain))  # (2^L, L)
        coup = np.zeros((len(qa), len(chain)))
        for k, q in enumerate(chain):
            for r, j in bqm.iter_neighborhood(q):
                if r in pa:
                    coup[pa[r], k] = j
        energy = _local(bqm, chain, sc)[None, :] + (sa @ coup) @ sc.T  # (2^|A|, 2^L)
        logp += logsumexp(-beta * energy, axis=1)
        conds.append((sc, energy))
    p = np.exp(logp - logsumexp(logp))
    rows = rng.choice(len(p), size=num_reads, p=p / p.sum())
    parts = [sa[rows]]
    for sc, energy in conds:
        lc = -beta * energy[rows]  # (R, 2^L)
        pc = np.exp(lc - logsumexp(lc, axis=1, keepdims=True))
        u = rng.random((num_reads, 1))
        pick = np.minimum((pc.cumsum(1) < u).sum(1), len(sc) - 1)
        parts.append(sc[pick])
    return np.concatenate(parts, axis=1).astype(np.int8)


def fixed_beta_anneal(bqm, *, beta: float, num_reads: int, seed: int | None,
                      num_sweeps: int) -> dimod.SampleSet:
    """Simulated annealing warming up geometrically from min(0.1, β) to β over the first half
    of ``num_sweeps``, then Metropolis at β for the second half."""
    from dwave.samplers import SimulatedAnnealingSampler

    half = max(1, num_sweeps // 2)
    ramp = np.geomspace(min(0.1, beta), beta, half)
    schedule = np.concatenate([ramp, np.full(max(1, num_sweeps - half), beta)])
    return SimulatedAnnealingSampler().sample(
        bqm, num_reads=num_reads, seed=seed, beta_schedule_type="custom",
        beta_schedule=schedule, num_sweeps_per_beta=1)


class AnnealerSampler(dimod.Sampler):
    """Simulated annealing from β = min(0.1, beta) up to ``beta`` in ``num_sweeps`` sweeps."""

    parameters: ClassVar[dict] = {"beta": [], "seed": [], "num_reads": [], "num_sweeps": []}
    properties: ClassVar[dict] = {}

    def sample(self, bqm, *, beta: float, num_reads: int = 1, seed: int | None = None,
               num_sweeps: int = 1000, **_) -> dimod.SampleSet:
        from dwave.samplers import SimulatedAnnealingSampler

        return SimulatedAnnealingSampler().sample(
            bqm, num_reads=num_reads, seed=seed, num_sweeps=num_sweeps,
            beta_range=(min(0.1, beta), beta), beta_schedule_type="geometric")


def mock_solver(kind: str, topology: str, shape: list[int], *, beta: float, sweeps: int) -> Any:
    """MockDWaveSampler of ``topology``/``shape`` whose reads come from the ``kind`` mock."""
    from dwave.system.testing import MockDWaveSampler

    if kind not in MOCK_KINDS:
        raise RbmdiffError(f"unknown mock {kind!r}; choose one of {MOCK_KINDS}")
    sub = ThermalSampler() if kind == "thermal" else AnnealerSampler()
    return MockDWaveSampler(
        topology_type=topology, topology_shape=list(shape), parameter_warnings=False,
        substitute_sampler=sub, substitute_kwargs={"beta": beta, "num_sweeps": sweeps},
    )


def open_qpu(topology: str, solver: str | None) -> Any:
    """DWaveSampler for ``solver`` (a name) or any solver of ``topology``; a one-line error
    when none opens."""
    from dwave.system import DWaveSampler

    try:
        return DWaveSampler(solver=solver or {"topology__type": topology})
    except Exception as exc:  # dwave-cloud-client raises many kinds (auth, network, none)
        raise RbmdiffError(
            f"no D-Wave solver for topology {topology!r}"
            f"{f' named {solver!r}' if solver else ''} could be opened "
            f"({type(exc).__name__}: {exc}); pass mock='annealer' to sample offline"
        ) from None
