"""Scheduled pipeline runs: the pipeline flow as a Prefect deployment with a cron schedule.

``register`` writes the deployment (and its schedule) to the Prefect API; ``serve`` also runs
a runner in this process that executes the scheduled runs.  Schedules outlive the process
only on a persistent API: start ``prefect server start`` and set ``PREFECT_API_URL`` first
(the ephemeral API lives and dies with the process that started it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rbmdiff.errors import RbmdiffError


def build(cron: str, *, name: str = "scheduled", root: str = ".", dask: str | None = None,
          timezone: str | None = None) -> Any:
    """The pipeline flow as a RunnerDeployment on ``cron`` (e.g. '0 3 * * *': 03:00 daily)."""
    from prefect.schedules import Cron

    from flows.pipeline import pipeline

    try:
        schedule = Cron(cron, timezone=timezone)
    except ValueError as exc:
        raise RbmdiffError(f"--cron {cron!r}: {str(exc).splitlines()[0]}") from None
    return pipeline.to_deployment(
        name=name,
        schedule=schedule,
        parameters={"root": str(Path(root).resolve()), "dask": dask, "progress": False},
        description="rbmdiff pipeline: DVC-stale stages as Prefect tasks, then dvc commit",
        tags=["rbmdiff"],
    )


def register(cron: str, **kw: Any) -> str:
    """Create or update the deployment on the Prefect API; -> its id.  Refused on a temporary
    (ephemeral) API, which would forget the schedule when this command exits."""
    from prefect.settings import get_current_settings

    if not get_current_settings().api.url:
        raise RbmdiffError(
            "no Prefect server is configured (PREFECT_API_URL), and a temporary one forgets "
            "the schedule when this command exits: start `prefect server start` and set "
            "PREFECT_API_URL, or add --serve to run the schedule in this process")
    return str(build(cron, **kw).apply())


def serve(cron: str, **kw: Any) -> None:
    """Register the deployment and execute its scheduled runs here until interrupted."""
    from prefect import serve as prefect_serve

    prefect_serve(build(cron, **kw))
