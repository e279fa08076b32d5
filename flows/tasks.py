"""Prefect tasks: thin wrappers over the stage functions of :mod:`flows.stages`.

Prefect caching and result persistence are off: DVC owns freshness and the artefacts.
QPU work carries the ``qpu`` tag (a concurrency limit: the QPU is one shared resource).
Tasks are not retried: the library retries a transient cloud fault at the call that failed
(``rbmdiff.samplers.qpu.store.with_retries``) and raises a TransientError once it outlasts
those retries, so a task's failure is final.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from flows.config import DataParams, EmbedParams, ReportParams, RouteParams, TrainParams
from flows.layout import Layout

QPU_TAG = "qpu"
QPU_CONCURRENCY = 1  # QPU tasks at once, unless the server already sets a limit on the tag


def timed(label: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a stage function, logging its own time as the stage CLI does."""
    began = time.perf_counter()
    out = fn(*args, **kwargs)
    logging.getLogger("flows").info("stage %s: %.2f s in the stage", label,
                                    time.perf_counter() - began)
    return out


qpu_task_options: dict[str, Any] = {"tags": [QPU_TAG], "cache_policy": NO_CACHE}


@task(name="prepare", cache_policy=NO_CACHE)
def prepare_task(p: DataParams, root: str) -> dict:
    from flows.stages.prepare import prepare

    return timed("prepare", prepare, p, Layout(Path(root)))


@task(name="train", cache_policy=NO_CACHE)
def train_task(p: TrainParams, root: str, progress: bool = True) -> dict:
    from flows.stages.train import train

    return timed("train", train, p, Layout(Path(root)), progress=progress)


@task(name="embed", cache_policy=NO_CACHE)
def embed_task(p: EmbedParams, n_hidden: int, root: str) -> dict:
    """Fetches the solver's graph (a QPU API call with a token): not tagged, since it uses no
    QPU time."""
    from flows.stages.embed import embed

    return timed("embed", embed, p, n_hidden, Layout(Path(root)))


def _sample(route: str, p: RouteParams, root: str) -> dict:
    """-> the route's §7 record, and ``ran_on``: where the task ran (:func:`where`)."""
    from flows.stages.sample import sample

    record = timed(f"sample@{route}", sample, route, p, Layout(Path(root)))
    return {**record, "ran_on": where()}


def where() -> str:
    """The Dask worker running this task (its address), else this process ('pid N')."""
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):  # ValueError: not inside a Dask worker
        return f"pid {os.getpid()}"


sample_task = task(_sample, name="sample", cache_policy=NO_CACHE)
sample_qpu_task = task(_sample, name="sample-qpu", **qpu_task_options)


@task(name="report", cache_policy=NO_CACHE)
def report_task(p: ReportParams, routes: list[str], root: str) -> dict:
    from flows.headline import write_headline
    from flows.stages.report import report

    layout = Layout(Path(root))
    out = timed("report", report, p, routes, layout)
    write_headline(layout)  # the report stage's metrics for `dvc exp show`
    return out


def ensure_qpu_limit(limit: int = QPU_CONCURRENCY) -> None:
    """Create the ``qpu`` tag's concurrency limit on the Prefect server, unless one exists
    (an operator's limit is left alone); on a temporary (ephemeral) API, first free the slots
    that no live run holds (:func:`free_orphaned_qpu_slots`)."""
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    from flows.lifeline import guard_temporary_server

    with get_client(sync_client=True) as client:
        try:
            client.read_concurrency_limit_by_tag(QPU_TAG)
        except ObjectNotFound:
            client.create_concurrency_limit(tag=QPU_TAG, concurrency_limit=limit)
        guard_temporary_server()  # the client has started the temporary server, if any
        free_orphaned_qpu_slots(client)


_LIVE_RUN: Any = None  # the open lock file that marks this process as a live run (shared)


def free_orphaned_qpu_slots(client: Any) -> int:
    """On a temporary API, set the ``qpu`` slots taken to 0 when no other live run on this
    Prefect home can hold one; -> the slots freed.

    A run killed outright (SIGKILL, power loss) never releases its slot, and a temporary
    server keeps leases in memory and does not run Prefect's lease repossessor, so the slot
    would stay taken forever.  Every run that may take a slot holds a shared lock on
    ``$PREFECT_HOME/rbmdiff-qpu.lock`` for its lifetime (the kernel drops it when the
    process dies); a run that gets the lock exclusively is the only live one, so every
    taken slot is an orphan.  A configured server (``PREFECT_API_URL``) is left to Prefect:
    its repossessor frees a dead holder's slot when the 60 s lease expires.  (Known gap: a
    slot orphaned while another run is live is freed by the next run that starts alone.)"""
    import fcntl

    from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate
    from prefect.settings import PREFECT_HOME, get_current_settings

    global _LIVE_RUN
    if get_current_settings().api.url or _LIVE_RUN is not None:
        return 0
    path = Path(PREFECT_HOME.value()).expanduser() / "rbmdiff-qpu.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a")
    freed = 0
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # another live run: its slots may be real
        pass
    else:
        name = f"tag:{QPU_TAG}"
        freed = client.read_global_concurrency_limit_by_name(name).active_slots
        if freed:
            client.update_global_concurrency_limit(
                name, GlobalConcurrencyLimitUpdate(active_slots=0))
            logging.getLogger("flows").warning(
                "freed %d qpu concurrency slot(s) left taken by a run that was killed", freed)
    fcntl.flock(handle, fcntl.LOCK_SH)
    _LIVE_RUN = handle
    return freed
