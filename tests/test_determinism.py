"""Same seed, same samples and the same statistics (timing columns aside), for every sampler;
a different seed, different samples."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from rbmdiff import RBM, samplers
from rbmdiff.data import load_dataset
from rbmdiff.io import sample_to_parquet
from rbmdiff.metrics import SampleStats

TIMING = ["wall_s", "samples_per_s"]

CASES = {
    "sde": {"steps": 20},
    "ode": {"steps": 5},
    "gibbs": {"num_sweeps": 20},
    "anneal": {"num_sweeps": 50},
    "qpu": {"mock": True, "calibration_rounds": 1, "calibration_reads": 100, "mock_sweeps": 50,
            "num_bootstrap": 10},
}


@pytest.fixture(scope="module")
def rbm() -> RBM:
    model = RBM.random(9, 4, scale=0.8, seed=5)
    model.meta = {"score": "posterior", "eps": 1e-3}
    return model


def run_once(name: str, rbm: RBM, path, seed: int, tmp_path) -> tuple[pd.DataFrame, dict]:
    params = dict(CASES[name])
    if name == "qpu":
        params["embedding_dir"] = str(tmp_path / "embeddings")
    stats = SampleStats(rbm)
    info = sample_to_parquet(samplers.get(name, **params), rbm, 300, seed=seed, path=path,
                             chunk_size=200, on_chunk=lambda c: stats.update(c.v))
    record = stats.record(info, load_dataset("bas-3x3").test)
    return pd.read_parquet(path), {k: v for k, v in record.items() if k not in TIMING}


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_seed_same_samples_and_statistics(name, rbm, tmp_path):
    a, rec_a = run_once(name, rbm, tmp_path / "a.parquet", 11, tmp_path)
    b, rec_b = run_once(name, rbm, tmp_path / "b.parquet", 11, tmp_path)
    c, _ = run_once(name, rbm, tmp_path / "c.parquet", 12, tmp_path)
    pd.testing.assert_frame_equal(a, b)
    assert rec_a == rec_b
    assert not a.equals(c), f"{name}: seed 12 gave the same samples as seed 11"
    assert torch.tensor(a.filter(like="v").to_numpy()).shape == (300, 9)
