"""A QPU campaign: sweep QPU settings under a budget of QPU access time.

The settings are the Cartesian product of params.yaml's ``campaign.sweep`` (num_reads,
annealing_time, chain_strength, calibration_rounds), run in order as ``qpu``-tagged tasks
(``campaign.parallel`` at once) on the model and embedding the pipeline produced, which this
flow brings up to date first.  Each result is appended to reports/campaign.parquet the moment
it arrives.  Once the QPU access time spent reaches the budget no further setting starts;
runs already in flight finish (a submitted QPU job cannot be recalled).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.futures import as_completed
from prefect.runtime import flow_run

from flows.config import CampaignParams, RouteParams, check_samplers, load_params
from flows.layout import Layout
from flows.ledger import Ledger
from flows.pipeline import run_plan
from flows.tasks import ensure_qpu_limit, qpu_task_options
from rbmdiff.errors import RbmdiffError
from rbmdiff.io import write_parquet

UPSTREAM = ("train", "embed")  # what a campaign samples from


@task(name="campaign-run", **qpu_task_options)
def campaign_run(setting: dict, p: CampaignParams, root: str) -> dict:
    """One setting's QPU run and its §7 record."""
    from flows.stages.sample import draw

    fixed = {k: v for k, v in p.fixed.items() if k not in setting}
    route = RouteParams(seed=p.seed, num_samples=p.num_samples, **fixed, **setting)
    return draw("qpu", route, Layout(Path(root)))[1]


SETTING_TYPES = {"index": "Int64", "num_reads": "Int64", "annealing_time": "float64",
                 "chain_strength": "float64", "calibration_rounds": "Int64", "status": "string",
                 "error": "string", "num_qubits": "Int64"}


def append_row(path: Path, row: dict) -> None:
    """Append one row to a Parquet table (rewritten whole, atomically), with fixed types for
    the settings, so that a None in the first row does not make an untyped column."""
    frame = pd.DataFrame([row])
    frame = frame.astype({k: v for k, v in SETTING_TYPES.items() if k in frame})
    if path.is_file():
        frame = pd.concat([pd.read_parquet(path), frame], ignore_index=True)
    write_parquet(frame, path)


@flow(name="rbmdiff-qpu-campaign")
def campaign(root: str = ".", budget_us: float | None = None, progress: bool = True) -> dict:
    """Run the QPU sweep of params.yaml's ``campaign`` section; budget_us overrides its budget.
    The runs go to this flow's task runner (threads; ``campaign.with_options(task_runner=…)``
    for Dask).  -> {'campaign': id, 'runs': k, 'spent_us': µs, 'stopped': why, 'table': path}."""
    from tqdm.auto import tqdm

    logger = get_run_logger()
    root = str(Path(root).resolve())
    layout = Layout(Path(root))
    params = load_params(layout.params)
    check_samplers(params, layout.params)
    p = params.campaign
    budget = p.budget_us if budget_us is None else float(budget_us)
    if not budget > 0:
        raise RbmdiffError(f"the QPU time budget must be positive µs, got {budget}")
    run_plan(Ledger(root).plan(targets=UPSTREAM), params, root, progress=progress)
    ensure_qpu_limit()

    campaign_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{flow_run.get_name()}"
    settings = p.sweep.settings()
    spent, rows, pending, stopped = 0.0, 0, {}, "all settings run"
    bar = tqdm(total=len(settings), desc="QPU campaign", disable=not progress)

    def collect(done: Any) -> None:
        nonlocal spent, rows
        index, setting = pending.pop(done)
        result = done.result(raise_on_failure=False)
        failed = isinstance(result, BaseException)
        used = 0.0 if failed else float(result.get("cost_units") or 0.0)
        spent += used
        row = {"campaign": campaign_id, "index": index, **setting,
               "status": "failed" if failed else "done",
               "error": repr(result) if failed else None, "qpu_access_us": used,
               "spent_us": spent, "budget_us": budget,
               "finished": pd.Timestamp.now(tz="UTC")}
        if not failed:
            row.update({k: v for k, v in result.items() if k not in row})
        append_row(layout.campaign, row)
        rows += 1
        bar.update(1)
        bar.set_postfix_str(f"{spent:.0f}/{budget:.0f} µs")
        logger.info("campaign %s setting %d %s: %s; %.0f of %.0f µs spent; appended to %s",
                    campaign_id, index, setting, row["status"], spent, budget, layout.campaign)

    for index, setting in enumerate(settings):
        if spent >= budget:
            stopped = f"budget spent after {index} of {len(settings)} settings"
            break
        future = campaign_run.with_options(task_run_name=f"campaign-run-{index}").submit(
            setting, p, root)
        pending[future] = (index, setting)
        if len(pending) >= p.parallel:  # wait for the first to finish, then decide again
            collect(next(as_completed(list(pending))))
    for future in as_completed(list(pending)):
        collect(future)
    bar.close()
    logger.info("campaign %s: %d runs, %.0f µs of QPU access time (budget %.0f): %s",
                campaign_id, rows, spent, budget, stopped)
    return {"campaign": campaign_id, "runs": rows, "spent_us": spent, "budget_us": budget,
            "stopped": stopped, "table": str(layout.campaign)}
