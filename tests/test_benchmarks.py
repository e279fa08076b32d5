"""The benchmark scripts' --quick modes run and write the tables BENCHMARKS.md is built from.

Only the tables' shape is checked (columns, one row per task × method or per RBM shape);
the numbers themselves are measurements, not assertions.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_script(name: str, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / name), "--quick", "--out", str(out)],
        capture_output=True, text=True, timeout=300, env=env, check=True, cwd=ROOT,
    )


def import_script(name: str):
    """The benchmark script ``benchmarks/<name>.py`` as a module (for its task lists)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.pop(0)


@pytest.mark.slow  # a benchmark script's --quick run (10-30 s)
def test_train_quality_quick_writes_one_row_per_task_and_method(tmp_path):
    train_quality = import_script("train_quality")
    proc = run_script("train_quality.py", tmp_path)
    df = pd.read_parquet(tmp_path / "train_quality.parquet")
    assert {"data", "n_hidden", "method", "seed", "steps", "wall_s", "kl", "train_ll",
            "test_ll", "params"} <= set(df.columns)
    expected = {(t.data, name) for t in train_quality.TASKS for name in train_quality.methods(t)}
    assert set(zip(df["data"], df["method"], strict=True)) == expected
    assert len(df) == len(expected)  # --quick: one seed
    for peer in ("dsm-free_energy", "dsm-mf1", "dsm-mf10", "dsm-mf50", "cd1", "pcd", "ml",
                 "sklearn", "dsm-exact", "dsm-exact-vr"):
        assert peer in set(df["method"])
    assert df.loc[df["data"].str.startswith("bas"), "kl"].notna().all()
    assert (tmp_path / "train_quality.png").stat().st_size > 0
    assert "metric_mean" in proc.stdout


@pytest.mark.slow  # a benchmark script's --quick run (10-30 s)
def test_throughput_quick_writes_rates_ratios_and_memory(tmp_path):
    proc = run_script("throughput.py", tmp_path)
    df = pd.read_parquet(tmp_path / "throughput.parquet")
    assert {"n_visible", "n_hidden", "chains", "threads", "gibbs_sweeps_per_s",
            "matmul_same_shape_gflops", "matmul_peak_gflops", "roofline_same_shape",
            "roofline_peak", "sklearn_sweeps_per_s", "anneal_sweeps_per_s", "vs_sklearn",
            "vs_anneal", "peak_rss_mib", "stream_samples", "anneal_read_sweeps_per_s",
            "torch_rng_share", "torch_elementwise_share", "torch_roofline_bound_rng",
            "flops_per_uniform", "gibbs_kernel", "torch_kernel_sweeps_per_s", "native_share",
            "native_ns_per_unit", "roofline_from_parts", "fused_sweeps_per_s",
            "pass_kernel_sweeps_per_s", "fused_vs_pass_kernel",
            "fused_threads_speedup"} <= set(df.columns)
    assert len(df) >= 2
    assert (df["gibbs_sweeps_per_s"] > 0).all()
    assert len(pd.read_parquet(tmp_path / "throughput_stream.parquet")) == df["stream_samples"][0]
    assert (tmp_path / "throughput.png").stat().st_size > 0
    assert "vs_anneal" in proc.stdout


@pytest.mark.slow  # a benchmark script's --quick run (10-30 s)
def test_sampling_quality_quick_writes_one_row_per_model_sampler_and_setting(tmp_path):
    sampling_quality = import_script("sampling_quality")
    proc = run_script("sampling_quality.py", tmp_path)
    df = pd.read_parquet(tmp_path / "sampling_quality.parquet")
    quality = ["mmd_data", "mmd_ref", "corr_rmse_data", "corr_rmse_ref"]
    assert {"model", "n_visible", "n_hidden", "sampler", "setting_name", "setting",
            "num_samples", "wall_s", "macs", "tv", "tv_floor", "mmd_data_floor", "mmd_ref_floor",
            "params", "train_params", *quality} <= set(df.columns)
    expected = {(m.name, name, s) for m in sampling_quality.MODELS
                for name, (_, _, quick) in sampling_quality.GRIDS.items() for s in quick}
    assert set(zip(df["model"], df["sampler"], df["setting"], strict=True)) == expected
    assert len(df) == len(expected)
    assert set(df["sampler"]) == {"sde", "ode", "gibbs", "anneal", "qpu"}
    assert df[quality].notna().all().all() and (df["wall_s"] > 0).all()
    assert df.loc[df["n_visible"] <= 20, ["tv", "tv_floor"]].notna().all().all()
    assert (df.loc[df["sampler"] != "qpu", "macs"] > 0).all()
    assert df.loc[df["sampler"] == "qpu", "macs"].isna().all()  # not multiply-adds: n/a
    assert (df["num_samples"] == df["num_samples"].iloc[0]).all()
    assert (tmp_path / "sampling_quality.png").stat().st_size > 0
    assert "gibbs reaches" in proc.stdout or "gibbs does not reach" in proc.stdout


@pytest.mark.slow  # a benchmark script's --quick run (10-30 s)
def test_gibbs_calls_quick_writes_every_check_both_ways(tmp_path):
    proc = run_script("gibbs_calls.py", tmp_path)
    df = pd.read_parquet(tmp_path / "gibbs_calls.parquet")
    assert {"check", "way", "run", "value"} <= set(df.columns)
    ways = df.groupby("check")["way"].agg(set).to_dict()
    assert ways["means16"] == ways["ref64"] == {"calls", "one call"}
    assert ways["mmd16"] == {"calls", "one call", "exact draws"}
    assert ways["pairs64"] == {"calls", "one call", "calls / one call"}
    assert df["value"].notna().all() and (df.loc[df["check"] == "means16", "value"] > 0).all()
    means = df[df["check"] == "means16"].pivot(index="run", columns="way", values="value")
    assert (means["calls"] != means["one call"]).all()  # --quick does cut its runs into calls
    assert (tmp_path / "gibbs_calls.png").stat().st_size > 0
    assert "means16" in proc.stdout


def test_qpu_route_table_formats_every_chain_rule():
    """qpu_route.py (minutes per model, not run here) formats a row whatever chain rule ran:
    a ladder rung, the solver's cap (thermal mock: no factor), or no chains."""
    qpu_route = import_script("qpu_route")
    base = {"beta_model": 1.0, "chain_break_fraction": 0.0, "prefactor": 0.2, "rounds": 1,
            "energy_z": 0.1, "qpu_access_time": 100.0, "fidelity_ok": True,
            "fidelity_worst": "<E>", "fidelity_p": 0.5}
    thermal = {**base, "chain_strength": 2.0, "chain_strength_factor": None,
               "chain_length_max": 2}
    annealer = {**base, "chain_strength": 0.86, "chain_strength_factor": 1.8,
                "chain_length_max": 2, "fidelity_ok": False}
    native = {**base, "chain_strength": 0.0, "chain_strength_factor": None,
              "chain_length_max": 1}
    rows = [{"model": m, "reads": 10, "floor": 0.1, "gibbs": 0.1, "anneal": 0.1,
             "qpu_thermal": 0.1, "qpu_annealer": 0.1, "thermal": t, "annealer": a}
            for m, t, a in (("dense", thermal, annealer), ("native", native, native))]
    lines = qpu_route.table(rows).splitlines()
    assert "| 2.000 (cap) / 0.860 (1.8) |" in lines[2]
    assert "| pass / fail: <E> |" in lines[2]
    assert "| no chains / no chains |" in lines[3]
