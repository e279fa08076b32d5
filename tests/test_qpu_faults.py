"""QPU faults: the cloud client's real exception types raised by the mock solver and by a
user's device; the library's retries are the only retry layer."""

from __future__ import annotations

from typing import ClassVar

import dimod
import pytest
import torch
from dwave.cloud import exceptions as cloud

import rbmdiff.samplers.qpu as qpu
import rbmdiff.samplers.qpu.store as qpu_store
from rbmdiff import RBM, RbmdiffError, TransientError
from rbmdiff.samplers import get
from tests.test_qpu_noisy import NoisyBoltzmann


@pytest.fixture
def rbm() -> RBM:
    return RBM.random(6, 3, scale=1.0, seed=1, dtype=torch.float64)


@pytest.fixture
def faults(monkeypatch):
    """Make the k-th solver call (1-based) raise ``plan[k]``; count calls; no real sleeps."""
    from dwave.system import FixedEmbeddingComposite

    plan: dict[int, BaseException] = {}
    calls = {"n": 0, "slept": []}
    real = FixedEmbeddingComposite.sample_ising

    def flaky(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] in plan:
            raise plan[calls["n"]]
        return real(self, *args, **kwargs)

    monkeypatch.setattr(FixedEmbeddingComposite, "sample_ising", flaky)
    monkeypatch.setattr(qpu_store, "sleep", lambda s: calls["slept"].append(s))
    return plan, calls


def sampler(tmp_path, **kw) -> qpu.QPUSampler:
    return qpu.QPUSampler(mock=True, calibration_rounds=1, calibration_reads=100,
                          num_reads=100, mock_sweeps=50, num_bootstrap=5,
                          embedding_dir=tmp_path / "emb", read_store=tmp_path / "reads",
                          retry_backoff=1.0, **kw)


@pytest.mark.parametrize("exc", [
    cloud.RequestTimeout("request timed out"),
    cloud.PollingTimeout("polling timed out"),
    cloud.SAPIError("rate limited", error_code=429),
    cloud.SolverOfflineError("solver offline"),
])
def test_transient_faults_are_retried_with_backoff(tmp_path, rbm, faults, exc):
    plan, calls = faults
    plan[2] = exc
    plan[3] = exc
    s = sampler(tmp_path).sample(rbm, 200, seed=0)
    assert s.v.shape == (200, 6)
    assert calls["slept"] == [1.0, 2.0]  # backoff · 2^k
    assert calls["n"] == 1 + 2 + 2  # calibration, 2 failures, then the 2 final calls


def test_permanent_fault_fails_with_one_line_and_resume_pays_only_the_rest(tmp_path, rbm,
                                                                        faults):
    plan, calls = faults
    plan[3] = cloud.SolverFailureError("problem rejected by the solver")
    with pytest.raises(RbmdiffError, match="SolverFailureError") as info:
        sampler(tmp_path).sample(rbm, 300, seed=0)  # 1 calibration call + 3 final calls
    assert "\n" not in str(info.value) and "reads already returned are kept" in str(info.value)
    assert len(list((tmp_path / "reads").glob("*.json"))) == 2  # the 2 paid calls persisted
    plan.clear()
    before = calls["n"]
    s = sampler(tmp_path).sample(rbm, 300, seed=0)
    assert calls["n"] - before == 2  # only the 2 calls never answered go to the solver
    assert s.info["reused_calls"] == 2 and s.info["qpu_calls"] == 4
    # The resumed run equals an uninterrupted one.
    clean = sampler(tmp_path / "clean").sample(rbm, 300, seed=0)
    torch.testing.assert_close(s.v, clean.v)


def test_retries_run_out_into_a_clear_error(tmp_path, rbm, faults):
    plan, calls = faults
    for k in range(1, 10):
        plan[k] = cloud.RequestTimeout("timed out")
    with pytest.raises(TransientError, match="after 2 retries") as info:
        sampler(tmp_path, retries=2).sample(rbm, 100, seed=0)
    assert calls["n"] == 3 and calls["slept"] == [1.0, 2.0]
    assert not isinstance(info.value, ValueError)  # not a bad request


class Failing(dimod.Sampler):
    """A user's device whose first ``fails`` calls raise ``fault``; then exact reads at
    β = 2.5 (:class:`NoisyBoltzmann`)."""

    parameters: ClassVar[dict] = {"num_reads": [], "seed": []}
    properties: ClassVar[dict] = {}

    def __init__(self, fault: BaseException, fails: int) -> None:
        self.fault, self.fails, self.calls = fault, fails, 0
        self.exact = NoisyBoltzmann(2.5, 0.0, 0)

    def sample(self, bqm, **kwargs):
        self.calls += 1
        if self.calls <= self.fails:
            raise self.fault
        return self.exact.sample(bqm, **kwargs)


def unavailable() -> cloud.SAPIError:
    return cloud.SAPIError("503 Service Unavailable", error_code=503)


@pytest.fixture
def slept(monkeypatch) -> list[float]:
    waits: list[float] = []
    monkeypatch.setattr(qpu_store, "sleep", waits.append)
    return waits


def test_a_devices_503_is_retried_then_a_transient_error(rbm, tmp_path, slept):
    device = Failing(unavailable(), fails=10**6)
    route = get("qpu", sampler=device, embedding_dir=tmp_path, calibration_rounds=0,
                beta_eff=2.5, retries=3, retry_backoff=0.5)
    name = type(unavailable()).__name__  # SAPIError is dwave.cloud.api's RequestError
    with pytest.raises(TransientError, match=rf"still failing after 3 retries \({name}: "
                                             r"503 Service Unavailable\); try again later"):
        route.sample(rbm, 100, seed=0)
    assert device.calls == 1 + 3 and slept == [0.5, 1.0, 2.0]

    device = Failing(unavailable(), fails=2)  # back before the retries run out
    route = get("qpu", sampler=device, embedding_dir=tmp_path, calibration_rounds=0,
                beta_eff=2.5, retries=3, retry_backoff=0.5)
    assert route.sample(rbm, 100, seed=0).v.shape == (100, 6)
    assert device.calls == 3 and slept[3:] == [0.5, 1.0]


@pytest.mark.parametrize("fault", [
    cloud.SAPIError("400 Bad Request: problem rejected", error_code=400),
    cloud.ProblemStructureError("coupler (0, 99) is not in the solver's graph"),
    cloud.SolverAuthenticationError("invalid token"),
])
def test_a_permanent_fault_is_not_retried(rbm, tmp_path, slept, fault):
    device = Failing(fault, fails=10**6)
    route = get("qpu", sampler=device, embedding_dir=tmp_path, calibration_rounds=0,
                beta_eff=2.5, retries=3, retry_backoff=0.5)
    with pytest.raises(RbmdiffError, match=f"QPU call failed \\({type(fault).__name__}: ") as info:
        route.sample(rbm, 100, seed=0)
    assert device.calls == 1 and slept == []
    assert "\n" not in str(info.value)


class Unavailable(Failing):
    """For ``--set sampler=tests.test_qpu_faults:Unavailable``: always HTTP 503."""

    def __init__(self) -> None:
        super().__init__(unavailable(), fails=10**6)


def test_the_cli_prints_a_transient_fault_as_one_line_and_exits_75(rbm, tmp_path, slept,
                                                                   capsys):
    from rbmdiff.cli import main

    rbm.save(tmp_path / "m.pt")
    code = main(["sample", "--model", str(tmp_path / "m.pt"), "--sampler", "qpu",
                 "--num-samples", "50", "--out", str(tmp_path / "s.parquet"), "--quiet",
                 "--set", "sampler=tests.test_qpu_faults:Unavailable",
                 "--set", f"embedding_dir={tmp_path}", "--set", "calibration_rounds=0",
                 "--set", "beta_eff=2.5", "--set", "retries=1"])
    err = capsys.readouterr().err.strip()
    assert code == 75 and len(slept) == 1
    assert err.startswith("rbmdiff sample: error: QPU call still failing after 1 retries")
    assert "\n" not in err and not (tmp_path / "s.parquet").exists()


def test_opening_the_qpu_is_retried_too(monkeypatch, slept):
    import dwave.system

    from rbmdiff.samplers.qpu import solvers

    opened = []

    def timeout(**kwargs):
        opened.append(kwargs)
        raise cloud.RequestTimeout("timed out")

    monkeypatch.setattr(dwave.system, "DWaveSampler", timeout)
    with pytest.raises(TransientError, match="opening a D-Wave solver for topology 'pegasus' "
                                             "still failing after 2 retries"):
        solvers.open_qpu("pegasus", None, retries=2, backoff=1.0)
    assert len(opened) == 3 and slept == [1.0, 2.0]


def test_pipeline_tasks_do_not_retry() -> None:
    """The one retry layer is the library's, at the call that failed: a Prefect task that
    fails (a TransientError included) is not run again."""
    pytest.importorskip("prefect")
    from flows.campaign import campaign_run
    from flows.tasks import qpu_task_options, stage_qpu_task, stage_task

    assert "retries" not in qpu_task_options and qpu_task_options["tags"] == ["qpu"]
    assert [t.retries for t in (stage_task, stage_qpu_task, campaign_run)] == [0, 0, 0]
    assert stage_qpu_task.tags == {"qpu"} and not stage_task.tags
