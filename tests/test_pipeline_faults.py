"""Faults injected into the pipeline: bad params.yaml and data through both entry
points, concurrent sampling runs, and a SIGKILL of a whole ``dvc repro``.

One tiny project (bas-3x3, routes gibbs and anneal) is run once, in this process, and
recorded in dvc.lock; each test works on it (leaving its outputs as they were) or on a copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

pytest.importorskip("dvc")

from flows.artefacts import staged_dir
from flows.config import load_params
from flows.layout import Layout
from rbmdiff import RBM
from rbmdiff.io import read_info
from tests.project import TINY, dvc_env, make_project, merge, write_params

ROUTES = ["gibbs", "anneal"]
STAGES = ["prepare", "train", "embed", *(f"sample@{r}" for r in ROUTES), "report"]
OUTPUTS = ("data/prepared", "models", "reports", "dvc.lock")  # what a run writes
TIMING = {"wall_s", "samples_per_s", "timing"}  # the only keys two equal runs may differ in
ENV = {
    **dvc_env(),
    "OMP_NUM_THREADS": "1",  # one torch thread, as in this process: the same floating point
    "MKL_NUM_THREADS": "1",
}


def run_stages(root: Path, stages: list[str]) -> None:
    """Run stages in this process as dvc.yaml's commands do (``python -m flows.stages``)."""
    from flows.stages.__main__ import run_stage

    for stage in stages:
        name, _, route = stage.partition("@")
        run_stage(name, route or None, root / "params.yaml", progress=False)


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file a run writes (hidden files included), by path under root."""
    out = {}
    for name in OUTPUTS:
        top = root / name
        for path in [top] if top.is_file() else sorted(top.rglob("*")):
            if path.is_file():
                out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def untimed(obj):
    """``obj`` without its timing entries (at any depth)."""
    if isinstance(obj, dict):
        return {k: untimed(v) for k, v in obj.items() if k not in TIMING}
    return [untimed(v) for v in obj] if isinstance(obj, list) else obj


def assert_same_run(folder: Path, reference: Path) -> None:
    """A route's folder is whole and equal to the reference (timing aside).  The samples file
    is a function of the run's inputs (no wall time in its metadata), so two writers' files
    are equal and either may win."""
    assert sorted(os.listdir(folder)) == ["record.json", "samples.parquet"]
    record = json.loads((folder / "record.json").read_text())
    info = read_info(folder / "samples.parquet")
    assert not TIMING & set(info)
    pd.testing.assert_frame_equal(pd.read_parquet(folder / "samples.parquet"),
                                  pd.read_parquet(reference / "samples.parquet"))
    assert untimed(record) == untimed(json.loads((reference / "record.json").read_text()))
    assert untimed(info) == untimed(read_info(reference / "samples.parquet"))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A complete tiny run, recorded in dvc.lock; -> (root, snapshot of its outputs)."""
    from flows.ledger import Ledger

    root = make_project(tmp_path_factory.mktemp("faults") / "rbmdiff", routes=ROUTES)
    run_stages(root, STAGES)
    Ledger(root).commit(STAGES)
    return root, snapshot(root)


def copy_project(root: Path, dest: Path) -> Path:
    shutil.copytree(root, dest, symlinks=True)
    return dest


# -- 1. bad params.yaml and data: one line, exit status 2, outputs untouched ------------------
def edit(change: Callable[[dict], None]) -> Callable[[str, Path], str]:
    """A bad params.yaml: the good one with ``change`` applied to its mapping."""

    def make(good: str, _: Path) -> str:
        params = yaml.safe_load(good)
        change(params)
        return yaml.safe_dump(params, sort_keys=False)

    return make


def set_key(section: str, **values) -> Callable[[str, Path], str]:
    def change(params: dict) -> None:
        node = params
        for part in section.split("."):
            node = node[part]
        node.update(values)

    return edit(change)


def data_file(name: str, x: np.ndarray) -> Callable[[str, Path], str]:
    """params.yaml pointing data.name at a file holding ``x`` (written beside the project)."""

    def make(good: str, where: Path) -> str:
        path = where / name
        if name.endswith(".npy"):
            np.save(path, x)
        else:
            np.savetxt(path, x, delimiter=",")
        return set_key("data", name=str(path))(good, where)

    return make


def truncated_in_flow(good: str, _: Path) -> str:
    return good[: good.index("report:")] + "report: {grid_samples: 4, seed"


BAS = np.tile(np.eye(9)[:3], (5, 1))
NAN = BAS.copy()
NAN[0, 1] = np.nan
CASES = [  # id, bad params.yaml, the stage that reads it, what the one line must say
    ("unknown-section", edit(lambda p: p.update(extra={"a": 1})), ["prepare"],
     ["extra: unknown key; params takes data, train"]),
    ("unknown-key", set_key("train", stepz=10), ["train"],
     ["train.stepz: unknown key; train takes n_hidden"]),
    ("steps-not-a-number", set_key("train", steps="ten"), ["train"],
     ["train.steps: Input should be a valid integer", "'ten'"]),
    ("negative-steps", set_key("train", steps=-5), ["train"],
     ["train.steps: Input should be greater than 0 (got -5)"]),
    ("eps-outside-half", set_key("train", eps=0.7), ["train"],
     ["train.eps: Input should be less than 0.5 (got 0.7)"]),
    ("beta-min-above-max", set_key("train", beta_min=30.0, beta_max=20.0), ["train"],
     ["train.beta_max: must be at least beta_min (30.0) (got 20.0)"]),
    ("zero-samples", set_key("sample.gibbs", num_samples=0), ["sample", "gibbs"],
     ["sample.gibbs.num_samples: Input should be greater than 0 (got 0)"]),
    ("unknown-sampler-route", edit(lambda p: p["sample"].update(mcmc={"seed": 1,
                                                                      "num_samples": 2})),
     ["sample", "mcmc"], ["sample.mcmc: unknown sampler; routes are named after samplers"]),
    ("unknown-sampler-parameter", set_key("sample.gibbs", sweepz=3), ["sample", "gibbs"],
     ["sampler 'gibbs' has no parameter sweepz; it takes"]),
    ("empty", lambda good, _: "", ["prepare"], ["params.yaml: empty; it needs the sections"]),
    ("not-a-mapping", lambda good, _: "- data\n- train\n", ["prepare"],
     ["params.yaml: expected a mapping of sections, got list"]),
    ("truncated-at-a-line", lambda good, _: good[: good.index("report:")], ["report"],
     ["params.yaml: report: missing"]),
    ("truncated-in-a-mapping", truncated_in_flow, ["report"],
     ["params.yaml: not valid YAML (line"]),
    ("truncated-in-a-character", lambda good, _: good.encode() + "# β".encode()[:-1],
     ["prepare"], ["params.yaml: not UTF-8 text (byte"]),
    ("data-with-nan", data_file("nan.npy", NAN), ["prepare"],
     ["nan.npy: 1 NaN/inf values (first at row 0, col 1)"]),
    ("data-outside-0-1", data_file("two.csv", 2 * BAS), ["prepare"],
     ["two.csv: values must lie in [0, 1], found range [0, 2]"]),
    ("batch-larger-than-data", set_key("train", batch_size=100), ["train"],
     ["train.batch_size: 100 exceeds the 14"]),
    ("too-large-to-embed", edit(lambda p: (p["train"].update(n_hidden=200),  # on the
                                           p["embed"].update(mock_shape=[8]),  # default P8,
                                           p["sample"].update(qpu={"seed": 5,  # with a qpu
                                                                   "num_samples": 10}))),
     ["sample", "qpu"], ["9 visible × 200 hidden units", "beyond the biclique limit "
                         "K_{76,76} of pegasus P8", "drop the qpu route"]),
]


def write_bad(root: Path, make, where: Path) -> None:
    bad = make((root / "params.yaml").read_text(), where)
    (root / "params.yaml").write_bytes(bad if isinstance(bad, bytes) else bad.encode())


@pytest.fixture
def bad_params(project, tmp_path):
    """Write a bad params.yaml into the project for one test; put the good one back after."""
    root, _ = project
    good = (root / "params.yaml").read_bytes()
    yield lambda make: write_bad(root, make, tmp_path)
    (root / "params.yaml").write_bytes(good)


def one_line(err: str, prefix: str, expected: list[str]) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(prefix), lines[0]
    for text in expected:
        assert text in lines[0], lines[0]


@pytest.mark.slow  # a tiny pipeline run first (the module's fixture)
@pytest.mark.parametrize(("make", "stage", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_changes_nothing(project, bad_params, capfd, make, stage,
                                                   expected) -> None:
    """Both entry points (in this process: the subprocess test below runs the commands)."""
    from flows.cli import main as pipeline_main
    from flows.stages.__main__ import main as stage_main

    root, before = project
    bad_params(make)
    capfd.readouterr()
    assert pipeline_main(["--root", str(root), "run", "--quiet"]) == 2
    one_line(capfd.readouterr().err, "rbmdiff-pipeline run: error: ", expected)
    assert stage_main([*stage, "--params", str(root / "params.yaml"), "--quiet"]) == 2
    one_line(capfd.readouterr().err, f"stage {'@'.join(stage)}: error: ", expected)
    assert snapshot(root) == before


@pytest.mark.slow
def test_a_model_too_large_for_the_graph_leaves_the_other_routes_running(tmp_path) -> None:
    """A dense model beyond the mock graph's biclique limit (9 × 20 on pegasus P3, K_{16,16};
    MNIST's 784 visible units on any graph) without a qpu route: every stage runs, and
    solver.json records why a qpu route would refuse (with one, the run refuses in one line:
    the too-large-to-embed case above)."""
    from flows.cli import main as pipeline_main

    overrides = merge(TINY, {"train": {"n_hidden": 20}, "embed": {"mock_shape": [3]}})
    root = make_project(tmp_path / "p", overrides=overrides, routes=["gibbs", "anneal"])
    assert pipeline_main(["--root", str(root), "run", "--quiet"]) == 0
    layout = Layout(root)
    solver = json.loads(layout.solver_info.read_text())
    assert "9 visible × 20 hidden units" in solver["refused"]
    assert "beyond the biclique limit K_{16,16} of pegasus P3" in solver["refused"]
    assert sorted(p.name for p in layout.embedding.iterdir()) == ["solver.json"]
    assert set(json.loads(layout.headline.read_text())["mmd"]) == {"gibbs", "anneal"}


@pytest.mark.slow
@pytest.mark.parametrize(("case", "command"), [
    ("data-with-nan", "rbmdiff-pipeline run"),
    ("too-large-to-embed", "python -m flows.stages"),
])
def test_the_commands_exit_2_with_one_line(project, bad_params, case, command) -> None:
    """The real commands (what a user and dvc.yaml run): the status and all of stderr."""
    root, before = project
    _, make, stage, expected = next(c for c in CASES if c[0] == case)
    bad_params(make)
    if command == "python -m flows.stages":
        argv, prefix = [sys.executable, "-m", "flows.stages", *stage], f"stage {'@'.join(stage)}"
    else:  # the console script's module, from the project's own copy
        argv, prefix = [sys.executable, "-m", "flows", "run"], "rbmdiff-pipeline run"
    done = subprocess.run([*argv, "--quiet"], cwd=root, env=ENV, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2 and done.stdout == "", done.stdout + done.stderr
    one_line(done.stderr, f"{prefix}: error: ", expected)
    assert snapshot(root) == before


# -- 2. replacing an output folder, and concurrent sampling runs -------------------------------
def test_a_replaced_folder_is_never_a_mix_and_leaves_nothing_behind(tmp_path) -> None:
    """A writer replaces one folder 60 times while a reader watches: the reader sees the
    previous run or the new one, whole, never an older one after a newer (and, in the instant
    between two renames, no folder); no staging or previous folder is left."""
    out = tmp_path / "runs" / "gibbs"
    start, stop, problems = threading.Barrier(2), threading.Event(), []

    def write() -> None:
        start.wait()
        for i in range(60):
            with staged_dir(out) as folder:
                (folder / "samples").write_text(str(i))
                time.sleep(0.001)
                (folder / "record").write_text(str(i))

    def read() -> None:
        start.wait()
        while not stop.is_set():
            try:
                fd = os.open(out, os.O_RDONLY)
            except FileNotFoundError:
                continue  # not written yet, or between the two renames
            try:
                texts = []
                for name in ("samples", "record"):
                    f = os.open(name, os.O_RDONLY, dir_fd=fd)
                    texts.append(int(os.read(f, 100)))
                    os.close(f)
                if texts[0] != texts[1]:
                    problems.append(f"mixed {texts}")
                if seen and texts[0] < seen[-1]:
                    problems.append(f"{texts[0]} after {seen[-1]}")
                seen.append(texts[0])
            except FileNotFoundError:
                pass  # a previous folder, removed after the swap: a reader holding it sees it go
            finally:
                os.close(fd)

    seen: list[int] = []
    threads = [threading.Thread(target=write), threading.Thread(target=read)]
    for t in threads:
        t.start()
    threads[0].join()
    stop.set()
    threads[1].join()
    assert not problems, problems[:5]
    assert seen and os.listdir(out.parent) == ["gibbs"]
    assert (out / "samples").read_text() == (out / "record").read_text() == "59"


def test_concurrent_writers_of_one_folder_take_turns_and_the_last_wins_whole(tmp_path) -> None:
    """Four writers replace one folder 10 times each while a reader watches: the folder never
    holds files of two writes, the writers' blocks never overlap, and what is left is one
    writer's last write, whole, with no staging beside it."""
    out = tmp_path / "runs" / "gibbs"
    start, stop, problems, inside = threading.Barrier(5), threading.Event(), [], []

    def write(k: int) -> None:
        start.wait()
        for i in range(10):
            with staged_dir(out) as folder:
                inside.append(k)
                if len(inside) > 1:
                    problems.append(f"writers {inside} at once")
                (folder / "samples").write_text(f"{k}.{i}")
                time.sleep(0.001)
                (folder / "record").write_text(f"{k}.{i}")
                inside.remove(k)

    def read() -> None:
        start.wait()
        while not stop.is_set():
            try:  # both files of one folder: opened once, then read inside it
                fd = os.open(out, os.O_RDONLY)
            except FileNotFoundError:
                continue  # not written yet, or between two renames
            try:
                texts = []
                for name in ("samples", "record"):
                    f = os.open(name, os.O_RDONLY, dir_fd=fd)
                    texts.append(os.read(f, 100))
                    os.close(f)
                if texts[0] != texts[1]:
                    problems.append(f"mixed {texts}")
            except FileNotFoundError:
                pass  # a previous folder, removed after the swap while it was read
            finally:
                os.close(fd)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    threads.append(threading.Thread(target=read))
    for t in threads:
        t.start()
    for t in threads[:4]:
        t.join()
    stop.set()
    threads[4].join()
    assert not problems, problems[:5]
    assert os.listdir(out.parent) == ["gibbs"]
    last = (out / "samples").read_text()
    assert last.endswith(".9") and (out / "record").read_text() == last


def test_a_failed_write_keeps_the_folder_and_a_killed_ones_leftovers_go_next_time(
        tmp_path) -> None:
    """A block that raises leaves the previous folder as it was and no staging.  A writer
    killed while writing leaves its staging; one killed between its two renames leaves the
    previous folder aside and none in place (DVC then reruns the stage): the next write of
    the folder removes both, and nothing of another folder."""
    out = tmp_path / "gibbs"
    with staged_dir(out) as folder:
        (folder / "record").write_text("1")
    with pytest.raises(RuntimeError, match="sampler failed"), staged_dir(out) as folder:
        (folder / "record").write_text("2")
        raise RuntimeError("sampler failed")
    assert os.listdir(tmp_path) == ["gibbs"] and (out / "record").read_text() == "1"

    (tmp_path / ".gibbs.k1ll3d.tmp").mkdir()  # killed while writing
    (tmp_path / ".gibbs.k1ll3d.tmp" / "record").write_text("half")
    os.replace(out, tmp_path / ".gibbs.s4wpd.old.tmp")  # killed between the renames
    (tmp_path / ".gibbs-sde.x.tmp").mkdir()  # another folder's staging
    with staged_dir(out) as folder:
        assert sorted(os.listdir(tmp_path)) == [".gibbs-sde.x.tmp", folder.name]
        (folder / "record").write_text("3")
    assert sorted(os.listdir(tmp_path)) == [".gibbs-sde.x.tmp", "gibbs"]
    assert os.listdir(out) == ["record"] and (out / "record").read_text() == "3"


@pytest.mark.slow
def test_concurrent_sampling_in_threads_matches_the_serial_run(project, tmp_path) -> None:
    """The routes at once, each twice, in one process's threads (as the Prefect flow's
    ThreadPoolTaskRunner runs its sample tasks)."""
    from flows.stages.sample import sample

    root = copy_project(project[0], tmp_path / "threads")
    params, layout = load_params(root / "params.yaml"), Layout(root)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(sample, r, params.sample[r], layout) for r in ROUTES * 2]
        records = [f.result() for f in futures]
    assert [r["route"] for r in records] == ROUTES * 2
    assert sorted(set(os.listdir(layout.runs)) - {".gitignore"}) == sorted(ROUTES)  # DVC's
    for route in ROUTES:
        assert_same_run(layout.run(route), Layout(project[0]).run(route))


@pytest.mark.slow
def test_concurrent_sample_commands_match_the_serial_run(project, tmp_path) -> None:
    """`python -m flows.stages sample ROUTE`: two routes, one of them twice, all at once."""
    root = copy_project(project[0], tmp_path / "processes")
    procs = [subprocess.Popen([sys.executable, "-m", "flows.stages", "sample", r, "--quiet"],
                              cwd=root, env=ENV, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for r in [*ROUTES, ROUTES[0]]]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
    layout = Layout(root)
    assert sorted(set(os.listdir(layout.runs)) - {".gitignore"}) == sorted(ROUTES)
    for route in ROUTES:
        assert_same_run(layout.run(route), Layout(project[0]).run(route))


# -- 3. SIGKILL of a whole dvc repro ------------------------------------------------------------
def processes_of(root: Path) -> list[str]:
    """Processes working in ``root`` (by cwd or command line), other than this one."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue  # gone, a zombie, or not ours to read
        if not cmdline or not (cwd == str(root) or str(root) in cmdline):
            continue
        found.append(f"{entry.name}: {cmdline}")
    return found


# Another model, and more draws: each route samples long enough (≈ 1 s) to be caught at it.
CHANGE = {"train": {"seed": 1}, "sample": {r: {"num_samples": 1500} for r in ROUTES}}


def repro(root: Path) -> list[str]:
    """`dvc repro` to the end; -> the stages it ran."""
    done = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=root, env=ENV,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return re.findall(r"Running stage '([^']+)'", done.stdout)


@pytest.mark.slow
def test_sigkill_of_dvc_repro_leaves_whole_outputs_and_the_rerun_completes(project,
                                                                          tmp_path) -> None:
    """A run with new training params is SIGKILLed (its whole process group) once one
    sample route has finished and the other is sampling.  Then: finished stages' outputs are
    whole and new, the rest byte-identical (or, for the running stage, removed by DVC before
    it ran), nothing half-written is inside an output, no process of the run survives, and
    the next `dvc repro` runs only what is left and ends as an uninterrupted run does."""
    root = copy_project(project[0], tmp_path / "killed")
    layout, before = Layout(root), project[1]
    write_params(root, CHANGE)  # stale: train, both routes, report
    log = (tmp_path / "repro.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "dvc", "repro"], cwd=root, env=ENV,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def progress() -> tuple[list[str], list[str]]:
        """(routes rewritten with the new model, routes being sampled now)."""
        done = [r for r in ROUTES if (f"reports/runs/{r}/record.json" in before
                                      and snapshot_file(root, f"reports/runs/{r}/record.json")
                                      not in (None, before[f"reports/runs/{r}/record.json"]))]
        running = [r for r in ROUTES if list(layout.runs.glob(f".{r}.*.tmp"))]
        return done, running

    deadline = time.monotonic() + 300
    done, running = [], []
    while proc.poll() is None and time.monotonic() < deadline and not (done and running):
        time.sleep(0.02)
        done, running = progress()
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "dvc repro ended before it could be killed"
    log.close()
    assert done and running, (tmp_path / "repro.log").read_text()[-3000:]
    (finished,), (killed,) = done, running

    # no process of the run is left
    deadline = time.monotonic() + 20
    while processes_of(root) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_of(root) == []

    after = snapshot(root)
    changed = {p for p in before if after.get(p) != before[p]}
    assert changed <= {"dvc.lock", "models/rbm.pt", "reports/training.parquet",
                       *(f"reports/runs/{r}/{f}" for r in (finished, killed)
                         for f in ("record.json", "samples.parquet")),
                       *(f"reports/timings/{r}.json" for r in (finished, killed))}, changed
    for name in ("record.json", "samples.parquet"):  # DVC removed it, or it is as it was
        assert f"reports/runs/{killed}/{name}" not in after or f"reports/runs/{killed}/{name}" \
            not in changed
    RBM.load(layout.model)  # finished stages: whole and readable
    pd.read_parquet(layout.training)
    assert json.loads((layout.run(finished) / "record.json").read_text())["route"] == finished
    new = set(after) - set(before)
    # only staging of the killed route may be left, beside the outputs (the next run of
    # the route removes it), never inside one
    assert all(re.fullmatch(rf"reports/runs/\.{killed}\.\w+\.tmp/.*", p) for p in new), new

    assert sorted(repro(root)) == sorted([f"sample@{killed}", "report"])
    assert not [p for p in snapshot(root) if ".tmp" in p]

    reference = copy_project(project[0], tmp_path / "uninterrupted")
    write_params(reference, CHANGE)
    run_stages(reference, ["train", *(f"sample@{r}" for r in ROUTES), "report"])
    assert_same_outputs(root, reference)


def snapshot_file(root: Path, name: str) -> str | None:
    try:
        return hashlib.sha256((root / name).read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def assert_same_outputs(root: Path, reference: Path) -> None:
    """Two projects' outputs agree, timing aside."""
    a, b = Layout(root), Layout(reference)
    for x, y in zip(RBM.load(a.model).parameters(), RBM.load(b.model).parameters(),
                    strict=True):
        assert (x == y).all()
    drop = lambda f: f.drop(columns=[c for c in TIMING if c in f])  # noqa: E731
    pd.testing.assert_frame_equal(drop(pd.read_parquet(a.training)),
                                  drop(pd.read_parquet(b.training)))
    pd.testing.assert_frame_equal(drop(pd.read_parquet(a.samples_table)),
                                  drop(pd.read_parquet(b.samples_table)))
    for route in ROUTES:
        assert_same_run(a.run(route), b.run(route))
    assert untimed(json.loads(a.metrics.read_text())) == untimed(json.loads(b.metrics.read_text()))
    grid = "samples_grid.png"  # the draws as images: no timing in it
    assert (a.figures / grid).read_bytes() == (b.figures / grid).read_bytes()


# -- 4. a killed train stage resumes from its checkpoint -------------------------------------
@pytest.mark.slow
def test_a_killed_train_stage_resumes_to_the_uninterrupted_parameters(project, tmp_path):
    """SIGKILL ``python -m flows.stages train`` once its checkpoint exists: the previous model
    is byte-identical; the rerun resumes (its checkpoint is then gone) and ends with exactly
    the parameters of an uninterrupted run; a checkpoint of other params is deleted."""
    src, _ = project
    killed, clean = copy_project(src, tmp_path / "killed"), copy_project(src, tmp_path / "clean")
    for root in (killed, clean):
        params = yaml.safe_load((root / "params.yaml").read_text())
        params["train"].update(method="pcd", steps=1500, seed=7)  # checkpoints every 100
        write_params(root, params)
    model = killed / "models" / "rbm.pt"
    before = model.read_bytes()
    (killed / "models" / ".train-0123456789abcdef.ckpt").write_bytes(b"other params")
    argv = [sys.executable, "-m", "flows.stages", "train", "--quiet"]
    env = ENV
    proc = subprocess.Popen(argv, cwd=killed, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and not [
            c for c in (killed / "models").glob(".train-*.ckpt")
            if c.name != ".train-0123456789abcdef.ckpt"]:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "training finished before it could be killed"
    assert model.read_bytes() == before
    cks = list((killed / "models").glob(".train-*.ckpt"))
    assert len(cks) == 1, cks  # this run's; the foreign one was removed
    ck = cks[0]
    assert 0 < __import__("torch").load(ck, weights_only=True)["step"] < 1500
    for root in (killed, clean):
        done = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    assert not list((killed / "models").glob(".train-*.ckpt"))
    a, b = RBM.load(model), RBM.load(clean / "models" / "rbm.pt")
    for x, y in zip(a.parameters(), b.parameters(), strict=True):
        assert np.array_equal(x.numpy(), y.numpy())
