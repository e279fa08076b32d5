"""Resumable training: a run stopped (exception or SIGKILL) resumes from its last checkpoint
and ends with exactly the parameters of an uninterrupted run; earlier outputs survive."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
import torch

from rbmdiff import RBM, RbmdiffError
from rbmdiff.data import load_dataset
from rbmdiff.train import RECOMMENDED_DSM, train

BAS = load_dataset("bas-3x3").train


class Stop(Exception):
    pass


@pytest.mark.parametrize("method, kw", [
    pytest.param("pcd", {"cd_k": 2}, marks=pytest.mark.slow),  # persistent chains in the state
    ("dsm", {**RECOMMENDED_DSM, "m_method": "meanfield"}),    # EMA, cosine lr, noise draws
])
def test_interrupted_training_resumes_to_identical_parameters(tmp_path, method, kw):
    args = dict(n_hidden=4, method=method, steps=40, batch_size=7, lr=0.05, seed=3, **kw)
    full = train(BAS, **args).rbm
    ck = tmp_path / "ck.pt"

    def stop_at_epoch_9(record):
        if record["epoch"] == 9:
            raise Stop

    with pytest.raises(Stop):
        train(BAS, checkpoint=ck, callback=stop_at_epoch_9, **args)
    assert ck.exists()
    resumed = train(BAS, checkpoint=ck, **args)
    for a, b in zip(resumed.rbm.parameters(), full.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert [r["step"] for r in resumed.history] == list(range(2, 41, 2))


def test_checkpoint_from_other_arguments_is_refused(tmp_path):
    ck = tmp_path / "ck.pt"
    with pytest.raises(Stop):
        train(BAS, n_hidden=3, method="cd", steps=10, batch_size=7, checkpoint=ck,
              callback=lambda r: (_ for _ in ()).throw(Stop) if r["epoch"] == 2 else None)
    with pytest.raises(RbmdiffError, match="other arguments"):
        train(BAS, n_hidden=3, method="cd", steps=10, batch_size=7, lr=0.5, checkpoint=ck)
    ck.write_bytes(ck.read_bytes()[:50])
    with pytest.raises(RbmdiffError, match="truncated"):
        train(BAS, n_hidden=3, method="cd", steps=10, batch_size=7, checkpoint=ck)


@pytest.mark.slow
def test_sigkill_mid_training_keeps_the_old_model_and_the_rerun_resumes(tmp_path):
    """SIGKILL a CLI training run once its checkpoint exists: the previous model file is
    byte-identical, no temp file is left, and rerunning the same command resumes and ends
    with exactly the parameters of an uninterrupted run."""
    out, ck = tmp_path / "model.pt", tmp_path / "ck.pt"
    RBM.random(16, 8, seed=9).save(out)
    before = out.read_bytes()
    steps = 2000
    argv = [sys.executable, "-m", "rbmdiff.cli", "train", "--data", "bas-4x4", "--n-hidden", "8",
            "--method", "pcd", "--steps", str(steps), "--batch-size", "10", "--seed", "1",
            "--out", str(out), "--checkpoint", str(ck), "--quiet"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not ck.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "training finished before it could be killed"
    assert ck.exists() and out.read_bytes() == before
    # A kill during a checkpoint write may orphan its temp file (cleaned by the next run);
    # never one of the model's.
    assert not list(tmp_path.glob(".model.pt.*")), "the killed run left a partial model"
    done_before = torch.load(ck, weights_only=True)["step"]
    assert 0 < done_before < steps
    subprocess.run(argv, check=True, capture_output=True)  # resumes
    assert not ck.exists()  # a finished run removes its checkpoint
    assert not list(tmp_path.glob(".*.tmp")), "orphaned temp files were not cleaned"
    reference = train(load_dataset("bas-4x4").train, n_hidden=8, method="pcd", steps=steps,
                      batch_size=10, seed=1, lr=0.01).rbm
    for a, b in zip(RBM.load(out).parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
