"""A QPU campaign: sweep QPU settings under a hard budget of QPU access time.

The settings are the Cartesian product of params.yaml's ``campaign.sweep`` (num_reads,
annealing_time, chain_strength, calibration_rounds, mock), run in order as ``qpu``-tagged tasks
(``campaign.parallel`` at once) on the model and embedding the pipeline produced, which this
flow brings up to date first.

- **Budget** (flows.budget): each call is sized so its model estimate is at most
  ``max_call_fraction`` of the budget, reserved in the ledger under a lock, and charged what the
  solver reports; spent ≤ budget + parallel · (ρ − 1) · max_call_fraction · budget.
- **Planning**: a setting starts only when its estimate (calibration counted once per
  calibration key, none when the key is already calibrated for this model and embedding;
  its rounds scaled by the largest ratio of calibration reads drawn to planned so far, which
  covers the chain-strength probes and re-checks the plan cannot foresee) fits in what is
  left; otherwise it is skipped, and its row says by how much it is short.
- **Paid reads kept**: every run passes the read store (reports/qpu-reads/<device>), so a
  resumed campaign reuses every call that returned; rows say how many calls were reused.
- **Rows**: one per setting attempt in reports/campaign.parquet (appended under a lock), with
  the quality of its reads (fidelity verdict, MMD² and correlation error to held-out data,
  β_model, broken chains) beside its access time; reports/figures/campaign.png plots them.
- **One process per campaign**: a second run of the same campaign id is refused.
"""

from __future__ import annotations

import hashlib
import inspect
import json
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
from flows.budget import (
    RunBudget,
    SpendLedger,
    call_estimate_us,
    max_reads_within,
    run_reads,
    timing_data,
)
from flows.campaign_table import (
    append_row,
    campaign_lock,
    check_request,
    done_settings,
    plot,
    read_rows,
    setting_key,
)
from flows.config import CampaignParams, RouteParams
from flows.layout import Layout
from flows.ledger import Ledger
from flows.pipeline import run_plan
from flows.tasks import ensure_qpu_limit, qpu_task_options
from rbmdiff.errors import RbmdiffError

CAMPAIGN_UPSTREAM = ("train", "embed")  # what a campaign samples from
NOT_IN_KEY = ("calibration_rounds", "calibration_reads", "num_bootstrap", "retries",
              "retry_backoff", "alpha", "postprocess_sweeps")
INFO_COLUMNS = ("target_reached", "num_qubits", "beta_model", "chain_break_fraction",
                "reused_calls", "qpu_calls", "calibration_reused", "calibration_reads",
                "fidelity_ok", "fidelity_worst")


def spend_ledger(layout: Layout) -> Path:
    """The QPU-time ledger beside the campaign table (JSON lines, one per call event)."""
    return layout.campaign.with_name("campaign-spend.jsonl")


def figure_path(layout: Layout) -> Path:
    return layout.figures / "campaign.png"


@task(name="campaign-run", **qpu_task_options)
def campaign_run(setting: dict, p: CampaignParams, root: str, budget: RunBudget,
                 reads_per_call: int) -> dict:
    """One setting's QPU run under the campaign's budget: its §7 record and the sampler's
    facts with status 'done', or {'status': 'stopped', 'error': why} when a call was refused
    mid-run."""
    from flows.stages.sample import draw

    kw = {**run_kwargs(setting, p), "num_reads": reads_per_call}
    route = RouteParams(seed=p.seed, num_samples=p.num_samples, **kw, budget=budget)
    try:
        samples, record = draw("qpu", route, Layout(Path(root)))
    except RbmdiffError as exc:
        if budget.stopped is None:
            raise
        return {"status": "stopped", "error": f"{budget.stopped} ({exc})"}
    info = samples.info
    facts = {k: info.get(k) for k in INFO_COLUMNS}
    if facts["fidelity_worst"] is not None:
        facts["fidelity_worst"] = str(facts["fidelity_worst"])
    return {"status": "done", **record, **facts}


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


def calibration_key(setting: dict, p: CampaignParams, upstream_sha: str, per_call: int
                    ) -> str:
    """What determines a setting's calibration, as the campaign plans it: the model and
    embedding (``upstream_sha``) and every sampler parameter of the run but the calibration
    effort (``NOT_IN_KEY``; reads per call included), the sampler's own key
    (``rbmdiff.samplers.qpu.prefactor.cache_key``) or finer."""
    kw = {k: v for k, v in run_kwargs(setting, p).items() if k not in NOT_IN_KEY}
    kw["num_reads"] = per_call
    return hashlib.sha256(json.dumps([upstream_sha, sorted(kw.items())], default=str)
                          .encode()).hexdigest()[:16]


def calibration_cached() -> bool:
    """True when the QPU sampler keeps calibrations (a ``calibration_dir``), so that settings
    sharing a calibration key pay for it once."""
    from rbmdiff.samplers.qpu import QPUSampler

    return "calibration_dir" in inspect.signature(QPUSampler).parameters


def reads_per_call(setting: dict, p: CampaignParams, solver: SolverFacts,
                   cap_us: float) -> int:
    """Reads per solver call: the setting's num_reads (None: all), at most what keeps one
    call's model estimate within ``cap_us`` and the solver's limit; 0 when one read is over."""
    kw = run_kwargs(setting, p)
    fit = max_reads_within(solver.timing, cap_us, num_qubits=solver.num_qubits,
                           annealing_time=kw.get("annealing_time"))
    return min(kw.get("num_reads") or solver.max_reads, fit, solver.max_reads)


def calibration_plan(setting: dict, p: CampaignParams) -> tuple[int, int]:
    """(calibration rounds, reads per round) of a setting, the sampler's defaults filled in."""
    from rbmdiff.samplers.qpu import QPUSampler
    from rbmdiff.samplers.qpu.sampler import CALIBRATION_READS

    kw = QPUSampler(**run_kwargs(setting, p)).params()
    return kw["calibration_rounds"], kw["calibration_reads"] or max(CALIBRATION_READS,
                                                                    p.num_samples)


def run_estimate_us(setting: dict, p: CampaignParams, solver: SolverFacts, factor: float,
                    *, per_call: int, calibrate: bool = True, scale: float = 1.0) -> float:
    """Σ over the run's solver calls of the timing model's estimate, times ``factor``; the
    calibration calls only when ``calibrate``, their rounds times ``scale`` (the ratio of
    calibration reads drawn to planned, learnt from earlier runs: chain-strength probes and
    re-checks that the plan cannot foresee)."""
    rounds, per_round = calibration_plan(setting, p)
    at = run_kwargs(setting, p).get("annealing_time")
    reads = run_reads(num_samples=p.num_samples, num_reads=per_call,
                      calibration_rounds=math.ceil(rounds * scale) if calibrate else 0,
                      calibration_reads=per_round, max_reads=solver.max_reads)
    return factor * sum(call_estimate_us(solver.timing, num_qubits=solver.num_qubits,
                                         num_reads=k, annealing_time=at) for k in reads)


def upstream_sha(layout: Layout) -> str:
    """SHA-256 of what a calibration depends on upstream: the model and the embedding files."""
    h = hashlib.sha256(layout.model.read_bytes())
    for path in sorted(layout.embedding.glob("*.json")):
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()[:16]


@flow(name="rbmdiff-qpu-campaign")
def campaign(root: str = ".", budget_us: float | None = None, progress: bool = True,
             resume: str | None = None) -> dict:
    """Run the QPU sweep of params.yaml's ``campaign`` section; budget_us overrides its budget
    (module docstring).  ``resume``: a campaign id: its done settings are not run again, what it
    spent (the ledger reports/campaign-spend.jsonl) counts against the budget, and the calls it
    already paid for are read back from the read store.  The runs go to this flow's task runner
    (threads; ``campaign.with_options(task_runner=…)`` for Dask).
    -> {'campaign': id, 'settings': k, 'done', 'skipped', 'stopped_runs', 'failed': the
    settings' indices, 'stopped': the one-line summary, 'spent_us': µs, 'reused_calls': k,
    'bound_us': the most the budget can be overrun by per unit of ρ − 1, ...}."""
    root = str(Path(root).resolve())
    layout = Layout(Path(root))
    params, budget = check_request(root, budget_us, resume)
    campaign_id = resume or f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{flow_run.get_name()}"
    with campaign_lock(layout.campaign, campaign_id):
        return _campaign(layout, params, budget, campaign_id, progress)


def _campaign(layout: Layout, params: Any, budget: float, campaign_id: str,
              progress: bool) -> dict:
    """Bring the model and embedding up to date, then offer each setting not yet done."""
    p = params.campaign
    earlier = read_rows(layout.campaign, campaign_id)
    done = done_settings(earlier, list(type(p.sweep).model_fields))
    run_plan(Ledger(str(layout.root)).plan(targets=CAMPAIGN_UPSTREAM), params, str(layout.root),
             progress=progress)
    ensure_qpu_limit()
    queue = [(i, s) for i, s in enumerate(p.sweep.settings()) if setting_key(s) not in done]
    sweep = Sweep(layout, p, budget, campaign_id, attempts=len(earlier), queued=len(queue),
                  progress=progress)
    for index, setting in queue:
        sweep.offer(index, setting)
    return sweep.finish()


class Sweep:
    """A campaign's pass through its queue: the runs in flight, the rows written, and what
    earlier runs taught (calibrations paid for, calibration reads drawn per read planned)."""

    def __init__(self, layout: Layout, p: CampaignParams, budget: float, campaign_id: str, *,
                 attempts: int, queued: int, progress: bool) -> None:
        from tqdm.auto import tqdm

        self.layout, self.p, self.budget, self.id = layout, p, budget, campaign_id
        self.attempts, self.queued = attempts, queued
        self.logger = get_run_logger()
        self.ledger = SpendLedger(spend_ledger(layout))
        self.keys = list(type(p.sweep).model_fields)
        self.solver = solver_facts(p, layout)
        self.cap_us = p.max_call_fraction * budget
        self.model_sha = upstream_sha(layout)
        self.cached = calibration_cached()
        self.scales, self.calibrated = learnt(read_rows(layout.campaign), layout, self.cached)
        self.outcome: dict[str, list[int]] = {"done": [], "skipped": [], "stopped_runs": [],
                                              "failed": []}
        self.rows, self.pending, self.reused = 0, {}, 0
        self.bar = tqdm(total=queued, desc="QPU campaign", disable=not progress)

    def log_row(self, row: dict) -> None:
        append_row(self.layout.campaign, row)
        self.rows += 1
        status = {"stopped": "stopped_runs"}.get(row["status"], row["status"])
        self.outcome[status].append(int(row["index"]))
        self.bar.update(1)
        self.bar.set_postfix_str(f"{row['spent_us']:.0f}/{self.budget:.0f} µs")
        self.logger.info(
            "campaign %s setting %d %s: %s%s; %.0f µs charged, %.0f of %.0f µs spent",
            self.id, row["index"], {k: row[k] for k in self.keys}, row["status"],
            f" ({row['error']})" if row.get("error") else "", row["qpu_access_us"],
            row["spent_us"], self.budget)

    def row(self, index: int, setting: dict, estimate: float, b: RunBudget | None) -> dict:
        return row_of(self.id, index, setting, estimate, b, self.ledger, self.budget)

    def collect(self, future: Any) -> None:
        """Write the row of a finished run and learn from it."""
        index, setting, b, estimate, extra = self.pending.pop(future)
        result = future.result(raise_on_failure=False)
        failed = isinstance(result, BaseException)
        record = {"status": "failed", "error": f"{type(result).__name__}: {result}"} \
            if failed else result
        self.reused += int(record.get("reused_calls") or 0)
        if record["status"] == "done" and self.cached and (
                record.get("target_reached") or record.get("calibration_reused")):
            self.calibrated.add(extra["calibration_key"])  # the sampler saves only a reached one
        planned = extra.get("calibration_planned_reads", 0)
        if record["status"] == "done" and planned and not record.get("calibration_reused"):
            self.scales.append(float(record.get("calibration_reads") or 0) / planned)
        self.log_row({**self.row(index, setting, estimate, b), **extra,
                      **{k: v for k, v in record.items()
                         if k not in ("campaign", "index", *setting)}})  # the setting's own

    def wait(self, futures: list) -> None:
        for future in as_completed(futures):
            self.collect(future)

    def left(self) -> float:
        """The budget less what was spent and what the runs in flight may still spend."""
        return self.budget - self.ledger.spent(self.id) - sum(
            max(v[3] - self.ledger.spent(self.id, v[2].run), 0) for v in self.pending.values())

    def offer(self, index: int, setting: dict) -> None:
        """Start the setting's run if its estimate fits what is left, else skip it (a row)."""
        p, solver = self.p, self.solver
        per_call = reads_per_call(setting, p, solver, self.cap_us)
        key = calibration_key(setting, p, self.model_sha, per_call)
        extra = {"reads_per_call": per_call, "calibration_key": key, "model_sha": self.model_sha}
        if per_call < 1:
            one = call_estimate_us(solver.timing, num_qubits=solver.num_qubits, num_reads=1,
                                   annealing_time=run_kwargs(setting, p).get("annealing_time"))
            self.log_row({**self.row(index, setting, math.nan, None), **extra,
                          "status": "skipped",
                          "error": f"one call of one read is estimated at {one:.0f} µs, more "
                          f"than max_call_fraction · budget = {self.cap_us:.0f} µs; raise the "
                          "budget or campaign.max_call_fraction"})
            return
        self.wait([f for f, v in self.pending.items()  # its calibration is being paid for:
                   if v[-1]["calibration_key"] == key])  # wait, then reuse it
        factor = extra["factor"] = self.ledger.factor(solver.name)
        rounds, per_round = calibration_plan(setting, p)
        calibrate = key not in self.calibrated
        extra["calibration_planned_reads"] = rounds * per_round if calibrate else 0
        estimate = run_estimate_us(setting, p, solver, factor, per_call=per_call,
                                   calibrate=calibrate, scale=max(self.scales))
        if estimate > self.left() and self.pending:  # runs in flight may leave more
            self.wait(list(self.pending))
        if estimate > self.left():
            left = max(self.left(), 0)
            self.log_row({**self.row(index, setting, estimate, None), **extra,
                          "status": "skipped", "error": f"estimated {estimate:.0f} µs > "
                          f"{left:.0f} µs left: short by {estimate - left:.0f} µs"})
            return
        run = f"{index}.{self.attempts + self.rows + len(self.pending)}"  # unique in the campaign
        b = RunBudget(self.ledger, self.id, run, self.budget, solver.timing, solver.name,
                      max_call_us=self.cap_us)
        future = campaign_run.with_options(task_run_name=f"campaign-run-{index}").submit(
            setting, p, str(self.layout.root), b, per_call)
        self.pending[future] = (index, setting, b, estimate, extra)
        if len(self.pending) >= p.parallel:  # wait for the first to finish, then decide again
            self.collect(next(as_completed(list(self.pending))))

    def finish(self) -> dict:
        """Wait for the runs in flight; plot, log and summarise the campaign."""
        self.wait(list(self.pending))
        self.bar.close()
        spent = self.ledger.spent(self.id)
        figure = plot(read_rows(self.layout.campaign, self.id), figure_path(self.layout),
                      self.keys)
        summary = summarise(self.outcome, self.queued, self.reused)
        self.logger.info("campaign %s: %.0f µs of QPU access time (budget %.0f; estimates: "
                         "%s): %s", self.id, spent, self.budget, self.solver.timing_source,
                         summary)
        return {"campaign": self.id, "settings": self.queued, **self.outcome,
                "stopped": summary, "runs": len(self.outcome["done"]),
                "reused_calls": self.reused, "spent_us": spent, "budget_us": self.budget,
                "bound_us": self.p.parallel * self.cap_us, "table": str(self.layout.campaign),
                "ledger": str(self.ledger.path), "figure": str(figure) if figure else None}


def learnt(every: pd.DataFrame, layout: Layout, cached: bool) -> tuple[list[float], set]:
    """From every campaign's rows: the ratios of calibration reads drawn to planned (later
    plans are scaled by the largest; 1.0 to start), and the calibration keys paid for whose
    calibration is kept (when calibrations are cached and the cache is not empty)."""
    scales, calibrated = [1.0], set()
    if "calibration_reads" in every and "calibration_planned_reads" in every:
        done_rows = every[every["status"] == "done"]
        planned = done_rows["calibration_planned_reads"].astype("Float64")
        drawn = done_rows["calibration_reads"].astype("Float64")
        scales += (drawn / planned)[planned > 0].dropna().tolist()
    if cached and any(layout.calibration.glob("*")) and "calibration_key" in every:
        def flag(column: str) -> pd.Series:
            return every.get(column, pd.Series(False, index=every.index)).fillna(
                False).astype(bool)

        kept = (every["status"] == "done") & (flag("target_reached")
                                              | flag("calibration_reused"))
        calibrated = set(every.loc[kept, "calibration_key"].dropna())
    return scales, calibrated


def summarise(outcome: dict[str, list[int]], queued: int, reused: int) -> str:
    """One line: how many settings were done, skipped, stopped or failed, and reused calls."""
    parts = [f"{len(outcome['done'])} of {queued} settings done"]
    for status, why in (("skipped", "their estimate exceeded what was left"),
                        ("stopped_runs", "a call was refused mid-run"),
                        ("failed", "an error; see the table's 'error' column")):
        if outcome[status]:
            parts.append(f"{len(outcome[status])} {status} ({why}): settings "
                         f"{outcome[status]}")
    parts.append(f"{reused} paid calls reused from the read store")
    return "; ".join(parts)


def row_of(campaign_id: str, index: int, setting: dict, estimate: float, b: RunBudget | None,
           ledger: SpendLedger, budget: float) -> dict:
    """The campaign table's bookkeeping columns for one setting (b: its run's budget; None
    when it was skipped).  qpu_access_us: what the run was charged (ledger)."""
    return {"campaign": campaign_id, "index": index, **setting, "error": None,
            "estimate_us": estimate, "qpu_access_us": ledger.spent(campaign_id, b.run) if b
            else 0.0, "spent_us": ledger.spent(campaign_id), "budget_us": budget,
            "finished": pd.Timestamp.now(tz="UTC")}
