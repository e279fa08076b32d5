"""The QPU budget holds when estimates are wrong: on the mock solver with injected access times
(each call's reported ``qpu_access_time`` set by the test), QPU time charged never exceeds the
budget plus the stated bound (flows.budget: parallel · (ρ − 1) · max_call_fraction · budget),
per run and per campaign, including retried calls, concurrent resumes and a resume after a
fault; no call's reads are bought twice and no row is lost."""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Callable
from pathlib import Path

import dimod
import numpy as np
import pandas as pd
import pytest
import torch

from flows.budget import (
    BudgetStop,
    LedgerWarning,
    RunBudget,
    SpendLedger,
    call_estimate_us,
    run_reads,
    timing_data,
)
from rbmdiff import RBM
from rbmdiff.errors import RbmdiffError
from rbmdiff.samplers import qpu
from rbmdiff.samplers.qpu import solvers as qpu_solvers
from rbmdiff.samplers.qpu import store as qpu_store

SHAPE = [4]  # pegasus P4 holds K_{6,4}


class Script:
    """Each mock solver call's outcome: ``step(call, num_reads, num_qubits, annealing_time)``
    returns the access time to report (µs) or an exception to raise before any read."""

    def __init__(self, step: Callable[..., float | BaseException]) -> None:
        self.step, self.reads, self.qubits, self.bought = step, [], [], []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> Script:
        real = qpu_solvers.mock_solver

        def make(*args, **kwargs):
            child = real(*args, **kwargs)
            inner = child.sample

            def sample(bqm, **kw):
                outcome = self.step(len(self.reads), kw["num_reads"], len(bqm.variables),
                                    kw.get("annealing_time"))
                self.reads.append(kw["num_reads"])
                self.qubits.append(len(bqm.variables))
                if isinstance(outcome, BaseException):
                    raise outcome
                ss = inner(bqm, **kw)
                ss.resolve()
                ss.info["timing"] = {"qpu_access_time": outcome}
                self.bought.append(call_identity(bqm, kw, child.substitute_kwargs))
                return ss

            child.sample = sample
            return child

        monkeypatch.setattr(qpu_solvers, "mock_solver", make)
        monkeypatch.setattr(qpu_store, "sleep", lambda s: None)  # retries without waiting
        return self


def call_identity(bqm, kw: dict, substitute: dict) -> tuple:
    """What makes a call's reads: the programmed problem, the parameters, the mock's seed."""
    problem = tuple(sorted((str(v), round(b, 12)) for v, b in bqm.linear.items()))
    couplings = tuple(sorted((str(u), str(v), round(b, 12))
                             for (u, v), b in bqm.quadratic.items()))
    return (hash((problem, couplings)), kw["num_reads"], kw.get("annealing_time"),
            substitute.get("seed"))


def model_us(num_reads: int, num_qubits: int, annealing_time: float | None = None) -> float:
    data, _ = timing_data({})
    return call_estimate_us(data, num_qubits=num_qubits, num_reads=num_reads,
                            annealing_time=annealing_time)


def exact_times(call: int, reads: int, qubits: int, at: float | None) -> float:
    """A solver that takes exactly its timing model's estimate."""
    return model_us(reads, qubits, at)


@pytest.fixture
def rbm() -> RBM:
    return RBM.random(6, 4, scale=1.0, seed=3, dtype=torch.float64)


def sampler(tmp_path: Path, budget: RunBudget | None, **kw) -> qpu.QPUSampler:
    kw = {"calibration_rounds": 1, "calibration_reads": 50, "num_reads": 40, **kw}
    return qpu.QPUSampler(mock=True, mock_shape=SHAPE, embedding_dir=tmp_path / "emb",
                          num_bootstrap=0, mock_sweeps=10, budget=budget, **kw)


def budget(tmp_path: Path, allowance: float, *, run: str = "0.0",
           campaign: str = "c") -> RunBudget:
    data, _ = timing_data({})
    return RunBudget(SpendLedger(tmp_path / "spend.jsonl"), campaign, run, allowance, data,
                     "mock")


# -- the timing model --------------------------------------------------------------------
def test_call_estimate_is_the_published_model_by_hand() -> None:
    """Advantage data: programming 14072.88 + 1000 (thermalisation) µs, and per read
    anneal + 10^interp(log10 q) (readout, piecewise linear in log-log) + 20.54 (delay)."""
    data, source = timing_data({})
    assert "published" in source
    q, t = data["readout_time_model_parameters"][:6], data["readout_time_model_parameters"][6:]
    readout = 10 ** np.interp(math.log10(136), q, t)
    expected = 14072.88 + 1000.0 + 300 * (100.0 + readout + 20.54)
    got = call_estimate_us(data, num_qubits=136, num_reads=300, annealing_time=100.0)
    assert got == pytest.approx(expected, rel=1e-12)
    assert call_estimate_us(data, num_qubits=136, num_reads=300, annealing_time=None) \
        == pytest.approx(expected - 300 * 80.0, rel=1e-12)  # default anneal: 20 µs
    own = {"problem_timing_data": {**data, "typical_programming_time": 1.0}}
    assert timing_data(own) == (own["problem_timing_data"], "solver problem_timing_data")


def test_run_reads_are_the_calls_the_sampler_makes(tmp_path, rbm, monkeypatch) -> None:
    script = Script(lambda call, reads, qubits, at: 100.0).install(monkeypatch)
    sampler(tmp_path, None, calibration_rounds=2).sample(rbm, 90, seed=0)
    planned = run_reads(num_samples=90, num_reads=40, calibration_rounds=2,
                        calibration_reads=50, max_reads=10_000)
    assert planned == [40, 10, 40, 10, 40, 40, 10]  # calibration_rounds is a maximum
    rounds = (len(script.reads) - 3) // 2
    assert 1 <= rounds <= 2 and script.reads == [40, 10] * rounds + [40, 40, 10]
    assert run_reads(num_samples=90, num_reads=None, calibration_rounds=0,
                     calibration_reads=50, max_reads=25) == [25, 25, 25, 15]


# -- one run ---------------------------------------------------------------------------
def test_a_run_stops_between_calls_when_its_budget_is_reached(tmp_path, rbm,
                                                              monkeypatch) -> None:
    """Calls report exactly their estimate; the allowance holds three calls and half of the
    fourth: three calls are made, the fourth is refused, 0 µs over."""
    script = Script(exact_times).install(monkeypatch)
    probe = sampler(tmp_path, None).embed(6, 4)
    q = probe.info()["num_qubits"]
    costs = [model_us(k, q) for k in [40, 10, 40, 40, 10]]  # calibration 50, then 90 reads
    b = budget(tmp_path, sum(costs[:3]) + costs[3] / 2)
    with pytest.raises(RbmdiffError, match=r"exceeds the .* µs left of the campaign's budget"):
        sampler(tmp_path, b).sample(rbm, 90, seed=0)
    assert script.reads == [40, 10, 40] and set(script.qubits) == {q}
    assert b.ledger.spent("c") == pytest.approx(sum(costs[:3]), abs=1e-9)
    assert b.ledger.spent("c") <= b.allowance_us
    assert [e["status"] for e in b.ledger.entries()] == ["started", "done"] * 3 + ["refused"]
    assert b.stopped is not None


def test_a_failed_call_is_charged_its_estimate_and_a_retry_must_fit(tmp_path, rbm,
                                                                    monkeypatch) -> None:
    """A timed-out call may have run on the QPU: it is charged its estimate.  With room for
    one estimate and a half, the first call times out and its retry is refused."""
    from dwave.cloud.exceptions import RequestTimeout

    def step(call, reads, qubits, at):
        return RequestTimeout("injected") if call == 0 else 1000.0

    script = Script(step).install(monkeypatch)
    q = sampler(tmp_path, None).embed(6, 4).info()["num_qubits"]
    first = model_us(40, q)
    b = budget(tmp_path, 1.5 * first)
    with pytest.raises(RbmdiffError):
        sampler(tmp_path, b).sample(rbm, 90, seed=0)
    assert script.reads == [40]  # the retry was never made
    assert b.ledger.spent("c") == pytest.approx(first) and b.ledger.spent("c") <= 1.5 * first

    # with room to spare, the run completes: estimate of the failed attempt + 1000 µs per call
    script = Script(step).install(monkeypatch)
    b = budget(tmp_path, 1e9, run="1.0")
    samples = sampler(tmp_path, b).sample(rbm, 90, seed=0)
    assert script.reads == [40, 40, 10, 40, 40, 10]  # call 1 retried
    assert b.ledger.spent("c", "1.0") == pytest.approx(first + 5 * 1000.0)
    assert samples.info["qpu_access_time"] == pytest.approx(5 * 1000.0)  # the QPU's report


def test_a_slower_solver_raises_later_estimates(tmp_path) -> None:
    """factor = max(1, reported / model) over the solver's completed calls."""
    ledger = SpendLedger(tmp_path / "spend.jsonl")
    assert ledger.factor("mock") == 1.0
    for access, model in [(50.0, 100.0), (260.0, 200.0)]:
        ledger.append({"campaign": "c", "run": "0.0", "status": "done", "access_us": access,
                       "estimate_us": model, "model_us": model, "solver": "mock"})
    ledger.append({"campaign": "c", "run": "0.0", "status": "failed", "access_us": 0.0,
                   "estimate_us": 70.0, "model_us": 70.0, "solver": "mock"})
    assert ledger.factor("mock") == pytest.approx(1.3) and ledger.factor("other") == 1.0
    assert ledger.spent("c") == pytest.approx(50 + 260 + 70)


def test_the_timing_model_is_dwave_clouds_estimate(tmp_path) -> None:
    """rbmdiff's model (which the mocks report) equals dwave-cloud-client's estimator."""
    from dwave.cloud.solver import StructuredSolver

    data, _ = timing_data({})
    holder = type("S", (), {"properties": {"problem_timing_data": data}})()
    for q, reads, at in [(1, 1, None), (136, 300, 100.0), (264, 2000, 20.0), (5000, 7, 2.5)]:
        theirs = StructuredSolver.estimate_qpu_access_time(holder, q, num_reads=reads,
                                                           annealing_time=at)
        assert call_estimate_us(data, num_qubits=q, num_reads=reads, annealing_time=at) \
            == pytest.approx(theirs, rel=1e-12)


# -- the mocks' timing and settings --------------------------------------------------------
def test_mock_reports_the_models_access_time(tmp_path, rbm) -> None:
    """100 and 2000 reads cost what the model says (not a fixed 8,550 µs), and the sampler's
    cost is the sum over its calls of the model, the campaign estimate's own numbers."""
    solver = sampler(tmp_path, None).embed(6, 4)
    q = solver.info()["num_qubits"]
    bqm = dimod.BQM({v: 0.1 for v in solver.child.nodelist[:q]}, {}, 0.0, "SPIN")
    times = {}
    for reads in (100, 2000):
        ss = solver.child.sample(bqm, num_reads=reads, answer_mode="raw", auto_scale=False)
        times[reads] = ss.info["timing"]["qpu_access_time"]
        assert times[reads] == pytest.approx(model_us(reads, q), rel=1e-12)
    assert times[2000] - times[100] == pytest.approx(1900 * (model_us(2, q) - model_us(1, q)))
    out = sampler(tmp_path, None, calibration_rounds=0, num_reads=None).sample(rbm, 90, seed=0)
    assert out.info["qpu_access_time"] == pytest.approx(model_us(90, q), rel=1e-12)


def test_annealer_sweeps_follow_annealing_time_and_thermal_refuses_it(tmp_path, rbm,
                                                                      monkeypatch) -> None:
    """mock_sweeps per 20 µs: 10 sweeps at 20 µs, 50 at 100 µs, and reads that differ; the
    thermal mock (no anneal) and any unmodelled QPU parameter are refused, not ignored."""
    from dwave.samplers import SimulatedAnnealingSampler

    swept = []
    real = SimulatedAnnealingSampler.sample

    def spy(self, bqm, **kw):
        swept.append(kw["num_sweeps"])
        return real(self, bqm, **kw)

    monkeypatch.setattr(SimulatedAnnealingSampler, "sample", spy)
    reads = {}
    for at in (20.0, 100.0):
        out = sampler(tmp_path, None, calibration_rounds=0, annealing_time=at).sample(
            rbm, 200, seed=0)
        reads[at] = out.v
    assert set(swept) == {10, 50}
    assert not torch.equal(reads[20.0], reads[100.0])
    thermal = qpu.QPUSampler(mock="thermal", mock_shape=SHAPE, embedding_dir=tmp_path / "emb",
                             num_bootstrap=0, calibration_rounds=0, annealing_time=50.0)
    with pytest.raises(RbmdiffError, match="takes no annealing_time"):
        thermal.sample(rbm, 10, seed=0)
    child = sampler(tmp_path, None).embed(6, 4).child
    with pytest.raises(RbmdiffError, match="no model of readout_thermalization"):
        child.sample(dimod.BQM({child.nodelist[0]: 1.0}, {}, 0, "SPIN"),
                     readout_thermalization=10)


# -- the ledger and the table ----------------------------------------------------------------
def entry(call: str, status: str, access: float, estimate: float, campaign: str = "c") -> dict:
    return {"campaign": campaign, "run": "0.0", "call": call, "status": status,
            "access_us": access, "estimate_us": estimate, "model_us": estimate,
            "solver": "mock"}


def test_a_torn_ledger_line_is_skipped_with_a_warning_and_healed(tmp_path) -> None:
    ledger = SpendLedger(tmp_path / "spend.jsonl")
    ledger.append(entry("a", "started", 0, 100.0))
    ledger.append(entry("a", "done", 120.0, 100.0))
    with ledger.path.open("a") as f:  # a writer killed mid-line
        f.write('{"campaign": "c", "run": "0.0", "call": "b", "sta')
    with pytest.warns(LedgerWarning, match="unreadable ledger line"):
        assert ledger.spent("c") == pytest.approx(120.0)
    ledger.append(entry("d", "failed", 0, 50.0))  # starts on a fresh line
    with pytest.warns(LedgerWarning):
        assert ledger.spent("c") == pytest.approx(170.0)
        assert [e["call"] for e in ledger.entries("c")] == ["a", "a", "d"]


def test_charges_reported_time_or_estimate_once_per_call(tmp_path) -> None:
    """started → done: the report; started alone (in flight, or the process died): the
    estimate; failed: the estimate; refused: nothing."""
    ledger = SpendLedger(tmp_path / "spend.jsonl")
    for e in [entry("a", "started", 0, 100.0), entry("a", "done", 300.0, 100.0),
              entry("b", "started", 0, 40.0), entry("c", "started", 0, 70.0),
              entry("c", "failed", 0, 70.0), entry("d", "refused", 0, 1e9),
              entry("e", "done", 5.0, 5.0, campaign="other")]:
        ledger.append(e)
    assert ledger.spent("c") == pytest.approx(300 + 40 + 70)
    assert ledger.factor("mock") == pytest.approx(3.0)


def test_concurrent_reservations_never_take_the_same_microseconds(tmp_path) -> None:
    """8 threads race to reserve 100-µs calls against a 1,000 µs budget: exactly 10 are
    made; the others are refused."""
    data, _ = timing_data({})
    ledger = SpendLedger(tmp_path / "spend.jsonl")
    cost = call_estimate_us(data, num_qubits=10, num_reads=1)
    made = []

    def worker(k: int) -> None:
        b = RunBudget(ledger, "c", f"{k}.0", 10 * cost + 1.0, data, "mock")
        for _ in range(5):
            try:
                call, est, model = b.reserve(num_qubits=10, num_reads=1, annealing_time=None)
            except BudgetStop:
                return
            made.append(call)
            ledger.append(b.entry(call, "done", est, model, est))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 10 and len(set(made)) == 10
    assert ledger.spent("c") == pytest.approx(10 * cost) and ledger.spent("c") <= 10 * cost + 1


def _append_rows(path: str, writer: int, count: int) -> None:
    from flows.campaign_table import append_row

    for i in range(count):
        append_row(Path(path), {"campaign": "c", "index": 100 * writer + i, "status": "done"})


def test_concurrent_appends_lose_no_row(tmp_path) -> None:
    """Two processes and two threads each append 15 rows to one table: all 60 are there."""
    import multiprocessing

    path = tmp_path / "campaign.parquet"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_rows, args=(str(path), w, 15)) for w in (0, 1)]
    threads = [threading.Thread(target=_append_rows, args=(str(path), w, 15)) for w in (2, 3)]
    for x in [*procs, *threads]:
        x.start()
    for x in [*procs, *threads]:
        x.join()
    assert all(p.exitcode == 0 for p in procs)
    rows = pd.read_parquet(path)
    assert sorted(rows["index"]) == sorted(100 * w + i for w in range(4) for i in range(15))


# -- the campaign flow -----------------------------------------------------------------
@pytest.fixture(scope="module")
def harness():
    pytest.importorskip("prefect")
    pytest.importorskip("dvc")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=None):
        yield


@pytest.mark.slow
def test_campaign_never_overruns_and_resumes_with_exact_totals(harness, tmp_path,
                                                               monkeypatch) -> None:
    """Two settings (annealing_time 20 and 50 µs, no calibration, one call of 100 reads each);
    every call reports exactly its estimate.  A budget of 1.5 runs: the first runs, the second
    is skipped before it starts.  Resumed with room for both: only the second runs, and the
    campaign's total is the sum of the two estimates, ≤ the budget, in ledger and table."""
    from flows.campaign import campaign, spend_ledger
    from flows.layout import Layout
    from tests.project import make_project

    root = make_project(tmp_path / "rbmdiff")
    Script(exact_times).install(monkeypatch)
    q = qpu.QPUSampler(mock=True, mock_shape=SHAPE, embedding_dir=tmp_path / "e").embed(9, 4)
    q = q.info()["num_qubits"]
    cost = {20.0: model_us(100, q, 20.0), 50.0: model_us(100, q, 50.0)}

    first = campaign(root=str(root), budget_us=1.5 * cost[20.0], progress=False)
    table = pd.read_parquet(Layout(root).campaign)
    assert table["status"].tolist() == ["done", "skipped"]
    assert table["estimate_us"].tolist() == pytest.approx([cost[20.0], cost[50.0]])
    assert first["spent_us"] == pytest.approx(cost[20.0])
    assert first["spent_us"] <= 1.5 * cost[20.0]
    assert first["runs"] == 1 and first["skipped"] == [1] and "short by" in table["error"][1]

    budget_us = cost[20.0] + cost[50.0] + 1.0
    second = campaign(root=str(root), budget_us=budget_us, progress=False,
                      resume=first["campaign"])
    table = pd.read_parquet(Layout(root).campaign)
    assert table["status"].tolist() == ["done", "skipped", "done"]
    assert table["annealing_time"].tolist() == [20.0, 50.0, 50.0]
    total = cost[20.0] + cost[50.0]
    assert second["spent_us"] == pytest.approx(total)
    assert second["spent_us"] <= budget_us
    assert table["qpu_access_us"].sum() == pytest.approx(total)
    assert table["spent_us"].iloc[-1] == pytest.approx(total)
    ledger = SpendLedger(spend_ledger(Layout(root)))
    assert ledger.spent(first["campaign"]) == pytest.approx(total)
    assert table["cost_units"].iloc[-1] == pytest.approx(cost[50.0])  # the sampler's own sum

    third = campaign(root=str(root), budget_us=budget_us, progress=False,
                     resume=first["campaign"])  # nothing left to run
    assert third["runs"] == 0 and third["spent_us"] == pytest.approx(total)
    with pytest.raises(RbmdiffError, match="no campaign 'nope'"):
        campaign(root=str(root), progress=False, resume="nope")


def tiny_cost(tmp_path: Path, at: float, reads: int = 100) -> float:
    """The model's estimate of one call of the tiny project's K_{9,4} on the P4 mock."""
    q = qpu.QPUSampler(mock=True, mock_shape=SHAPE, embedding_dir=tmp_path / "e").embed(9, 4)
    return model_us(reads, q.info()["num_qubits"], at)


@pytest.mark.slow
@pytest.mark.parametrize("ratio", [1.5, 3.0])
def test_a_slower_solver_than_estimated_overruns_by_at_most_the_bound(harness, tmp_path,
                                                                      monkeypatch, ratio):
    """Every call reports ``ratio`` × its estimate.  Budget 1.2 × the first setting's call,
    max_call_fraction 1: the first call is made (its estimate fits) and overruns by
    (ratio − 1) × its estimate, within the bound (ratio − 1) · max_call_fraction · budget;
    the second setting is estimated with the learnt ratio and not started."""
    from flows.campaign import campaign, spend_ledger
    from flows.layout import Layout
    from tests.project import make_project

    root = make_project(tmp_path / "rbmdiff")
    script = Script(lambda call, reads, qubits, at: ratio * model_us(reads, qubits, at))
    script.install(monkeypatch)
    cost20, cost50 = tiny_cost(tmp_path, 20.0), tiny_cost(tmp_path, 50.0)
    budget_us = 1.2 * cost20
    out = campaign(root=str(root), budget_us=budget_us, progress=False)
    spent = SpendLedger(spend_ledger(Layout(root))).spent(out["campaign"])
    assert spent == pytest.approx(ratio * cost20) and out["spent_us"] == pytest.approx(spent)
    assert spent <= budget_us + (ratio - 1) * 1.0 * budget_us  # the stated bound
    assert out["bound_us"] == pytest.approx(budget_us)  # parallel 1 · max_call_fraction 1
    table = pd.read_parquet(Layout(root).campaign)
    assert table["status"].tolist() == ["done", "skipped"]
    assert table["estimate_us"][1] == pytest.approx(ratio * cost50)  # the learnt ratio
    assert table["qpu_access_us"][0] == pytest.approx(ratio * cost20)  # as reported
    assert len(script.bought) == 1


@pytest.mark.slow
def test_two_concurrent_resumes_cannot_both_spend(harness, tmp_path, monkeypatch) -> None:
    """A campaign with one setting left is resumed twice at once: the second is refused in one
    line while the first holds the campaign; the setting runs once, its call is bought once,
    and the campaign's spend is within the budget, in the ledger and the rows."""
    from flows.campaign import campaign, spend_ledger
    from flows.layout import Layout
    from tests.project import make_project

    root = make_project(tmp_path / "rbmdiff")
    cost20, cost50 = tiny_cost(tmp_path, 20.0), tiny_cost(tmp_path, 50.0)
    inside, release = threading.Event(), threading.Event()

    def step(call, reads, qubits, at):
        if call == 1:  # the resumed call: hold it until the rival has tried
            inside.set()
            release.wait(120)
        return model_us(reads, qubits, at)

    script = Script(step).install(monkeypatch)
    first = campaign(root=str(root), budget_us=1.5 * cost20, progress=False)
    assert first["skipped"] == [1]
    budget_us = cost20 + cost50 + 1.0
    results: dict[str, object] = {}

    def resume(name: str) -> None:
        try:
            results[name] = campaign(root=str(root), budget_us=budget_us, progress=False,
                                     resume=first["campaign"])
        except RbmdiffError as exc:
            results[name] = exc

    a = threading.Thread(target=resume, args=("a",))
    a.start()
    assert inside.wait(120)
    resume("b")  # while a holds the campaign
    release.set()
    a.join()
    assert isinstance(results["b"], RbmdiffError) and "being run by another process" in str(
        results["b"])
    assert results["a"]["done"] == [1]
    assert len(script.bought) == len(set(script.bought)) == 2
    spent = SpendLedger(spend_ledger(Layout(root))).spent(first["campaign"])
    assert spent == pytest.approx(cost20 + cost50) and spent <= budget_us
    table = pd.read_parquet(Layout(root).campaign)
    assert table["status"].tolist() == ["done", "skipped", "done"]  # b wrote no row
    assert table["qpu_access_us"].sum() == pytest.approx(spent)


@pytest.mark.slow
def test_a_fault_mid_run_then_resume_buys_no_read_twice(harness, tmp_path, monkeypatch,
                                                         capsys):
    """One setting of 4 calls (25 reads each); the third call fails for good: the setting is
    'failed' and the summary and the CLI say so.  Resumed: the two calls that returned are
    read back from the read store, only the last two are bought; every call's reads are
    bought once, and the spend is the reported calls plus the failed call's estimate."""
    from flows.campaign import campaign, spend_ledger
    from flows.layout import Layout
    from tests.project import TINY, make_project, merge

    overrides = merge(TINY, {"campaign": {"sweep": {"num_reads": [25], "annealing_time": [20]}}})
    root = make_project(tmp_path / "rbmdiff", overrides=overrides)
    failing = {"on": True}

    def step(call, reads, qubits, at):
        if call == 2 and failing["on"]:
            return ValueError("injected: solver rejected the problem")
        return model_us(reads, qubits, at)

    script = Script(step).install(monkeypatch)
    from flows.cli import main

    assert main(["--root", str(root), "campaign", "--quiet"]) == 1  # not as if all ran
    out, err = capsys.readouterr()
    first = json.loads(out)
    assert first["failed"] == [0] and "1 failed" in first["stopped"]
    assert f"--resume {first['campaign']}" in err
    assert len(script.bought) == 2
    failing["on"] = False
    second = campaign(root=str(root), progress=False, resume=first["campaign"])
    assert second["done"] == [0] and second["reused_calls"] == 2
    assert len(script.bought) == 4 and len(set(script.bought)) == 4  # none bought twice
    cost = tiny_cost(tmp_path, 20.0, 25)
    spent = SpendLedger(spend_ledger(Layout(root))).spent(first["campaign"])
    assert spent == pytest.approx(5 * cost)  # 4 calls reported + the failed one's estimate
    table = pd.read_parquet(Layout(root).campaign)
    assert table["status"].tolist() == ["failed", "done"]
    assert table["reused_calls"][1] == 2 and table["qpu_calls"][1] == 4
    row = table.iloc[1]
    for column in ("mmd", "corr_rmse", "beta_model", "chain_break_fraction"):
        assert math.isfinite(row[column]), column
    png = Path(second["figure"]).read_bytes()
    assert png.startswith(b"\x89PNG")


# Runs ``flows.cli.main`` on each (root, args) of argv[1] (JSON) in one interpreter; prints
# each case's exit status, stderr and whether Prefect had been imported by then.
CAMPAIGN_CASES = """
import contextlib, io, json, sys
from flows.cli import main
out = []
for root, args in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(["--root", root, "campaign", *args])
    out.append({"rc": rc, "err": err.getvalue(), "prefect": "prefect" in sys.modules})
print(json.dumps(out))
"""


def test_bad_campaign_input_is_one_line_before_prefect(tmp_path) -> None:
    """Bad YAML, a negative budget, an unknown campaign: exit 2, one line on stderr, no
    traceback, and Prefect never imported."""
    import shutil
    import subprocess
    import sys

    from tests.project import make_project

    root = make_project(tmp_path / "rbmdiff")
    bad_yaml = tmp_path / "bad-yaml"
    shutil.copytree(root, bad_yaml)
    (bad_yaml / "params.yaml").write_text("campaign: [unclosed\n")
    cases = [(root, ["--budget-us", "-5"], "budget must be a positive number"),
             (root, ["--resume", "nope"], "no campaign 'nope'"),
             (root, ["--budget-us", "nan"], "budget must be a positive number"),
             (bad_yaml, [], "not valid YAML")]
    argv = json.dumps([(str(r), args) for r, args, _ in cases])
    proc = subprocess.run([sys.executable, "-c", CAMPAIGN_CASES, argv], capture_output=True,
                          text=True, timeout=120, cwd=root,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    for (_, _, message), got in zip(cases, results, strict=True):
        lines = got["err"].strip().splitlines()
        assert got["rc"] == 2 and len(lines) == 1 and message in lines[0], got
        assert got["prefect"] is False  # Prefect was not even imported


def test_the_qpu_stage_keeps_paid_reads_per_device(tmp_path, rbm, monkeypatch) -> None:
    """sample@qpu's sampler gets a read store under reports/qpu-reads/, one folder per device:
    a second run of the same calls buys nothing (every call read back), and the thermal
    mock never reads the annealer mock's reads."""
    from flows.artefacts import write_json
    from flows.config import RouteParams
    from flows.layout import Layout
    from flows.stages.sample import sampler_kwargs

    layout = Layout(tmp_path)
    write_json(layout.solver_info, {"topology": "pegasus", "mock": True, "shape": SHAPE})
    kinds = {}
    for mock in ("annealer", "thermal"):
        route = RouteParams(seed=0, num_samples=60, mock=mock, calibration_rounds=0,
                            num_bootstrap=0, mock_sweeps=10)
        kinds[mock] = sampler_kwargs("qpu", route, layout, None)
        assert Path(kinds[mock]["read_store"]).parent == layout.read_store
    assert kinds["annealer"]["read_store"] != kinds["thermal"]["read_store"]
    script = Script(exact_times).install(monkeypatch)
    first = qpu.QPUSampler(**kinds["annealer"]).sample(rbm, 60, seed=0)
    again = qpu.QPUSampler(**kinds["annealer"]).sample(rbm, 60, seed=0)
    assert len(script.bought) == first.info["qpu_calls"] == 1
    assert again.info["reused_calls"] == again.info["qpu_calls"] == 1
    assert torch.equal(first.v, again.v)  # bought once; the result's cost is the same
    assert again.info["qpu_access_time"] == first.info["qpu_access_time"] > 0
    qpu.QPUSampler(**kinds["thermal"]).sample(rbm, 60, seed=0)
    assert len(script.bought) == 2  # its own store: bought, not read from the annealer's


def _calibration_cached() -> bool:
    from flows.campaign import calibration_cached

    return calibration_cached()


@pytest.mark.slow
@pytest.mark.skipif(not _calibration_cached(), reason="the QPU sampler keeps no calibration")
def test_calibration_is_paid_once_per_key_and_reused_by_a_later_campaign(harness, tmp_path,
                                                                         monkeypatch) -> None:
    """Two settings share a calibration key (they differ in calibration_rounds only, which
    the key leaves out): the first pays for calibration, the second reuses it (and then makes
    the first's final call, which is read back); the rows show calibration reads once.  A
    second campaign (another seed: no read of the first is reused) reuses the calibration, is
    estimated without it (estimate = charge, exactly), and spends < 80 % of the first."""
    from flows.campaign import campaign
    from flows.layout import Layout
    from tests.project import TINY, make_project, merge, write_params

    overrides = merge(TINY, {"campaign": {
        "num_samples": 100, "fixed": {"calibration_reads": 200, "mock_sweeps": 50},
        "sweep": {"num_reads": [None], "annealing_time": [20], "calibration_rounds": [4, 3]}}})
    root = make_project(tmp_path / "rbmdiff", overrides=overrides)
    Script(exact_times).install(monkeypatch)
    first = campaign(root=str(root), progress=False)
    rows = pd.read_parquet(Layout(root).campaign)
    assert first["done"] == [0, 1] and rows["target_reached"][0]  # so it was kept
    assert rows["calibration_reads"][0] > 0 and not rows["calibration_reused"][0]
    assert rows["calibration_reads"][1] == 0 and rows["calibration_reused"][1]
    assert rows["calibration_key"][0] == rows["calibration_key"][1]
    # with the calibration reused, setting 1's final call is setting 0's (same seed, same
    # prefactor): read back, not bought
    assert rows["qpu_access_us"][1] == 0 and rows["reused_calls"][1] == 1
    write_params(root, {"campaign": {"seed": 99}})
    second = campaign(root=str(root), progress=False)
    # with the calibration cached, settings 0 and 1 are the same calls: 1's are read back
    assert second["done"] == [0, 1] and second["reused_calls"] == 1
    rows = pd.read_parquet(Layout(root).campaign)
    later = rows[rows["campaign"] == second["campaign"]].reset_index()
    assert (later["calibration_reads"] == 0).all() and later["calibration_reused"].all()
    assert later["estimate_us"][0] == pytest.approx(later["qpu_access_us"][0])
    assert later["qpu_access_us"][0] < 0.8 * rows["qpu_access_us"][0]  # setting by setting
    assert second["spent_us"] < 0.8 * first["spent_us"]
