"""A temporary Prefect server does not outlive the run that started it.

Prefect's ephemeral API is a ``uvicorn`` subprocess that Prefect stops at exit (atexit).  A
run killed outright (SIGKILL, the OOM killer) never gets there, and the server would keep
running, holding its port and the database.  :func:`guard_temporary_server` starts a small
watchdog process per temporary server: it waits on the run and on the server (Linux pidfds:
no polling, no pid reuse) and, when the run is gone first, stops the server (SIGTERM, then
SIGKILL after 5 s).  Where pidfds are missing, nothing is started.
"""

from __future__ import annotations

import os
import subprocess
import sys

_GUARDED: set[int] = set()

WATCHDOG = """\
import os, select, signal, sys
run, server = int(sys.argv[1]), int(sys.argv[2])
try:
    run_fd, server_fd = os.pidfd_open(run), os.pidfd_open(server)
except ProcessLookupError:
    sys.exit()
poll = select.poll()
poll.register(run_fd, select.POLLIN)
poll.register(server_fd, select.POLLIN)
if server_fd in {fd for fd, _ in poll.poll()}:
    sys.exit()  # the server stopped first: the run stopped it
try:
    signal.pidfd_send_signal(server_fd, signal.SIGTERM)
    wait = select.poll()
    wait.register(server_fd, select.POLLIN)
    if not wait.poll(5000):
        signal.pidfd_send_signal(server_fd, signal.SIGKILL)
except ProcessLookupError:
    pass
"""


def guard_temporary_server() -> list[int]:
    """Start a watchdog for each temporary Prefect server this process runs that has none
    yet; -> the watchdogs' pids."""
    if not hasattr(os, "pidfd_open"):
        return []
    try:
        from prefect.server.api.server import SubprocessASGIServer
    except ImportError:
        return []
    started = []
    for server in list(SubprocessASGIServer._instances.values()):
        process = getattr(server, "server_process", None)
        if process is None or process.poll() is not None or process.pid in _GUARDED:
            continue
        watchdog = subprocess.Popen(
            [sys.executable, "-c", WATCHDOG, str(os.getpid()), str(process.pid)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)  # not in the run's process group: a group kill spares it
        _GUARDED.add(process.pid)
        started.append(watchdog.pid)
    return started
