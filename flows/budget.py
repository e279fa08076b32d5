"""A hard budget of QPU access time: every solver call is estimated before it is made, a call
that would overrun what is left is never made, and what each call spent is appended to a
ledger (JSON lines) the moment it returns, so a resumed campaign knows what it already spent.

The estimate of one call is D-Wave's published timing model (dwave-cloud-client's
``StructuredSolver.estimate_qpu_access_time``: programming + reads · (anneal + readout(qubits)
+ delay)) on the solver's ``problem_timing_data``; a solver without it (MockDWaveSampler)
gets the Advantage system's data that dwave-cloud-client publishes with its test mocks.  It is
multiplied by ``factor`` ≥ 1, the largest ratio of reported to estimated access time of the
earlier calls on that solver in the ledger, so a solver slower than its model is estimated
by what it really took.
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import dimod

from rbmdiff.errors import RbmdiffError

_APPEND = threading.Lock()


class BudgetStop(RbmdiffError):
    """A solver call was refused: its estimate exceeds what is left of the budget."""


# -- the timing model -----------------------------------------------------------------------
def timing_data(properties: dict) -> tuple[dict, str]:
    """The solver's ``problem_timing_data``, else the published Advantage data.
    -> (data, source)."""
    data = properties.get("problem_timing_data")
    if data:
        return dict(data), "solver problem_timing_data"
    from dwave.cloud.testing.mocks import qpu_problem_timing_data

    return qpu_problem_timing_data("advantage"), "published Advantage timing data (no solver data)"


def call_estimate_us(data: dict, *, num_qubits: int, num_reads: int,
                     annealing_time: float | None) -> float:
    """D-Wave's estimate of one call's QPU access time (µs) from ``problem_timing_data``."""
    from dwave.cloud.solver import StructuredSolver

    holder = SimpleNamespace(properties={"problem_timing_data": data})
    return float(StructuredSolver.estimate_qpu_access_time(
        holder, num_qubits, num_reads=num_reads, annealing_time=annealing_time))


def run_reads(*, num_samples: int, num_reads: int | None, calibration_rounds: int,
              calibration_reads: int, max_reads: int) -> list[int]:
    """Reads of each solver call of one QPUSampler run, in order: ``calibration_rounds``
    rounds of ``calibration_reads`` reads, then ``num_samples``, each cut into calls of
    min(num_reads or all, max_reads) reads."""
    def calls(total: int) -> list[int]:
        per_call = min(num_reads or total, max_reads)
        return [min(per_call, total - start) for start in range(0, total, per_call)]

    return [k for _ in range(calibration_rounds) for k in calls(calibration_reads)] \
        + calls(num_samples)


# -- the ledger -----------------------------------------------------------------------------
@dataclass(frozen=True)
class SpendLedger:
    """QPU access time per solver call, one JSON object a line at ``path``: campaign, run,
    status ('done': ``access_us`` as the solver reported; 'failed': the call raised, charged
    its estimate since it may have run; 'refused': not made), ``estimate_us``, ``model_us``
    (the estimate before ``factor``), solver, time."""

    path: Path

    def append(self, entry: dict) -> None:
        line = json.dumps({**entry, "time": time.time()}) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with _APPEND, self.path.open("a") as f:  # one write: whole lines, even across processes
            f.write(line)
            f.flush()

    def entries(self, campaign: str | None = None, run: str | None = None) -> list[dict]:
        if not self.path.is_file():
            return []
        rows = [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
        return [r for r in rows if (campaign is None or r["campaign"] == campaign)
                and (run is None or r["run"] == run)]

    def spent(self, campaign: str, run: str | None = None) -> float:
        """µs charged to a campaign (or one of its runs): reported time of the calls made,
        the estimate of each call that failed."""
        return sum(charge(r) for r in self.entries(campaign, run))

    def factor(self, solver: str) -> float:
        """max(1, reported / model estimate) over the solver's completed calls."""
        ratios = [r["access_us"] / r["model_us"] for r in self.entries()
                  if r["solver"] == solver and r["status"] == "done" and r["model_us"] > 0]
        return max([1.0, *ratios])


def charge(entry: dict) -> float:
    """What one ledger entry costs against the budget (µs)."""
    return {"done": entry["access_us"], "failed": entry["estimate_us"]}.get(entry["status"], 0.0)


# -- one run's budget -----------------------------------------------------------------------
@dataclass
class RunBudget:
    """The access time one sampler run may spend (``allowance_us``, all its attempts
    together, as charged in the ledger), and the estimate of each of its calls.  Pass it to
    QPUSampler as ``budget``: every solver call of the run goes through :meth:`wrap`."""

    ledger: SpendLedger
    campaign: str
    run: str
    allowance_us: float
    timing: dict
    solver: str
    factor: float = 1.0
    stopped: str | None = field(default=None, compare=False)

    def left(self) -> float:
        return self.allowance_us - self.ledger.spent(self.campaign, self.run)

    def estimate(self, *, num_qubits: int, num_reads: int, annealing_time: float | None
                 ) -> tuple[float, float]:
        """-> (estimate µs, model µs) of one call."""
        model = call_estimate_us(self.timing, num_qubits=num_qubits, num_reads=num_reads,
                                 annealing_time=annealing_time)
        return self.factor * model, model

    def wrap(self, child: Any) -> BudgetedSolver:
        return BudgetedSolver(child, self)

    def record(self, status: str, estimate: float, model: float, access: float = 0.0) -> None:
        self.ledger.append({"campaign": self.campaign, "run": self.run, "status": status,
                            "access_us": access, "estimate_us": estimate, "model_us": model,
                            "solver": self.solver})


class BudgetedSolver(dimod.Sampler, dimod.Structured):
    """A structured solver whose calls are estimated, refused beyond the budget, and logged."""

    def __init__(self, child: Any, budget: RunBudget) -> None:
        self.child, self.budget = child, budget

    @property
    def properties(self) -> dict:
        return self.child.properties

    @property
    def parameters(self) -> dict:
        return self.child.parameters

    @property
    def nodelist(self) -> list:
        return self.child.nodelist

    @property
    def edgelist(self) -> list:
        return self.child.edgelist

    def sample(self, bqm: dimod.BinaryQuadraticModel, **kwargs: Any) -> dimod.SampleSet:
        """The child's reads of the embedded ``bqm`` (its variables are the qubits used), if
        the call's estimate fits in what is left; else BudgetStop and no call."""
        b = self.budget
        estimate, model = b.estimate(num_qubits=len(bqm.variables),
                                     num_reads=int(kwargs.get("num_reads", 1)),
                                     annealing_time=kwargs.get("annealing_time"))
        left = b.left()
        if estimate > left:
            b.record("refused", estimate, model)
            b.stopped = (f"a QPU call estimated at {estimate:.0f} µs exceeds the "
                         f"{max(left, 0):.0f} µs left of this run's budget")
            raise BudgetStop(b.stopped)
        try:
            ss = self.child.sample(bqm, **kwargs)
            ss.resolve()
        except BaseException:
            b.record("failed", estimate, model)
            raise
        access = float(ss.info.get("timing", {}).get("qpu_access_time", math.nan))
        if not math.isfinite(access):  # no timing reported: charge the estimate
            access = estimate
        b.record("done", estimate, model, access)
        return ss
