"""The pipeline as one Prefect flow run: ask DVC what is stale, run only that, record it.

    prepare → train → embed → sample@<route> (concurrent) → report

Each step is a subflow of :func:`pipeline` holding thin tasks over :mod:`flows.stages`, so a
whole run pays for one Prefect API start.  After each step its stages are recorded with
``dvc commit`` (from this flow's thread only), so dvc.lock always describes what is on disk and
a plain ``dvc repro`` afterwards finds nothing to do.  Sampling and its evaluation can scale
out to a Dask cluster (``dask="tcp://host:8786"``, or ``"local"`` for a local cluster).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.futures import as_completed

from flows.config import Params
from flows.layout import Layout
from flows.ledger import Ledger, Plan, Snapshot
from flows.lifeline import guard_temporary_server
from flows.preflight import preflight
from flows.scaleout import shared_api, task_runner
from flows.stages import STAGES
from flows.tasks import ensure_qpu_limit, stage_qpu_task, stage_task
from rbmdiff.errors import RbmdiffError


class PipelineError(RbmdiffError):
    """Some stages failed; the others were run and recorded."""


def step_of(stage: str) -> str:
    """'sample@sde' -> 'sample' (a plan holds only the DAG's stages: :meth:`Ledger.plan`)."""
    return stage.split("@")[0]


@flow
def step_flow(step: str, params: Params, root: str, progress: bool = True) -> dict:
    """One step of the pipeline other than sampling, as a subflow named after it."""
    return stage_task.with_options(task_run_name=step)(step, params, root, progress=progress)


@flow(name="sample")
def sample_flow(routes: list[str], params: Params, root: str,
                progress: bool = True) -> dict[str, Any]:
    """All routes at once, as concurrent tasks (the QPU route's tagged ``qpu``).
    -> route: its §7 record, or the exception it failed with."""
    from tqdm.auto import tqdm

    futures = {}
    for route in routes:
        task = stage_qpu_task if route == "qpu" else stage_task
        future = task.with_options(task_run_name=f"sample@{route}").submit(
            "sample", params, root, route=route)
        futures[future] = route
    out: dict[str, Any] = {}
    with tqdm(total=len(routes), desc="sampling routes",
              disable=None if progress else True) as bar:  # None: only on a terminal
        for future in as_completed(list(futures)):
            route = futures[future]
            out[route] = future.result(raise_on_failure=False)
            bar.set_postfix_str(f"{route} {'failed' if _failed(out[route]) else 'done'}")
            bar.update(1)
    return out


def _failed(result: Any) -> bool:
    return isinstance(result, BaseException)


def run_plan(plan: Plan, params: Params, root: str, *, dask: str | None = None,
             progress: bool = True, snapshot: Snapshot | None = None) -> dict:
    """Run the plan's stale stages step by step, committing each step's stages to DVC,
    unless params.yaml or the code changed since ``snapshot`` (then nothing more is recorded
    and the stages are reported failed: their outputs came from the files as they were).
    -> {'ran': [...], 'skipped': [...], 'failed': {stage: error}, 'results': {...}}."""
    logger = get_run_logger()
    ledger = Ledger(root)
    ran, failed, results = [], {}, {}
    for step in STAGES:
        stages = [s for s in plan.stale if step_of(s) == step]
        if not stages:
            continue
        if failed:  # an upstream step failed: its dependents cannot run
            failed.update({s: "upstream stage failed" for s in stages})
            continue
        if step == "sample":
            routes = [s.split("@", 1)[1] for s in stages]
            if "qpu" in routes:
                ensure_qpu_limit()
            with shared_api(dask):
                outcome = sample_flow.with_options(task_runner=task_runner(dask))(
                    routes, params, root, progress)
            done = [f"sample@{r}" for r, v in outcome.items() if not _failed(v)]
            failed.update({f"sample@{r}": repr(v) for r, v in outcome.items() if _failed(v)})
            results.update({f"sample@{r}": v for r, v in outcome.items() if not _failed(v)})
        else:
            flow_run = step_flow.with_options(name=step, flow_run_name=step)
            results[step], done = flow_run(step, params, root, progress), stages
        changed = snapshot.changed() if snapshot is not None else []
        if changed:
            why = (f"{', '.join(changed[:3])}{' …' if len(changed) > 3 else ''} changed during "
                   "the run: outputs not recorded in dvc.lock (rerun to record them)")
            logger.warning("%s", why)
            failed.update({s: why for s in done})
            continue
        ledger.commit(done)
        ran += done
    skipped = plan.fresh
    logger.info("ran %s; up to date %s%s", ran or "nothing", skipped or "nothing",
                f"; failed {sorted(failed)}" if failed else "")
    return {"ran": ran, "skipped": skipped, "failed": failed, "results": results}


@flow(name="rbmdiff-pipeline")
def pipeline(root: str = ".", dask: str | None = None, force: bool = False,
             progress: bool = True) -> dict:
    """Bring every artefact of dvc.yaml up to date with params.yaml and the code.

    root: the project folder (dvc.yaml, params.yaml); dask: None (threads), 'local', or a
    Dask scheduler address for the sampling step; force: rerun every stage.
    """
    logger = get_run_logger()
    guard_temporary_server()  # a killed run does not leave Prefect's temporary server behind
    root = str(Path(root).resolve())
    layout = Layout(Path(root))
    snapshot = Snapshot.take(root)  # before params are read: what the run's outputs come from
    params = preflight(root)
    plan = Ledger(root).plan(force=force)
    logger.info("stale (to run): %s; up to date: %s", plan.stale or "nothing",
                plan.fresh or "nothing")
    logger.debug("why: %s", plan.reasons)
    summary = run_plan(plan, params, root, dask=dask, progress=progress, snapshot=snapshot)
    if summary["failed"]:
        raise PipelineError("stages failed: " + "; ".join(
            f"{s}: {e}" for s, e in summary["failed"].items()))
    logger.info("outputs: %s, %s, %s, %s", layout.samples_table, layout.training,
                layout.metrics, layout.figures)
    return summary
