"""DVC experiments compare runs: metrics, figures and dvc.lock live in git, so that
``dvc exp run -S``, ``dvc exp show``, ``dvc metrics diff``, ``dvc params diff`` and
``dvc plots diff`` work in a clone, and an earlier params.yaml comes back from DVC's run
cache instead of rerunning."""

from __future__ import annotations

import csv
import io
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from flows.headline import headline
from tests.project import dvc_env, git, make_project

ENV = dvc_env()


def test_headline_keeps_the_defined_numbers_only() -> None:
    metrics = {"train": {"step": 60, "loss": 1.5, "test_ll": None, "wall_s": 2.0},
               "samplers": {"sde": {"mmd": 0.01, "wall_s": 1.0}, "qpu": {"mmd": None},
                            "gibbs": {"mmd": float("nan")}, "ode": {"mmd": 0.02}}}
    assert headline(metrics) == {"loss": 1.5, "mmd": {"sde": 0.01, "ode": 0.02}}
    metrics["train"]["test_ll"] = -4.25
    assert headline(metrics)["test_ll"] == -4.25
    metrics["model"] = {"test_log_likelihood": -4.0}  # the report's exact value comes first
    assert headline(metrics)["test_ll"] == -4.0
    assert headline({}) == {}


def dvc(root: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, env=ENV,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (args, done.stdout[-3000:], done.stderr[-3000:])
    return done.stdout


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clone of a tiny project (one route) whose baseline run is committed, as the
    project's own repository holds dvc.lock, the metrics and the figures; the clone shares
    the origin's DVC cache (as after a `dvc pull`) and has its outputs checked out."""
    origin = make_project(tmp_path_factory.mktemp("origin") / "rbmdiff", routes=["gibbs"])
    dvc(origin, "repro")
    git(origin, "add", "-A")
    git(origin, "commit", "-qm", "baseline run")
    target = tmp_path_factory.mktemp("clone") / "rbmdiff"
    git(target.parent, "clone", "-q", str(origin), str(target))
    dvc(target, "cache", "dir", "--local", str(origin / ".dvc" / "cache"))
    dvc(target, "checkout")
    return target


@pytest.mark.slow
def test_exp_run_show_and_diffs_compare_with_the_baseline(clone: Path) -> None:
    tracked = git(clone, "ls-files").split()
    assert {"dvc.lock", "reports/metrics.json", "reports/figures/samples_grid.png"} <= set(
        tracked)
    assert not [f for f in tracked if f.endswith((".parquet", ".pt", ".npy"))]  # DVC's
    out = dvc(clone, "exp", "run", "-S", "sample.gibbs.num_sweeps=50")
    assert sorted(re.findall(r"Running stage '([^']+)'", out)) == ["report", "sample@gibbs"]

    rows = list(csv.DictReader(io.StringIO(dvc(clone, "exp", "show", "--csv"))))
    baseline = next(r for r in rows if r["Experiment"] == "" and r["rev"] != "workspace")
    experiment = next(r for r in rows if r["Experiment"] not in ("", None))
    for row in (baseline, experiment):
        assert math.isfinite(float(row["mmd.gibbs"])) and math.isfinite(float(row["loss"]))
    assert (baseline["sample.gibbs.num_sweeps"], experiment["sample.gibbs.num_sweeps"]) == (
        "20", "50")
    assert baseline["loss"] == experiment["loss"]  # training did not rerun
    assert baseline["mmd.gibbs"] != experiment["mmd.gibbs"]

    assert "mmd.gibbs" in dvc(clone, "metrics", "diff")
    assert "sample.gibbs.num_sweeps" in dvc(clone, "params", "diff")
    dvc(clone, "plots", "diff", "-o", str(clone.parent / "plots"))
    # the changed metrics and params at 120 columns (the changed dependencies' hashes aside)
    show = dvc(clone, "exp", "show", "--only-changed", "--drop", "^reports/", "--md")
    assert max(len(line) for line in show.splitlines()) <= 120, show
    assert "mmd.gibbs" in show and "num_sweeps" in show


@pytest.mark.slow
def test_an_earlier_params_file_comes_back_from_the_run_cache(clone: Path) -> None:
    dvc(clone, "exp", "run", "-S", "sample.gibbs.num_sweeps=60")
    git(clone, "checkout", "--", "params.yaml")  # the baseline's params again
    out = dvc(clone, "repro")
    assert re.findall(r"Running stage '([^']+)'", out) == []
    assert set(re.findall(r"Stage '([^']+)' is cached", out)) == {"sample@gibbs", "report"}
    assert dvc(clone, "status").strip().endswith("Data and pipelines are up to date.")
    assert git(clone, "status", "--porcelain") == ""  # metrics and figures as committed
