"""Running tasks on a Dask cluster, with one Prefect API for the whole run.

Each task submitted to Dask carries the submitting process's Prefect settings to its worker.
Where the user configured an API (``PREFECT_API_URL`` in the environment or the active
profile), that is the API.  Otherwise this process serves an ephemeral API, whose address
the settings do not name, and each worker would start one of its own; :func:`shared_api`
names it in the settings for the duration, so every worker reports to this run's API.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

from rbmdiff.errors import RbmdiffError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def task_runner(dask: str | None) -> Any:
    """Threads by default; a Dask cluster for ``dask`` = 'local' (a local cluster, started
    and stopped with the flow run) or a scheduler address ('tcp://host:8786')."""
    from prefect.task_runners import ThreadPoolTaskRunner

    if not dask:
        return ThreadPoolTaskRunner()
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError:
        raise RbmdiffError(f"--dask {dask}: needs prefect-dask (pip install prefect-dask)") \
            from None

    if dask == "local":  # no dashboard is served, so none is linked (prefect-dask logs the
        # client's dashboard_link, which distributed builds from this template regardless)
        import dask as dask_config

        dask_config.config.set({"distributed.dashboard.link": ""})
        return DaskTaskRunner(cluster_kwargs={"dashboard_address": None})
    return DaskTaskRunner(address=dask)


def needs_shared_api(dask: str | None) -> bool:
    """Whether tasks sent to ``dask`` need this process's ephemeral API named for them (no
    API is configured).  A scheduler on another machine cannot reach an ephemeral API (it
    listens on this machine's loopback only): that is refused, naming the setting to fix."""
    from prefect.settings import get_current_settings

    if not dask or get_current_settings().api.url:
        return False
    host = urlparse(dask).hostname if dask != "local" else "localhost"
    if host not in LOOPBACK:
        raise RbmdiffError(f"--dask {dask}: workers on other machines need a Prefect API they "
                           "can reach; start one (prefect server start) and set "
                           "PREFECT_API_URL to it (or prefect cloud login)")
    return True


@contextlib.contextmanager
def shared_api(dask: str | None) -> Iterator[None]:
    """Within the block, tasks sent to ``dask`` use this process's Prefect API."""
    if not needs_shared_api(dask):
        yield
        return
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, temporary_settings

    server = SubprocessASGIServer()  # the ephemeral API this process's client uses
    server.start()
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        yield
