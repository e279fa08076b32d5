"""--quick runs of benchmarks/digits_gap.py, bigger_models.py and bigger_sampling.py write
their tables (the numbers are measurements, not assertions; only the tables' shape is checked)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_quick(name: str, out: Path) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / name), "--quick", "--out",
                           str(out)], capture_output=True, text=True, timeout=300, env=env,
                          check=True, cwd=ROOT)
    return proc.stdout


@pytest.mark.slow
def test_digits_gap_quick_writes_one_row_per_method_and_the_exact_timing(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import digits_gap
    finally:
        sys.path.pop(0)
    out = run_quick("digits_gap.py", tmp_path)
    df = pd.read_parquet(tmp_path / "digits_gap.parquet")
    assert set(digits_gap.METHODS) | {"dsm-exact (timing, 4×1 rows)"} == set(df["method"])
    assert df.loc[df["method"].isin(digits_gap.METHODS), "test_ll"].lt(0).all()
    assert digits_gap.CPU_DEFAULT in digits_gap.METHODS and "| method |" in out


@pytest.mark.slow
def test_bigger_models_quick_writes_one_row_per_size_and_method(tmp_path):
    run_quick("bigger_models.py", tmp_path)
    df = pd.read_parquet(tmp_path / "bigger_models.parquet")
    assert {"n_hidden", "method", "seed", "test_ll_ais", "ais_stderr"} <= set(df.columns)
    assert len(df) == 2 * 4 and df["ais_stderr"].ge(0).all()


@pytest.mark.slow
def test_gpu_figures_quick_measures_every_figure_on_the_cpu(tmp_path):
    run_quick("gpu_figures.py", tmp_path)
    df = pd.read_parquet(tmp_path / "gpu_figures.parquet")
    cpu = df[df["device"] == "cpu"]
    assert set(cpu["figure"]) == {"dsm-tap steps/s", "dsm-exact steps/s", "gibbs sweeps/s"}
    assert cpu["value"].gt(0).all()


@pytest.mark.slow
def test_bigger_sampling_quick_scores_every_run_against_test_data_and_long_gibbs(tmp_path):
    out = run_quick("bigger_sampling.py", tmp_path)
    df = pd.read_parquet(tmp_path / "bigger_sampling.parquet")
    assert list(df.groupby("n_hidden").size()) == [4, 4]  # ref-floor, gibbs 1 and 10, sde 10
    assert set(df["sampler"]) == {"ref-floor", "gibbs", "sde"}
    assert df[["mmd_data", "corr_rmse", "mean_abs_err", "mmd_ref"]].notna().all().all()
    assert df["corr_rmse"].gt(0).all() and df["mean_abs_err"].gt(0).all()
    assert "| hidden | sampler |" in out
