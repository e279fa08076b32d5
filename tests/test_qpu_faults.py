"""QPU faults: the cloud client's real exception types injected into the mock solver."""

from __future__ import annotations

import pytest
import torch
from dwave.cloud import exceptions as cloud

import rbmdiff.samplers.qpu as qpu
import rbmdiff.samplers.qpu.store as qpu_store
from rbmdiff import RBM, RbmdiffError


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
    with pytest.raises(RbmdiffError, match="after 2 retries"):
        sampler(tmp_path, retries=2).sample(rbm, 100, seed=0)
    assert calls["n"] == 3
