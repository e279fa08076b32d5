"""Runs that survive a kill: a run SIGKILLed while its QPU task holds the ``qpu`` tag's one
concurrency slot leaves neither the slot taken (the next run frees it and completes) nor
Prefect's temporary server running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# A flow whose one task is tagged like the pipeline's QPU task (flows.tasks.qpu_task_options)
# and runs after flows.tasks.ensure_qpu_limit, as flows.pipeline does; it writes a flag file
# when it holds the slot, then sleeps.
CHILD = """
import sys, time
from pathlib import Path
import flows
from prefect import flow, task
from flows.tasks import ensure_qpu_limit, qpu_task_options

@task(name="hold", **qpu_task_options)
def hold(flag, sleep):
    Path(flag).write_text("holding")
    time.sleep(sleep)
    return "completed"

@flow(name="qpu-holder")
def holder(flag, sleep):
    return hold(flag, sleep)

ensure_qpu_limit()
print(holder(sys.argv[1], float(sys.argv[2])), flush=True)
"""


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PYTHONPATH=str(ROOT), DVC_NO_ANALYTICS="1",
               PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120")
    return env


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")  # a zombie is dead
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


@pytest.mark.slow
def test_sigkill_during_the_qpu_task_frees_the_slot_and_the_server(tmp_path) -> None:
    env = _env(tmp_path / "prefect-home")
    flag = tmp_path / "holding"
    run = subprocess.Popen([sys.executable, "-c", CHILD, str(flag), "600"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while not flag.exists():
            assert run.poll() is None, run.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the QPU task never started"
            time.sleep(0.5)
        servers = [p for p in _children(run.pid)
                   if "uvicorn" in Path(f"/proc/{p}/cmdline").read_text()]
        assert len(servers) == 1  # Prefect's temporary server
        run.send_signal(signal.SIGKILL)  # the task holds the slot: it is never released
        run.wait()
    finally:
        if run.poll() is None:
            run.kill()
    deadline = time.monotonic() + 15
    while _alive(servers[0]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(servers[0]), "the temporary server outlived the killed run"

    # A new run takes the slot (it would wait forever for a slot the killed run holds).
    done = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "again"), "0"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("completed")
    assert "freed 1 qpu concurrency slot(s)" in done.stderr


PIPELINE_CHILD = """
import sys, time
from pathlib import Path
import flows
import flows.stages.sample as stage

root, flag, hold = sys.argv[1], sys.argv[2], sys.argv[3] == "hold"
original = stage.sample

def sample(route, p, layout):
    if route == "qpu" and hold:  # the qpu stage is running (its task holds the slot)
        Path(flag).write_text("qpu stage running")
        time.sleep(600)
    return original(route, p, layout)

stage.sample = sample
from flows.pipeline import pipeline
print("RAN", sorted(pipeline(root=root, progress=False)["ran"]), flush=True)
"""


@pytest.mark.slow
def test_sigkill_of_the_pipeline_during_the_qpu_stage_then_a_new_run_completes(tmp_path) -> None:
    """The real pipeline flow (flows.pipeline) on a tiny project, SIGKILLed while its
    sample@qpu task runs; the next run on the same Prefect home reruns the qpu route and the
    report instead of waiting forever for the slot."""
    from tests.project import make_project

    root = make_project(tmp_path / "p", routes=["gibbs", "qpu"])
    env = _env(tmp_path / "prefect-home")
    flag = tmp_path / "qpu-running"
    run = subprocess.Popen([sys.executable, "-c", PIPELINE_CHILD, str(root), str(flag), "hold"],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 400
        while not flag.exists():
            assert run.poll() is None, run.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the qpu stage never started"
            time.sleep(0.5)
        run.send_signal(signal.SIGKILL)
        run.wait()
    finally:
        if run.poll() is None:
            run.kill()
    done = subprocess.run([sys.executable, "-c", PIPELINE_CHILD, str(root), str(flag), "go"],
                          env=env, capture_output=True, text=True, timeout=500)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "freed 1 qpu concurrency slot(s)" in done.stderr
    ran = done.stdout.strip().splitlines()[-1]
    assert "'sample@qpu'" in ran and "'report'" in ran
