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
  the end, so their effective β is below mock_beta and not known in advance.  Its sweeps
  follow the annealing time: ``mock_sweeps`` per 20 µs (the default annealing time), so a
  longer anneal is a slower quench, as on a QPU.

Both report each call's ``info["timing"]`` from D-Wave's timing model (:mod:`.timing`: reads,
anneal, readout of the qubits used, programming), the model the campaign's estimates use.  A
setting the mock has no model of is refused, not ignored: ``annealing_time`` on the thermal
mock (an ideal device has no anneal), ``auto_scale=True``, and the QPU's other parameters;
the mock's ``parameters`` declare only what it models.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import dimod

from rbmdiff.choices import QPU_MOCKS
from rbmdiff.errors import RbmdiffError
from rbmdiff.samplers.qpu import timing
from rbmdiff.samplers.qpu.store import with_retries
from rbmdiff.samplers.qpu.thermal import ThermalSampler

MOCK_KINDS = QPU_MOCKS
NOMINAL_QPU_BETA = 5.0  # Advantage: β ≈ 5–6 in programmed units (docs/math.md §6a)
ANNEAL_US = 20.0  # the QPU's default annealing time: the annealer mock's mock_sweeps are per this
MOCKED = {"num_reads", "answer_mode", "auto_scale", "label", "annealing_time"}


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

    parameters: ClassVar[dict] = {"beta": [], "seed": [], "num_reads": [], "num_sweeps": [],
                                  "annealing_time": []}
    properties: ClassVar[dict] = {}

    def sample(self, bqm, *, beta: float, num_reads: int = 1, seed: int | None = None,
               num_sweeps: int = 1000, annealing_time: float | None = None,
               **_) -> dimod.SampleSet:
        """num_sweeps per ANNEAL_US µs of ``annealing_time`` (None: ANNEAL_US)."""
        from dwave.samplers import SimulatedAnnealingSampler

        if annealing_time is not None:
            num_sweeps = max(1, round(num_sweeps * annealing_time / ANNEAL_US))
        return SimulatedAnnealingSampler().sample(
            bqm, num_reads=num_reads, seed=seed, num_sweeps=num_sweeps,
            beta_range=(min(0.1, beta), beta), beta_schedule_type="geometric")


def mock_solver(kind: str, topology: str, shape: list[int], *, beta: float, sweeps: int) -> Any:
    """MockDWaveSampler of ``topology``/``shape`` whose reads come from the ``kind`` mock."""
    from dwave.system.testing import MockDWaveSampler

    if kind not in MOCK_KINDS:
        raise RbmdiffError(f"unknown mock {kind!r}; choose one of {MOCK_KINDS}")
    class TimedMock(MockDWaveSampler):
        """MockDWaveSampler that reports the timing model's access time and refuses what the
        ``kind`` mock would ignore (module docstring)."""

        def sample(self, bqm, **kwargs):
            check_mocked(kind, kwargs)
            ss = super().sample(bqm, **kwargs)
            ss.info["timing"] = timing.call_timing(
                self.properties["problem_timing_data"], num_qubits=len(bqm.variables),
                num_reads=int(kwargs.get("num_reads", 1)),
                annealing_time=kwargs.get("annealing_time"))
            return ss

    sub = ThermalSampler() if kind == "thermal" else AnnealerSampler()
    child = TimedMock(
        topology_type=topology, topology_shape=list(shape), parameter_warnings=False,
        substitute_sampler=sub, substitute_kwargs={"beta": beta, "num_sweeps": sweeps},
    )
    child.properties["problem_timing_data"] = timing.timing_data({})[0]
    modelled = MOCKED - ({"annealing_time"} if kind == "thermal" else set())
    child.parameters = {k: v for k, v in child.parameters.items() if k in modelled}
    return child


def check_mocked(kind: str, kwargs: dict) -> None:
    """Refuse a QPU parameter the ``kind`` mock would silently ignore."""
    ignored = sorted(set(kwargs) - MOCKED)
    if kind == "thermal" and kwargs.get("annealing_time") is not None:
        ignored.append("annealing_time")
    if kwargs.get("auto_scale", False):
        ignored.append("auto_scale=True")
    if ignored:
        raise RbmdiffError(
            f"the {kind} mock has no model of {', '.join(ignored)}: it would ignore "
            f"{'it' if len(ignored) == 1 else 'them'}, so a run varying "
            f"{'it' if len(ignored) == 1 else 'them'} would measure nothing; "
            + ("sweep annealing_time on the annealer mock or the QPU"
               if "annealing_time" in ignored else "leave it unset on a mock"))


def open_qpu(topology: str, solver: str | None, *, retries: int = 3,
             backoff: float = 2.0) -> Any:
    """DWaveSampler for ``solver`` (a name) or any solver of ``topology``; transient cloud
    faults retried (then a TransientError), any other failure a one-line RbmdiffError."""
    from dwave.system import DWaveSampler

    named = f" named {solver!r}" if solver else ""
    return with_retries(lambda: DWaveSampler(solver=solver or {"topology__type": topology}),
                        retries=retries, backoff=backoff,
                        what=f"opening a D-Wave solver for topology {topology!r}{named}",
                        hint="; pass mock='annealer' to sample offline")
