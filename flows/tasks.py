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

from flows.config import Params
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


def _stage(name: str, params: Params, root: str, route: str | None = None,
           progress: bool = True) -> dict:
    """Run a stage of :mod:`flows.stages` -> its summary; a sample stage's record also says
    where it ran (``ran_on``, :func:`where`)."""
    from flows import stages

    label = name + (f"@{route}" if route else "")
    out = timed(label, stages.run, name, params, Layout(Path(root)), route=route,
                progress=progress)
    return {**out, "ran_on": where()} if route else out


def where() -> str:
    """The Dask worker running this task (its address), else this process ('pid N')."""
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):  # ValueError: not inside a Dask worker
        return f"pid {os.getpid()}"


stage_task = task(_stage, name="stage", cache_policy=NO_CACHE)
# the QPU route's: tagged (the QPU is one shared resource); the embed stage fetches the
# solver's graph but uses no QPU time, so it is not
stage_qpu_task = task(_stage, name="stage-qpu", **qpu_task_options)


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
