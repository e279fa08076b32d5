"""The real Prefect flows on a tiny project under prefect_test_harness: what they write.

One module-scoped pipeline run feeds the content checks; later tests rerun it (nothing to
do; then one sampler changed), run a QPU campaign under a budget, register a schedule, and
scale sampling out to an in-process Dask cluster.  Tests run in file order.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

pytest.importorskip("prefect")
pytest.importorskip("dvc")

from flows.artefacts import VOLATILE_INFO
from flows.config import load_params
from flows.headline import headline
from flows.layout import Layout
from flows.ledger import Ledger
from rbmdiff.io import read_info
from tests.project import make_project, write_params

pytestmark = pytest.mark.slow  # end-to-end: whole pipeline runs

ROUTES = ["sde", "ode", "gibbs", "anneal", "qpu"]
STAGES = ["prepare", "train", "embed", *(f"sample@{r}" for r in ROUTES), "report"]
TOKEN = "DEV-rbmdiff-test-token-0123456789abcdef"  # must never be written anywhere

# docs/math.md §7 (and §8's required columns): name -> pyarrow type
SCHEMA = {
    "route": "string", "data": "string", "n_visible": "int64", "n_hidden": "int64",
    "sampler": "string", "params": "string", "seed": "int64", "num_samples": "int64",
    "wall_s": "double", "samples_per_s": "double", "cost_units": "double",
    "cost_unit": "string", "multiply_adds": "double", "mean_abs_err": "double",
    "corr_rmse": "double", "mmd": "double", "mean_free_energy": "double",
    "test_log_likelihood": "double", "tv_exact": "double",
}


@pytest.fixture(scope="module")
def harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=None):  # the env's (long) timeout
        yield


@pytest.fixture(scope="module")
def project(harness, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    from flows.pipeline import pipeline

    root = make_project(tmp_path_factory.mktemp("flows") / "rbmdiff")
    return root, pipeline(root=str(root), progress=False)


def table(root: Path) -> pd.DataFrame:
    return pd.read_parquet(Layout(root).samples_table)


def test_one_run_executes_every_stale_stage_and_records_it(project) -> None:
    root, summary = project
    assert sorted(summary["ran"]) == sorted(STAGES) and summary["failed"] == {}
    assert Ledger(root).plan().stale == []  # dvc status: up to date after dvc commit
    lock = (root / "dvc.lock").read_text()
    assert all(f"  {stage}:\n" in lock for stage in STAGES)


def test_samples_table_schema_and_rows(project) -> None:
    root, _ = project
    schema = pq.read_schema(Layout(root).samples_table)
    types = {name: str(schema.field(name).type) for name in schema.names}
    for name, kind in SCHEMA.items():
        assert types.get(name) in ({kind, "large_string"} if kind == "string" else {kind}), name
    frame = table(root)
    assert list(frame["sampler"]) == ROUTES == list(frame["route"])
    assert (frame["num_samples"] == 300).all() and (frame["n_visible"] == 9).all()
    expected_units = {"sde": "score_evaluations", "ode": "score_evaluations",
                      "gibbs": "sweeps", "anneal": "sweeps", "qpu": "qpu_access_us"}
    assert dict(zip(frame["sampler"], frame["cost_unit"], strict=True)) == expected_units
    params = load_params(root / "params.yaml")
    for _, row in frame.iterrows():
        assert row["seed"] == params.sample[row["route"]].seed
        assert json.loads(row["params"])  # the sampler's full parameters, as JSON


def test_samples_table_metrics_are_sane(project) -> None:
    frame = table(project[0])
    assert frame[["wall_s", "samples_per_s", "cost_units"]].gt(0).all().all()
    assert frame["mean_abs_err"].between(0, 0.5).all()
    assert frame["corr_rmse"].between(0, 1.5).all()
    # unbiased MMD² may dip below 0 by its sampling error; 300 draws give |noise| ≲ 0.02
    assert frame["mmd"].between(-0.05, 0.5).all()
    assert frame["tv_exact"].between(0, 1).all()  # n = 9: exact TV for every run
    ll = frame["test_log_likelihood"]  # one model, so one exact value; a law on 2^9 states
    assert ll.nunique() == 1 and -9 * math.log(2) - 5 < ll.iloc[0] < 0
    qpu = frame.set_index("sampler").loc["qpu"]
    assert bool(qpu["mock"]) and 0 <= qpu["chain_break_fraction"] <= 1
    assert qpu["beta_eff_low"] <= qpu["beta_eff"] <= qpu["beta_eff_high"]


def test_run_files_hold_the_draws_and_the_sampler_info(project) -> None:
    root, _ = project
    layout = Layout(root)
    for route in ROUTES:
        path = layout.run(route) / "samples.parquet"
        draws = pd.read_parquet(path)
        v = draws[[f"v{i}" for i in range(9)]]
        assert len(draws) == 300 and set(pd.unique(v.to_numpy().ravel())) <= {0, 1}
        info = read_info(path)
        assert info["sampler"] == route and info["num_samples"] == 300
        assert not set(VOLATILE_INFO) & set(info)  # tracked: a function of the inputs
        assert not any(isinstance(v, str) and v.startswith("/") for v in info.values())
    x = pd.read_parquet(layout.run("sde") / "samples.parquet")[[f"x{i}" for i in range(9)]]
    assert x.to_numpy().min() >= 0 and x.to_numpy().max() <= 1  # denoised means


def test_training_history_and_metrics_json(project) -> None:
    root, _ = project
    layout = Layout(root)
    history = pd.read_parquet(layout.training)
    assert {"step", "epoch", "loss", "log_z", "train_ll", "test_ll"} <= set(history)
    assert "wall_s" not in history  # a timing: in the log, not in a tracked output
    assert history["step"].is_monotonic_increasing and history["step"].iloc[-1] == 60
    assert history["loss"].map(math.isfinite).all()
    metrics = json.loads(layout.metrics.read_text())
    assert json.loads(layout.headline.read_text()) == headline(metrics)  # dvc exp show's
    assert metrics["train"]["step"] == 60
    assert math.isclose(metrics["train"]["loss"], history["loss"].iloc[-1])
    frame = table(root).set_index("route")
    assert list(metrics["samplers"]) == ROUTES
    for route, values in metrics["samplers"].items():
        assert math.isclose(values["mmd"], frame.loc[route, "mmd"])
    for name in ("samples_grid.png", "quality_vs_cost.png", "training.png"):
        data = (layout.figures / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name


def test_qpu_tag_has_a_concurrency_limit(project) -> None:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        assert client.read_concurrency_limit_by_tag("qpu").concurrency_limit == 1


def test_second_run_does_nothing(project) -> None:
    from flows.pipeline import pipeline

    root, _ = project
    summary = pipeline(root=str(root), progress=False)
    assert summary["ran"] == [] and sorted(summary["skipped"]) == sorted(STAGES)


def test_cli_run_with_nothing_stale_does_not_start_prefect(project, monkeypatch, capsys):
    """`rbmdiff-pipeline run` on an up-to-date project answers from `dvc status` alone: the
    same summary, no flow run (the flow is replaced by one that fails if called)."""
    import json

    import flows.pipeline
    from flows.cli import main

    root, _ = project

    def no_flow(**kw):
        raise AssertionError("the flow ran although nothing was stale")

    monkeypatch.setattr(flows.pipeline, "pipeline", no_flow)
    assert main(["--root", str(root), "run", "--quiet"]) == 0
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert summary["ran"] == [] and sorted(summary["skipped"]) == sorted(STAGES)
    assert "Prefect not started" in err


def test_one_sampler_change_reruns_that_route_and_the_report(project) -> None:
    from flows.pipeline import pipeline

    root, _ = project
    before = table(root).set_index("route")
    write_params(root, {"sample": {"gibbs": {"num_sweeps": 9}}})
    summary = pipeline(root=str(root), progress=False)
    assert summary["ran"] == ["sample@gibbs", "report"]
    after = table(root).set_index("route")
    assert json.loads(after.loc["gibbs", "params"])["num_sweeps"] == 9
    unchanged = ["sde", "ode", "anneal", "qpu"]  # same files: not rerun
    assert after.loc[unchanged, "wall_s"].equals(before.loc[unchanged, "wall_s"])
    assert Ledger(root).plan().stale == []


def test_campaign_appends_each_result_and_stops_at_the_budget(project, monkeypatch,
                                                              capfd) -> None:
    from flows.campaign import campaign

    root, _ = project
    monkeypatch.setenv("DWAVE_API_TOKEN", TOKEN)  # a configured token; embed.mock keeps the mock
    first = campaign(root=str(root), budget_us=1.0, progress=False)  # no run fits in 1 µs
    assert first["runs"] == 0 and first["skipped"] == [0, 1]
    rows = pd.read_parquet(Layout(root).campaign)
    assert rows["status"].tolist() == ["skipped"] * 2 and (rows["spent_us"] == 0).all()

    second = campaign(root=str(root), progress=False)  # params.yaml's generous budget
    rows = pd.read_parquet(Layout(root).campaign)
    assert second["runs"] == 2 and len(rows) == 4  # appended, not overwritten
    assert second["spent_us"] <= second["budget_us"]
    latest = rows[rows["campaign"] == second["campaign"]]
    assert latest["annealing_time"].tolist() == [20.0, 50.0]
    assert latest["spent_us"].is_monotonic_increasing and (latest["mmd"].notna()).all()
    assert (latest["mock"] == "annealer").all() and (latest["num_samples"] == 100).all()
    types = pq.read_schema(Layout(root).campaign)
    assert str(types.field("num_reads").type) == "int64"  # typed although every value is null
    assert str(types.field("finished").type).startswith("timestamp")

    # the token is in no artefact, no log line, no flow-run parameter
    out, err = capfd.readouterr()
    assert TOKEN not in out + err
    for path in [*root.joinpath("reports").rglob("*"), *root.joinpath("models").rglob("*"),
                 root / "dvc.lock", root / "params.yaml"]:
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
    from prefect import get_client

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs()
    assert runs and all(TOKEN not in json.dumps(r.parameters, default=str) for r in runs)


def test_deploy_registers_a_cron_schedule(project) -> None:
    from prefect import get_client

    from flows import deploy
    from rbmdiff.errors import RbmdiffError

    root, _ = project
    deployment_id = deploy.register("0 3 * * *", name="nightly", root=str(root))
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment(deployment_id)
    assert deployment.name == "nightly"
    assert [s.schedule.cron for s in deployment.schedules] == ["0 3 * * *"]
    assert deployment.parameters["root"] == str(root.resolve())
    with pytest.raises(RbmdiffError, match="--cron '61 \\* \\* \\* \\*'"):
        deploy.register("61 * * * *", root=str(root))


def test_cli_errors_are_one_line(harness, tmp_path: Path, capsys) -> None:
    import yaml

    from flows.cli import main
    from tests.project import SOURCE

    params = yaml.safe_load((SOURCE / "params.yaml").read_text())
    params["sample"]["gibbs"]["sweep"] = 3  # a misspelt sampler parameter
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert main(["--root", str(tmp_path), "run", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("rbmdiff-pipeline run: error: ")
    assert "sample.gibbs: sampler 'gibbs' has no parameter sweep" in err
    assert main(["--root", str(tmp_path), "deploy", "--cron", "61 * * * *"]) == 2
    assert "--cron '61 * * * *'" in capsys.readouterr().err


def test_sampling_scales_out_on_dask_with_the_same_results(project) -> None:
    pytest.importorskip("prefect_dask")
    from prefect_dask import DaskTaskRunner

    from flows.pipeline import sample_flow

    root, _ = project
    before = table(root).set_index("route")
    runner = DaskTaskRunner(cluster_kwargs={"n_workers": 1, "processes": False,
                                            "threads_per_worker": 2, "dashboard_address": None})
    params = load_params(root / "params.yaml")
    out = sample_flow.with_options(task_runner=runner)(["gibbs", "anneal"], params, str(root),
                                                       False)
    for route in ("gibbs", "anneal"):  # seeded: the same draws as the threaded run
        assert out[route]["mmd"] == before.loc[route, "mmd"]
        assert out[route]["tv_exact"] == before.loc[route, "tv_exact"]
