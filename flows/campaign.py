"""A QPU campaign: sweep QPU settings under a hard budget of QPU access time.

The settings are the Cartesian product of params.yaml's ``campaign.sweep`` (num_reads,
annealing_time, chain_strength, calibration_rounds), run in order as ``qpu``-tagged tasks
(``campaign.parallel`` at once) on the model and embedding the pipeline produced, which this
flow brings up to date first.  Before a setting starts, its QPU access time is estimated
(flows.budget: D-Wave's timing model for each of its solver calls); one that would overrun
what is left is skipped.  Every solver call of a run is estimated again and refused when it
would overrun, so a run stops between calls; what each call spent goes to the ledger
reports/campaign-spend.jsonl at once, and each setting's row to reports/campaign.parquet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.futures import as_completed
from prefect.runtime import flow_run

from flows.artefacts import read_json
from flows.budget import RunBudget, SpendLedger, call_estimate_us, run_reads, timing_data
from flows.config import CampaignParams, RouteParams, check_samplers, load_params
from flows.layout import Layout
from flows.ledger import Ledger
from flows.pipeline import run_plan
from flows.tasks import ensure_qpu_limit, qpu_task_options
from rbmdiff.errors import RbmdiffError
from rbmdiff.io import write_parquet

UPSTREAM = ("train", "embed")  # what a campaign samples from


def spend_ledger(layout: Layout) -> Path:
    """The QPU-time ledger beside the campaign table (JSON lines, one per solver call)."""
    return layout.campaign.with_name("campaign-spend.jsonl")


@task(name="campaign-run", **qpu_task_options)
def campaign_run(setting: dict, p: CampaignParams, root: str, budget: RunBudget) -> dict:
    """One setting's QPU run under its share of the budget: its §7 record with status
    'done', or {'status': 'stopped', 'error': why} when a call was refused mid-run."""
    from flows.stages.sample import draw

    route = RouteParams(seed=p.seed, num_samples=p.num_samples, **run_kwargs(setting, p),
                        budget=budget)
    try:
        return {"status": "done", **draw("qpu", route, Layout(Path(root)))[1]}
    except RbmdiffError as exc:
        if budget.stopped is None:
            raise
        return {"status": "stopped", "error": f"{budget.stopped} ({exc})"}


def run_kwargs(setting: dict, p: CampaignParams) -> dict:
    """The QPUSampler parameters of one setting: campaign.fixed, then the setting."""
    return {**{k: v for k, v in p.fixed.items() if k not in setting}, **setting}


@dataclass(frozen=True)
class SolverFacts:
    """What a run's estimate needs: the solver's name, timing data and read limit, and the
    qubits of the embedding."""

    name: str
    timing: dict
    timing_source: str
    max_reads: int
    num_qubits: int


def solver_facts(p: CampaignParams, layout: Layout) -> SolverFacts:
    """Open the solver the campaign's runs will use (QPU or mock, as the sample stage does)."""
    from flows.stages.sample import sampler_kwargs
    from rbmdiff import samplers

    route = RouteParams(seed=p.seed, num_samples=p.num_samples, **p.fixed)
    sampler = samplers.get("qpu", **sampler_kwargs("qpu", route, layout, None))
    info = read_json(layout.solver_info)
    solver = sampler.embed(info["n_visible"], info["n_hidden"], seed=p.seed)
    timing, source = timing_data(solver.child.properties)
    max_reads = int(solver.child.properties.get("num_reads_range", [1, 10_000])[1])
    return SolverFacts(solver.info()["solver"], timing, source, max_reads,
                       solver.info()["num_qubits"])


def run_estimate_us(setting: dict, p: CampaignParams, solver: SolverFacts,
                    factor: float) -> float:
    """Σ over the run's solver calls of the timing model's estimate, times ``factor``."""
    from rbmdiff.samplers.qpu import QPUSampler

    kw = QPUSampler(**run_kwargs(setting, p)).params()  # the sampler's defaults filled in
    reads = run_reads(num_samples=p.num_samples, num_reads=kw["num_reads"],
                      calibration_rounds=kw["calibration_rounds"],
                      calibration_reads=kw["calibration_reads"], max_reads=solver.max_reads)
    return factor * sum(call_estimate_us(solver.timing, num_qubits=solver.num_qubits,
                                         num_reads=k, annealing_time=kw["annealing_time"])
                        for k in reads)


SETTING_TYPES = {"index": "Int64", "num_reads": "Int64", "annealing_time": "float64",
                 "chain_strength": "string", "mock": "string", "calibration_rounds": "Int64",
                 "status": "string", "error": "string", "num_qubits": "Int64",
                 "estimate_us": "float64", "allowance_us": "float64", "qpu_access_us": "float64"}


def append_row(path: Path, row: dict) -> None:
    """Append one row to a Parquet table (rewritten whole, atomically), with fixed types for
    the settings, so that a None in the first row does not make an untyped column."""
    frame = pd.DataFrame([row])
    frame = frame.astype({k: v for k, v in SETTING_TYPES.items() if k in frame})
    if path.is_file():
        frame = pd.concat([pd.read_parquet(path), frame], ignore_index=True)
    write_parquet(frame, path)


def setting_key(setting: dict) -> tuple:
    """A setting as comparable values (a table's <NA>, float and string columns alike)."""
    return tuple((k, _comparable(v)) for k, v in sorted(setting.items()))


def _comparable(value: Any) -> Any:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, bool) or value in ("True", "False"):
        return str(value)
    try:
        return float(value)
    except ValueError:
        return str(value)


def done_settings(path: Path, campaign_id: str, keys: list[str]) -> tuple[set, int]:
    """The settings a campaign has finished, and how many rows it has, from its table."""
    if not path.is_file():
        return set(), 0
    rows = pd.read_parquet(path)
    rows = rows[rows["campaign"] == campaign_id]
    done = rows[rows["status"] == "done"]
    return {setting_key(r) for r in done[keys].to_dict("records")}, len(rows)


@flow(name="rbmdiff-qpu-campaign")
def campaign(root: str = ".", budget_us: float | None = None, progress: bool = True,
             resume: str | None = None) -> dict:
    """Run the QPU sweep of params.yaml's ``campaign`` section; budget_us overrides its budget.

    A setting starts only when its estimated access time fits in what is left of the budget
    (else it is skipped, and a later, cheaper one may still run); each solver call of a
    run is estimated again and refused when it would overrun (the run stops, 'stopped').
    ``resume``: a campaign id: its finished settings are not run again and what it spent
    (the ledger reports/campaign-spend.jsonl) counts against the budget.  The runs go to
    this flow's task runner (threads; ``campaign.with_options(task_runner=…)`` for Dask).
    -> {'campaign': id, 'runs': k, 'spent_us': µs, 'stopped': why, 'table': path}."""
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
    ledger = SpendLedger(spend_ledger(layout))
    campaign_id = resume or f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{flow_run.get_name()}"
    keys = list(type(p.sweep).model_fields)
    done, attempts = done_settings(layout.campaign, campaign_id, keys)
    if resume and not attempts and not ledger.entries(resume):
        raise RbmdiffError(f"no campaign {resume!r} in {layout.campaign} or its ledger; "
                           "pass an id from the table's 'campaign' column")
    run_plan(Ledger(root).plan(targets=UPSTREAM), params, root, progress=progress)
    ensure_qpu_limit()
    solver = solver_facts(p, layout)
    queue = [(i, s) for i, s in enumerate(p.sweep.settings()) if setting_key(s) not in done]
    rows, pending, skipped = 0, {}, 0
    bar = tqdm(total=len(queue), desc="QPU campaign", disable=not progress)

    def committed() -> float:
        """Spent, plus what the runs in flight may still spend."""
        return ledger.spent(campaign_id) + sum(
            max(b.left(), 0.0) for _, _, b, _ in pending.values())

    def log_row(row: dict) -> None:
        nonlocal rows
        append_row(layout.campaign, row)
        rows += 1
        bar.update(1)
        bar.set_postfix_str(f"{row['spent_us']:.0f}/{budget:.0f} µs")
        logger.info("campaign %s setting %d %s: %s; %.0f of %.0f µs spent; appended to %s",
                    campaign_id, row["index"], {k: row[k] for k in keys}, row["status"],
                    row["spent_us"], budget, layout.campaign)

    def collect(future: Any) -> None:
        index, setting, b, estimate = pending.pop(future)
        result = future.result(raise_on_failure=False)
        failed = isinstance(result, BaseException)
        record = {"status": "failed", "error": repr(result)} if failed else result
        log_row({**row_of(campaign_id, index, setting, estimate, b, ledger, budget),
                 **{k: v for k, v in record.items()
                    if k not in ("campaign", "index", *setting)}})  # the setting's own values

    for index, setting in queue:
        factor = ledger.factor(solver.name)
        estimate = run_estimate_us(setting, p, solver, factor)
        if estimate > budget - committed() and pending:  # runs in flight may leave more
            for future in as_completed(list(pending)):
                collect(future)
        left = budget - committed()
        if estimate > left:
            skipped += 1
            log_row({**row_of(campaign_id, index, setting, estimate, None, ledger, budget),
                     "status": "skipped",
                     "error": f"estimated {estimate:.0f} µs > {max(left, 0):.0f} µs left"})
            continue
        run = f"{index}.{attempts + rows + len(pending)}"  # unique within the campaign
        b = RunBudget(ledger, campaign_id, run, estimate if p.parallel > 1 else left,
                      solver.timing, solver.name, factor)
        future = campaign_run.with_options(task_run_name=f"campaign-run-{index}").submit(
            setting, p, root, b)
        pending[future] = (index, setting, b, estimate)
        if len(pending) >= p.parallel:  # wait for the first to finish, then decide again
            collect(next(as_completed(list(pending))))
    for future in as_completed(list(pending)):
        collect(future)
    bar.close()
    spent = ledger.spent(campaign_id)
    stopped = (f"{skipped} of {len(queue)} settings skipped: their estimate exceeded what was "
               "left" if skipped else "all settings run")
    logger.info("campaign %s: %d rows, %.0f µs of QPU access time (budget %.0f; estimates: "
                "%s): %s", campaign_id, rows, spent, budget, solver.timing_source, stopped)
    return {"campaign": campaign_id, "runs": rows - skipped, "spent_us": spent,
            "budget_us": budget, "stopped": stopped, "table": str(layout.campaign),
            "ledger": str(ledger.path)}


def row_of(campaign_id: str, index: int, setting: dict, estimate: float, b: RunBudget | None,
           ledger: SpendLedger, budget: float) -> dict:
    """The campaign table's bookkeeping columns for one setting (b: its run's budget; None
    when it was skipped).  qpu_access_us: what the run was charged (ledger)."""
    return {"campaign": campaign_id, "index": index, **setting, "error": None,
            "estimate_us": estimate, "allowance_us": b.allowance_us if b else math.nan,
            "qpu_access_us": ledger.spent(campaign_id, b.run) if b else 0.0,
            "spent_us": ledger.spent(campaign_id), "budget_us": budget,
            "finished": pd.Timestamp.now(tz="UTC")}
