"""Device selection (rbmdiff.device) and --device on the CLI; CPU only (no GPU needed)."""

from __future__ import annotations

import json

import pytest
import torch

from rbmdiff import RBM, RbmdiffError, samplers
from rbmdiff.cli import main
from rbmdiff.device import resolve, to_device


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def with_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


def test_resolve_without_a_gpu(no_gpu):
    assert resolve("auto") == torch.device("cpu")
    assert resolve("cpu") == torch.device("cpu")
    with pytest.raises(RbmdiffError, match="no CUDA GPU") as err:
        resolve("cuda")
    assert "\n" not in str(err.value)


def test_resolve_with_a_gpu(with_gpu):
    assert resolve("auto") == torch.device("cuda")
    assert resolve("cuda") == torch.device("cuda")
    assert resolve("cpu") == torch.device("cpu")


def test_resolve_refuses_unknown_names():
    with pytest.raises(RbmdiffError, match="unknown device 'tpu'"):
        resolve("tpu")


def test_to_device_keeps_the_model():
    rbm = RBM.random(3, 2, seed=1)
    rbm.meta["score"] = "posterior"
    assert to_device(rbm, "cpu") is rbm
    moved = to_device(rbm, torch.device("cpu"))
    assert moved.meta == rbm.meta and torch.equal(moved.W, rbm.W)


@pytest.mark.parametrize("argv", [
    ["train", "--data", "bas-3x3", "--n-hidden", "2", "--out", "{tmp}/m.pt"],
    ["sample", "--model", "{tmp}/m.pt", "--sampler", "sde", "--num-samples", "2",
     "--out", "{tmp}/s.parquet"],
    ["evaluate", "--model", "{tmp}/m.pt", "--data", "bas-3x3"],
])
def test_cli_device_cuda_without_a_gpu_is_a_one_line_error(no_gpu, tmp_path, capsys, argv):
    RBM.random(9, 2, seed=0).save(tmp_path / "m.pt")
    code = main([a.format(tmp=tmp_path) for a in argv] + ["--device", "cuda"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "no CUDA GPU" in err and "Traceback" not in err


def test_model_trained_on_cpu_saves_device_free_loads_and_samples(no_gpu, tmp_path, capsys):
    """train --device cpu records the device, the file holds CPU tensors, and the loaded model
    samples (sde, gibbs) and evaluates with the device in every info/record."""
    model = tmp_path / "m.pt"
    assert main(["train", "--data", "bas-3x3", "--n-hidden", "3", "--steps", "20",
                 "--batch-size", "14", "--method", "cd", "--device", "cpu", "--quiet",
                 "--out", str(model)]) == 0
    payload = torch.load(model, weights_only=True)
    assert all(payload[k].device.type == "cpu" for k in ("W", "b", "c"))
    rbm = RBM.load(model)
    assert rbm.meta["training"]["device"] == "cpu"
    for name, params in (("sde", {"steps": 20}), ("gibbs", {})):
        s = samplers.get(name, **params).sample(rbm, 16, seed=0)
        assert s.info["device"] == "cpu" and s.v.device.type == "cpu"
        assert set(s.v.unique().tolist()) <= {0.0, 1.0} and s.v.shape == (16, 9)
    capsys.readouterr()
    assert main(["evaluate", "--model", str(model), "--data", "bas-3x3", "--device",
                 "auto"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["device"] == "cpu" and metrics["test_log_likelihood"] < 0
