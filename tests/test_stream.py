from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from rbmdiff import RBM, samplers
from rbmdiff.data import load_dataset
from rbmdiff.io import read_info, sample_to_parquet, samples_frame
from rbmdiff.metrics import SampleStats, sample_record


@pytest.fixture(scope="module")
def rbm() -> RBM:
    return RBM.random(9, 5, scale=0.8, seed=2)


def test_one_chunk_equals_an_unchunked_run(tmp_path, rbm):
    sampler = samplers.get("gibbs", num_sweeps=10)
    info = sample_to_parquet(sampler, rbm, 500, seed=7, path=tmp_path / "s.parquet",
                             chunk_size=1000)
    direct = samples_frame(sampler.sample(rbm, 500, seed=7))
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "s.parquet"), direct)
    assert read_info(tmp_path / "s.parquet")["num_samples"] == 500 == info["num_samples"]


def test_chunks_stream_whole_file_and_are_reproducible(tmp_path, rbm):
    sampler = samplers.get("gibbs", num_sweeps=5)
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    info = sample_to_parquet(sampler, rbm, 2500, seed=3, path=a, chunk_size=1000)
    sample_to_parquet(sampler, rbm, 2500, seed=3, path=b, chunk_size=1000)
    fa = pd.read_parquet(a)
    assert len(fa) == 2500 and fa.equals(pd.read_parquet(b))
    import pyarrow.parquet as pq

    assert pq.ParquetFile(a).num_row_groups == 3
    # chain_sweeps add up over chunks; sweeps per chain (the cost unit) do not.
    assert info["chain_sweeps"] == 2500 * 5 and info["cost_units"] == 5
    assert not fa.iloc[:1000].reset_index(drop=True).equals(
        fa.iloc[1000:2000].reset_index(drop=True)), "chunks must use different seeds"


def test_failed_run_leaves_previous_file_intact(tmp_path, rbm):
    path = tmp_path / "s.parquet"
    path.write_bytes(b"previous")

    class Failing:
        name = "failing"

        def __init__(self):
            self.calls = 0

        def sample(self, rbm, n, *, seed):
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("solver went away")
            return samplers.get("gibbs", num_sweeps=1).sample(rbm, n, seed=seed)

    with pytest.raises(RuntimeError):
        sample_to_parquet(Failing(), rbm, 300, seed=0, path=path, chunk_size=100)
    assert path.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["s.parquet"]


def test_streamed_statistics_equal_in_memory_statistics(rbm):
    """Moments, state counts and a reservoir larger than the sample reproduce the
    in-memory record exactly (up to float summation order)."""
    test = load_dataset("bas-3x3").test
    sampler = samplers.get("gibbs", num_sweeps=5)
    s = sampler.sample(rbm, 1500, seed=1)
    stats = SampleStats(rbm)
    for chunk in s.v.split(400):
        stats.update(chunk)
    streamed, whole = stats.record(s.info, test), sample_record(s, rbm, test)
    for key, value in whole.items():
        if isinstance(value, float) and not math.isnan(value):
            # float32 model: free energies summed in another order differ at ~1e-7
            assert streamed[key] == pytest.approx(value, rel=1e-6, abs=1e-12), key
        elif not isinstance(value, float):
            assert streamed[key] == value, key


def test_reservoir_is_uniform_over_the_stream():
    """Row r of a 10,000-row stream (value r in unit 0's binary code would be overkill):
    feed rows tagged by their chunk and check each of 10 chunks fills ≈ 1/10 of a 500-row
    reservoir: counts ~ Binomial-like, 50 ± 4·√(500·0.1·0.9) ≈ 50 ± 27."""
    rbm = RBM.random(4, 2, seed=0)
    stats = SampleStats(rbm, reservoir=500, seed=0)
    for k in range(10):
        v = torch.zeros(1000, 4)
        v[:, :] = torch.tensor([(k >> s) & 1 for s in range(4)], dtype=torch.float32)
        stats.update(v)
    codes = (stats.reservoir * torch.tensor([1, 2, 4, 8], dtype=torch.float64)).sum(1).long()
    counts = torch.bincount(codes, minlength=16)[:10]
    assert stats.reservoir.shape == (500, 4)
    assert ((counts - 50).abs() <= 27).all(), counts
