"""Sampling on a Dask cluster: the tasks run on the workers, every worker reports to the
run's one Prefect API (none starts a server of its own), and the reports equal those of the
in-process run.  The API here is the ephemeral one the run starts (no test harness), as for a
user without a configured API."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("prefect_dask")
distributed = pytest.importorskip("distributed")

from flows.layout import Layout  # noqa: E402
from tests.project import make_project  # noqa: E402

ROUTES = ["gibbs", "anneal"]
TIMING = {"wall_s", "samples_per_s", "timing"}


def untimed(obj):
    if isinstance(obj, dict):
        return {k: untimed(v) for k, v in obj.items() if k not in TIMING}
    return [untimed(v) for v in obj] if isinstance(obj, list) else obj


def child_commands() -> list[str]:
    """The command lines of a worker process's children (run on each worker)."""
    import psutil

    return [" ".join(p.cmdline()) for p in psutil.Process().children(recursive=True)]


@pytest.mark.slow
def test_sampling_runs_on_two_workers_with_one_api_and_the_same_reports(tmp_path: Path):
    from prefect import get_client

    from flows.pipeline import pipeline

    here = make_project(tmp_path / "threads" / "rbmdiff", routes=ROUTES)
    there = make_project(tmp_path / "dask" / "rbmdiff", routes=ROUTES)
    local = pipeline(root=str(here), progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        workers = set(client.scheduler_info()["workers"])
        summary = pipeline(root=str(there), dask=cluster.scheduler_address, progress=False)
        servers = {w: [c for c in cmds if "prefect" in c or "uvicorn" in c]
                   for w, cmds in client.run(child_commands).items()}
    assert set(summary["ran"]) == set(local["ran"]) and not summary["failed"]
    ran_on = {r: summary["results"][f"sample@{r}"]["ran_on"] for r in ROUTES}
    assert set(ran_on.values()) <= workers, (ran_on, workers)
    assert all(local["results"][f"sample@{r}"]["ran_on"] == f"pid {os.getpid()}"
               for r in ROUTES)  # the threaded run: in this process
    assert servers == {w: [] for w in workers}  # no worker started a Prefect server

    with get_client(sync_client=True) as api:  # this process's API saw both runs' tasks
        names = [t.name for t in api.read_task_runs() if t.state and t.state.is_completed()]
    assert all(names.count(f"sample@{r}") == 2 for r in ROUTES), names

    a, b = Layout(here), Layout(there)
    for route in ROUTES:
        pd.testing.assert_frame_equal(pd.read_parquet(a.run(route) / "samples.parquet"),
                                      pd.read_parquet(b.run(route) / "samples.parquet"))
        assert untimed(json.loads((a.run(route) / "record.json").read_text())) == untimed(
            json.loads((b.run(route) / "record.json").read_text()))
    drop = sorted(TIMING & set(pd.read_parquet(a.samples_table).columns))
    pd.testing.assert_frame_equal(pd.read_parquet(a.samples_table).drop(columns=drop),
                                  pd.read_parquet(b.samples_table).drop(columns=drop))
    assert a.headline.read_text() == b.headline.read_text()


def test_a_remote_scheduler_needs_a_reachable_api() -> None:
    """Without a configured API the run's API is ephemeral, on this machine's loopback:
    sending tasks to a scheduler elsewhere is refused in one line naming the fix."""
    from flows.scaleout import shared_api
    from rbmdiff.errors import RbmdiffError

    with pytest.raises(RbmdiffError, match="PREFECT_API_URL"), shared_api("tcp://10.9.8.7:8786"):
        pass
    with shared_api(None):  # threads: nothing to share
        pass


def test_the_cli_refuses_a_remote_scheduler_before_any_work(capsys) -> None:
    from flows.cli import main
    from tests.project import SOURCE

    assert main(["--root", str(SOURCE), "run", "--dask", "tcp://10.9.8.7:8786"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rbmdiff-pipeline run: error: --dask tcp://10.9.8.7:8786: ")
    assert "\n" not in err and "PREFECT_API_URL" in err


def test_a_local_cluster_links_no_dashboard() -> None:
    # `--dask local` serves no dashboard, so the run must not print a link to one
    import dask

    from flows.scaleout import task_runner

    before = dask.config.get("distributed.dashboard.link")
    try:
        task_runner("local")
        with distributed.LocalCluster(n_workers=1, processes=False,
                                      dashboard_address=None) as cluster, \
                distributed.Client(cluster) as client:
            assert not client.dashboard_link
    finally:
        dask.config.set({"distributed.dashboard.link": before})
