"""The solver: a D-Wave QPU, or one of two offline mocks with defined semantics.

Both mocks are ``MockDWaveSampler`` (the real Pegasus/Zephyr graph and properties: h_range,
j_range, extended_j_range, timing) with our own substitute sampler of the programmed
(embedded, scaled) problem E_p:

- ``"thermal"``: an ideal device, reads ∝ exp(−mock_beta · E_p) (:mod:`.thermal`): exact by
  enumeration of one layer's qubits when that is small, else ``mock_sweeps`` sweeps of
  chain-block Gibbs (each chain's joint state drawn exactly given the other layer), whose
  stationary law is exactly that Boltzmann law.
- ``"annealer"``: simulated annealing of the embedded problem from β = min(0.1, mock_beta) up
  to mock_beta in ``mock_sweeps`` sweeps (geometric). Like a QPU, its reads freeze out before
  the end, so their effective β is below mock_beta and not known in advance.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import dimod

from rbmdiff.errors import RbmdiffError
from rbmdiff.samplers.qpu.thermal import ThermalSampler

MOCK_KINDS = ("thermal", "annealer")
NOMINAL_QPU_BETA = 5.0  # Advantage: β ≈ 5–6 in programmed units (docs/math.md §6a)


def has_token() -> bool:
    """True when a D-Wave API token is configured (DWAVE_API_TOKEN or a dwave config file)."""
    if os.environ.get("DWAVE_API_TOKEN"):
        return True
    try:
        from dwave.cloud.config import load_config

        return bool(load_config().get("token"))
    except Exception:  # a broken config file means no usable token
        return False


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
