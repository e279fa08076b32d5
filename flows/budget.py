"""A hard budget of QPU access time that holds when the estimates are wrong.

Every solver call is estimated before it is made (the timing model of
:mod:`rbmdiff.samplers.qpu.timing`, times ``factor``: the largest reported/estimated ratio of the
solver's earlier calls, so the model is corrected from the first calls on), reserved in the
ledger under its lock, made only if the campaign's charges plus the reservation fit the
budget, and then charged what the solver *reported*.  A call that raised, or whose process died
before it was recorded, is charged its estimate (it may have run).

**The bound.**  A call is made only while charged + estimate ≤ budget, so the budget can be
crossed only by the calls in flight when it is, each by its own misestimate:

    spent ≤ budget + Σ_in-flight (reported − estimated) ≤ budget + P · (ρ − 1) · C

with P the calls in flight (``campaign.parallel``), ρ the largest reported/estimated ratio of a
call and C = ``campaign.max_call_fraction`` · budget, the largest model estimate one call may
have (the campaign sizes ``num_reads`` so that no call exceeds it, and a larger call is
refused).  Since later estimates carry the learnt ratio, a solver with a steady ratio can
overrun only on its first call.

The ledger (JSON lines, one per call event) is appended under a file lock, one whole line per
write; a torn line (a writer killed mid-line) is skipped with a warning and healed by the next
append.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dimod

from rbmdiff.errors import RbmdiffError
from rbmdiff.samplers.qpu.timing import (  # noqa: F401  (re-exported: the campaign's model)
    call_estimate_us,
    max_reads_within,
    reported_access_us,
    timing_data,
)

_THREADS = threading.Lock()


class BudgetStop(RbmdiffError):
    """A solver call was refused: its estimate exceeds what is left of the budget."""


class LedgerWarning(UserWarning):
    """A ledger line could not be read (torn by a killed writer) and was skipped."""


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


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (a sidecar lock file), across threads and processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _THREADS, path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# -- the ledger -----------------------------------------------------------------------------
@dataclass(frozen=True)
class SpendLedger:
    """QPU access time per solver call, one JSON object a line at ``path``: campaign, run,
    call (an id), status ('started': reserved, charged its estimate until it ends; 'done':
    charged ``access_us`` as the solver reported; 'failed': the call raised, charged its
    estimate since it may have run; 'refused': not made), ``estimate_us``, ``model_us`` (the
    estimate before ``factor``), solver, time."""

    path: Path

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(f".{self.path.name}.lock")

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        with file_lock(self.lock_path):
            yield

    def append(self, entry: dict) -> None:
        with self.locked():
            self._append(entry)

    def _append(self, entry: dict) -> None:
        """One line in one write, starting on a fresh line if the last one was torn."""
        line = (json.dumps({**entry, "time": time.time()}) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line
            os.write(fd, line)
        finally:
            os.close(fd)

    def entries(self, campaign: str | None = None, run: str | None = None) -> list[dict]:
        if not self.path.is_file():
            return []
        rows = []
        for number, line in enumerate(self.path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not {"campaign", "status"} <= set(row):
                    raise ValueError("not a ledger entry")
            except (ValueError, TypeError):
                warnings.warn(f"{self.path}:{number}: unreadable ledger line skipped (torn by "
                              f"a killed writer?): {line[:60]!r}", LedgerWarning, stacklevel=2)
                continue
            rows.append(row)
        return [r for r in rows if (campaign is None or r["campaign"] == campaign)
                and (run is None or r.get("run") == run)]

    def spent(self, campaign: str, run: str | None = None) -> float:
        """µs charged to a campaign (or one of its runs): :func:`charges` of its calls."""
        return sum(charges(self.entries(campaign, run)).values())

    def factor(self, solver: str) -> float:
        """max(1, reported / model estimate) over the solver's completed calls."""
        ratios = [r["access_us"] / r["model_us"] for r in self.entries()
                  if r.get("solver") == solver and r["status"] == "done"
                  and r.get("model_us", 0) > 0]
        return max([1.0, *ratios])


def charges(entries: list[dict]) -> dict[str, float]:
    """What each call costs against the budget (µs), by call id: what the solver reported
    ('done'), else its estimate ('failed', or 'started' and never ended: in flight or killed);
    nothing for a refused call."""
    out: dict[str, float] = {}
    for number, e in enumerate(entries):
        call = e.get("call") or f"line-{number}"
        if e["status"] == "done":
            out[call] = float(e["access_us"])
        elif e["status"] in ("failed", "started"):
            out.setdefault(call, float(e["estimate_us"]))
            if e["status"] == "failed":
                out[call] = float(e["estimate_us"])
    return out


# -- one run's budget -----------------------------------------------------------------------
@dataclass
class RunBudget:
    """One sampler run's share of a campaign's budget.  Every call is checked against the
    campaign's whole budget (``allowance_us``: all its runs, attempts and processes together,
    as charged in the ledger); ``max_call_us`` caps one call's model estimate (the bound in the
    module docstring).  Pass it to QPUSampler as ``budget``: every solver call goes through
    :meth:`wrap`."""

    ledger: SpendLedger
    campaign: str
    run: str
    allowance_us: float
    timing: dict
    solver: str
    max_call_us: float = math.inf
    stopped: str | None = field(default=None, compare=False)

    def left(self) -> float:
        return self.allowance_us - self.ledger.spent(self.campaign)

    def estimate(self, *, num_qubits: int, num_reads: int, annealing_time: float | None
                 ) -> tuple[float, float]:
        """-> (estimate µs, model µs) of one call: the model times the learnt ratio."""
        model = call_estimate_us(self.timing, num_qubits=num_qubits, num_reads=num_reads,
                                 annealing_time=annealing_time)
        return self.ledger.factor(self.solver) * model, model

    def wrap(self, child: Any) -> BudgetedSolver:
        return BudgetedSolver(child, self)

    def entry(self, call: str, status: str, estimate: float, model: float,
              access: float = 0.0) -> dict:
        return {"campaign": self.campaign, "run": self.run, "call": call, "status": status,
                "access_us": access, "estimate_us": estimate, "model_us": model,
                "solver": self.solver}

    def reserve(self, *, num_qubits: int, num_reads: int, annealing_time: float | None
                ) -> tuple[str, float, float]:
        """Estimate a call and reserve it in the ledger if it fits (one locked step, so two
        runs or processes cannot both take the last µs).  -> (call id, estimate, model);
        BudgetStop when it does not fit or is larger than ``max_call_us``."""
        call = uuid.uuid4().hex[:16]
        with self.ledger.locked():
            estimate, model = self.estimate(num_qubits=num_qubits, num_reads=num_reads,
                                            annealing_time=annealing_time)
            left = self.left()
            if model > self.max_call_us:
                why = (f"a QPU call of {num_reads} reads is estimated at {model:.0f} µs, more "
                       f"than the {self.max_call_us:.0f} µs one call may take; lower num_reads")
            elif estimate > left:
                why = (f"a QPU call estimated at {estimate:.0f} µs exceeds the "
                       f"{max(left, 0):.0f} µs left of the campaign's budget")
            else:
                self.ledger._append(self.entry(call, "started", estimate, model))
                return call, estimate, model
            self.ledger._append(self.entry(call, "refused", estimate, model))
        self.stopped = why
        raise BudgetStop(why)


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
        call, estimate, model = b.reserve(num_qubits=len(bqm.variables),
                                          num_reads=int(kwargs.get("num_reads", 1)),
                                          annealing_time=kwargs.get("annealing_time"))
        try:
            ss = self.child.sample(bqm, **kwargs)
            ss.resolve()
        except BaseException:
            b.ledger.append(b.entry(call, "failed", estimate, model))
            raise
        access = reported_access_us(ss)
        if not math.isfinite(access):  # no timing reported: charge the estimate
            access = estimate
        b.ledger.append(b.entry(call, "done", estimate, model, access))
        return ss
