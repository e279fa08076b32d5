"""`dvc repro` on a fresh clone runs every stage; a second run skips them all; changing one
sampler's parameter reruns exactly that sampler's stage and the report."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("dvc")

from tests.project import dvc_env, git, make_project, write_params

pytestmark = pytest.mark.slow  # end-to-end: whole pipeline runs

ROUTES = ("gibbs",)  # one route keeps it short; tests/test_flows_pipeline.py runs all five
STAGES = {"prepare", "train", "embed", *(f"sample@{r}" for r in ROUTES), "report"}
ENV = dvc_env()


def repro(root: Path) -> tuple[list[str], list[str]]:
    """Run `dvc repro`; -> (stages run, stages skipped)."""
    done = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=root, env=ENV,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ran = re.findall(r"Running stage '([^']+)'", done.stdout)
    skipped = re.findall(r"Stage '([^']+)' didn't change, skipping", done.stdout)
    return ran, skipped


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    origin = make_project(tmp_path_factory.mktemp("origin") / "rbmdiff", routes=list(ROUTES))
    target = tmp_path_factory.mktemp("clone") / "rbmdiff"
    subprocess.run(["git", "clone", "-q", str(origin), str(target)], check=True)
    return target


def test_repro_runs_then_skips_then_reruns_only_what_changed(clone: Path) -> None:
    ran, skipped = repro(clone)
    assert set(ran) == STAGES and len(ran) == len(STAGES) and not skipped
    table = pd.read_parquet(clone / "reports" / "samples.parquet")
    assert list(table["sampler"]) == list(ROUTES)  # docs/design.md §8's columns, one row per run
    assert {"sampler", "num_samples", "wall_s", "mean_abs_err", "corr_rmse", "mmd"} <= set(
        table.columns)
    assert (clone / "reports" / "statistics.json").is_file()
    # git sees the lock file, the metrics (headline numbers), the figures and DVC's
    # .gitignore files; the outputs themselves are DVC's
    new = set(git(clone, "ls-files", "--others", "--exclude-standard").split())
    assert {"dvc.lock", "reports/metrics.json", "reports/figures/training.png"} <= new
    assert not [f for f in new if f.endswith((".parquet", ".pt", ".npy", "statistics.json"))]

    ran, skipped = repro(clone)
    assert ran == [] and set(skipped) == STAGES

    before = (clone / "dvc.lock").read_text()
    write_params(clone, {"sample": {"gibbs": {"num_sweeps": 7}}})
    ran, skipped = repro(clone)
    assert sorted(ran) == ["report", "sample@gibbs"]
    assert set(skipped) == STAGES - {"report", "sample@gibbs"}
    gibbs = pd.read_parquet(clone / "reports" / "samples.parquet").set_index("sampler")
    assert '"num_sweeps": 7' in gibbs.loc["gibbs", "params"]
    assert (clone / "dvc.lock").read_text() != before


def test_timing_floor_reruns_every_stage_with_copies_only(clone: Path) -> None:
    """``python benchmarks/timing.py --floor``: DVC alone on the same stages.  Every stage reruns
    and puts back exactly what it wrote; the project is left as it was, up to date."""
    from benchmarks.timing import time_floor

    repro(clone)  # up to date (whatever ran before)
    outs = [clone / "reports" / "samples.parquet", clone / "models" / "rbm.pt",
            clone / "data" / "prepared" / "train.npy", clone / "dvc.yaml", clone / "dvc.lock"]
    before = [p.read_bytes() for p in outs]
    floor = time_floor(clone)
    assert floor["floor_stages"] == len(STAGES) and floor["dvc_floor_s"] > 0
    assert [p.read_bytes() for p in outs] == before  # outputs, dvc.yaml and dvc.lock as they were
    ran, skipped = repro(clone)
    assert ran == [] and set(skipped) == STAGES


def test_a_forced_rerun_gives_the_same_bytes(clone: Path) -> None:
    """Outputs are a function of the inputs: rerunning every stage on the same inputs writes
    the same bytes, so neither dvc.lock nor any tracked file changes (git status is clean),
    while this machine's timings go to the untracked reports/timings/."""
    repro(clone)
    git(clone, "add", "-A")
    git(clone, "commit", "-qm", "a run")
    model = (clone / "models" / "rbm.pt").read_bytes()
    done = subprocess.run([sys.executable, "-m", "dvc", "repro", "--force"], cwd=clone, env=ENV,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert set(re.findall(r"Running stage '([^']+)'", done.stdout)) == STAGES
    assert git(clone, "status", "--porcelain") == ""
    assert (clone / "models" / "rbm.pt").read_bytes() == model
    timing = (clone / "reports" / "timings" / "gibbs.json").read_text()
    assert '"wall_s"' in timing and "wall_s" not in (clone / "reports" / "runs" / "gibbs" /
                                                     "record.json").read_text()
