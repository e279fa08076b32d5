"""The warm stage server (flows.stages.warm): same results as a stage process, same exit
status and message, keyed by the code it runs, and no stage outlives its killed command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from flows.stages import warm
from flows.testing import make_project

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Unix sockets, fork, /proc")


def stage(root: Path, *args: str, server: bool = True, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "RBMDIFF_STAGE_SERVER": "1" if server else "0",
           "RBMDIFF_STAGE_SERVER_IDLE": "30", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "flows.stages", *args, "--quiet"], cwd=root,
                          env=env, capture_output=True, text=True, timeout=300, **kw)


def wait_for_server(root: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done = subprocess.run(
            [sys.executable, "-c", "from flows.stages.warm import socket_path, _connect; "
             "p = socket_path(); print(int(p is not None and _connect(p) is not None))"],
            cwd=root, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
            text=True, check=True)
        if done.stdout.strip() == "1":
            return
        time.sleep(0.5)
    raise AssertionError("no warm stage server came up within 120 s")


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(entry.name))
    return out


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Two identical tiny projects: one runs its stages in the warm server, one in-process."""
    base = tmp_path_factory.mktemp("warm")
    warm = make_project(base / "warm")
    cold = make_project(base / "cold")
    for root, server in ((warm, True), (cold, False)):
        assert stage(root, "prepare", server=server).returncode == 0
    wait_for_server(warm)  # the first stage ran in-process and started it
    for root, server in ((warm, True), (cold, False)):
        for args in (("train",), ("sample", "gibbs"), ("sample", "sde")):
            done = stage(root, *args, server=server)
            assert done.returncode == 0, done.stderr
            where = "in a warm server's child" if server else "in this process"
            assert where in done.stderr, done.stderr
    return warm, cold


def test_stages_in_the_server_give_the_same_outputs_as_stage_processes(pair):
    warm, cold = pair
    from rbmdiff.rbm import RBM

    ra, rb = RBM.load(warm / "models" / "rbm.pt"), RBM.load(cold / "models" / "rbm.pt")
    for name in ("W", "b", "c"):
        assert torch.equal(getattr(ra, name), getattr(rb, name)), name
    for route in ("gibbs", "sde"):
        sa = pd.read_parquet(warm / "reports" / "runs" / route / "samples.parquet")
        sb = pd.read_parquet(cold / "reports" / "runs" / route / "samples.parquet")
        assert len(sa) == 300
        np.testing.assert_array_equal(sa.to_numpy(), sb.to_numpy())


def test_errors_come_back_with_the_status_and_one_line(pair):
    warm, _ = pair
    done = stage(warm, "sample", "nosuch")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "sample.nosuch: no such route" in lines[0], done.stderr
    usage = stage(warm, "nosuchstage")  # argparse's usage error, from the child
    assert usage.returncode == 2 and "invalid choice" in usage.stderr


def test_the_server_is_keyed_by_the_code_and_environment(pair, tmp_path):
    warm, _ = pair

    def key(root: Path, **env: str) -> str:
        return subprocess.run(
            [sys.executable, "-c", "from flows.stages.warm import server_key; print(server_key())"],
            cwd=root, env={**os.environ, "OMP_NUM_THREADS": "1", **env}, capture_output=True,
            text=True, check=True).stdout.strip()

    before = key(warm)
    assert key(warm) == before
    assert key(warm, OMP_NUM_THREADS="2") != before  # read by torch at import
    source = warm / "flows" / "stages" / "report.py"
    text = source.read_text()
    try:
        source.write_text(text + "\n# edited\n")
        assert key(warm) != before  # edited code never runs in a server with the old code
    finally:
        source.write_text(text)
    assert key(warm) == before


def test_a_killed_command_takes_its_stage_down_and_keeps_the_outputs(pair):
    warm, _ = pair
    model = warm / "models" / "rbm.pt"
    kept = model.read_bytes()
    env = {**os.environ, "RBMDIFF_STAGE_SERVER": "1", "OMP_NUM_THREADS": "1",
           "RBMDIFF_STAGE_SERVER_IDLE": "30"}
    params = (warm / "params.yaml").read_text()
    (warm / "params.yaml").write_text(params.replace("steps: 60", "steps: 200000", 1))
    try:
        proc = subprocess.Popen([sys.executable, "-m", "flows.stages", "train"], cwd=warm,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        # the stage runs in a child of the server: find it, then kill the command
        server = int(subprocess.run(
            [sys.executable, "-c", "from flows.stages.warm import socket_path; "
             "print(socket_path().with_suffix('.pid').read_text())"], cwd=warm, env=env,
            capture_output=True, text=True, check=True).stdout)
        deadline = time.monotonic() + 60
        while not children(server) and time.monotonic() < deadline:
            time.sleep(0.1)
        running = children(server)
        assert running, "the train stage did not start in the server"
        time.sleep(1.0)  # into the training loop
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 20
        while any(Path(f"/proc/{pid}").exists() and pid in children(server) for pid in running) \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in running if pid in children(server)], \
            "the stage kept running after its command was killed"
    finally:
        (warm / "params.yaml").write_text(params)
    assert model.read_bytes() == kept
    assert not list((warm / "models").glob(".rbm.pt.*.tmp")), list((warm / "models").iterdir())
    done = stage(warm, "train")  # and the next run succeeds
    assert done.returncode == 0, done.stderr


def test_commands_started_at_once_share_one_server(tmp_path):
    root = make_project(tmp_path / "p")
    assert stage(root, "prepare", server=False).returncode == 0
    env = {**os.environ, "RBMDIFF_STAGE_SERVER": "1", "RBMDIFF_STAGE_SERVER_IDLE": "10",
           "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "flows.stages", "embed", "--quiet"],
                              cwd=root, env=env, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errs
    # exactly one ran in-process (and started the server); the others waited for it
    assert sum("(in this process)" in e for e in errs) == 1, errs
    assert sum("(in a warm server's child)" in e for e in errs) == 2, errs


def test_files_of_long_gone_servers_are_swept(tmp_path):
    """Socket, log and failure marker of a server killed outright a day ago go when a new
    server starts; a live server's files and recent ones stay."""
    old = time.time() - 2 * warm.STALE_S
    gone = [tmp_path / f"a.{s}" for s in ("sock", "log", "failed")]
    live = [tmp_path / f"b.{s}" for s in ("sock", "log")]
    recent = [tmp_path / "c.log"]
    for path in gone + live + recent:
        path.write_text("")
    for path in gone + live:
        os.utime(path, (old, old))
    (tmp_path / "b.pid").write_text(str(os.getpid()))
    warm._sweep(tmp_path)
    assert not any(p.exists() for p in gone) and all(p.exists() for p in live + recent)


def test_a_server_that_drops_the_request_leaves_the_stage_to_the_command(tmp_path, monkeypatch):
    """A server that stops before a child has taken the request (no acknowledgement): the
    command gets None, runs the stage itself, and has its signal handlers back."""
    import socket
    import threading

    path = tmp_path / "s.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)

    def drop() -> None:
        conn, _ = listener.accept()
        conn.recv(1 << 16)
        conn.close()

    thread = threading.Thread(target=drop)
    thread.start()
    monkeypatch.setattr(warm, "socket_path", lambda: path)
    handler = signal.getsignal(signal.SIGINT)
    try:
        assert warm.run_in_server(["prepare"], time.time()) is None
    finally:
        thread.join(10)
        listener.close()
    assert signal.getsignal(signal.SIGINT) is handler
