"""Time ``dvc repro`` of the default pipeline from a fresh clone, split by stage.

    python benchmarks/timing.py [--tiny] [--keep DIR] [--prefect] [--floor]

Makes a fresh clone (``make_project`` of tests/project.py, default params unless ``--tiny``),
runs ``dvc repro`` with its output streamed and time-stamped, and splits the wall time into
each stage's own work (what the stage function reports) and the rest: each stage's process
start (interpreter and imports) and DVC's bookkeeping (hashing, dvc.lock, the cache), which
together are the orchestration.  ``--prefect`` times ``rbmdiff-pipeline run`` (one Prefect
flow run) on a fresh clone instead.  ``--floor`` then measures DVC's own cost for this
dvc.yaml: ``dvc repro -f`` again with each stage's command replaced by a copy of the outputs
the real run wrote, so that only DVC's bookkeeping (and a ``cp``) remains; ``floor_share`` is
that cost's share of a run whose stages did their work with no process start at all.
Prints a JSON report.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout: tests/
from tests.project import dvc_env, make_project

STAGE_LINE = re.compile(r"stage (\S+): ([\d.]+) s in the stage")


def time_repro(root: Path) -> dict:
    """Run ``dvc repro`` in ``root``; -> totals and the per-stage split (seconds)."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "dvc", "repro"], cwd=root, env=dvc_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    stages: dict[str, dict] = {}
    current, began = None, start
    for line in proc.stdout:
        now = time.perf_counter()
        running = re.match(r"Running stage '([^']+)'", line)
        if running:
            if current:
                stages[current]["wall_s"] = now - began
            current, began = running.group(1), now
            stages[current] = {}
        timed = STAGE_LINE.search(line)
        if timed and current:
            stages[current]["work_s"] = float(timed.group(2))
    if proc.wait() != 0:
        raise SystemExit(f"dvc repro failed in {root}")
    total = time.perf_counter() - start
    if current:
        stages[current]["wall_s"] = total - (began - start)
    work = sum(s.get("work_s", 0.0) for s in stages.values())
    return {
        "total_s": round(total, 2), "stage_work_s": round(work, 2),
        "orchestration_share": round((total - work) / total, 3),
        "stages": {k: {m: round(v, 2) for m, v in s.items()} for k, s in stages.items()},
    }


def time_floor(root: Path) -> dict:
    """Rerun every stage of ``root`` (after a real run) with commands that only copy back the
    outputs that run wrote; -> DVC's wall time for the same stages, deps, params and outs."""
    import shlex
    import shutil

    import yaml

    saved = {name: (root / name).read_bytes() for name in ("dvc.yaml", "dvc.lock")}
    with tempfile.TemporaryDirectory(prefix="rbmdiff-floor-") as folder:
        stash = Path(folder)
        spec = yaml.safe_load(saved["dvc.yaml"])
        for stage in spec["stages"].values():
            body = stage.get("do", stage)
            paths = [next(iter(o)) if isinstance(o, dict) else o
                     for key in ("outs", "metrics", "plots") for o in body.get(key, [])]
            body["cmd"] = " && ".join(
                f"rm -rf {p} && mkdir -p $(dirname {p}) && cp -r {shlex.quote(str(stash))}/{p} {p}"
                for p in paths)
        for name in ("data", "models", "reports"):
            shutil.copytree(root / name, stash / name)
        try:  # the project's own dvc.yaml and dvc.lock are put back afterwards
            (root / "dvc.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "dvc", "repro", "-f"], cwd=root,
                                  env=dvc_env(), check=True, capture_output=True, text=True)
            elapsed = time.perf_counter() - start
        finally:
            for name, data in saved.items():
                (root / name).write_bytes(data)
    return {"dvc_floor_s": round(elapsed, 2), "floor_stages": done.stdout.count("Running stage")}


def time_prefect(root: Path) -> dict:
    """Run ``python -m flows run`` (one Prefect flow run) in ``root``; -> totals, per stage."""
    env = dict(os.environ)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "flows", "run", "--quiet"], cwd=root, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    total = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"the pipeline flow failed in {root}:\n{done.stdout[-3000:]}")
    work = {m.group(1): float(m.group(2)) for m in STAGE_LINE.finditer(done.stdout)}
    serial = sum(v for k, v in work.items() if not k.startswith("sample@"))
    sampling = [v for k, v in work.items() if k.startswith("sample@")]
    return {
        "total_s": round(total, 2), "stage_work_sum_s": round(sum(work.values()), 2),
        "orchestration_share": round(1 - sum(work.values()) / total, 3),
        "note": "sampling routes run concurrently: their work overlaps in wall time",
        "critical_path_work_s": round(serial + max(sampling, default=0.0), 2),
        "stages": {k: round(v, 2) for k, v in work.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/timing.py", description=__doc__)
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny configuration")
    parser.add_argument("--keep", type=Path, help="make the clone here and keep it")
    parser.add_argument("--prefect", action="store_true",
                        help="time `rbmdiff-pipeline run` (one Prefect flow) instead")
    parser.add_argument("--floor", action="store_true",
                        help="then time DVC alone on the same stages (commands that only copy); "
                             "with dvc repro only")
    args = parser.parse_args(argv)
    if args.floor and args.prefect:
        parser.error("--floor times dvc repro's stages; it does not go with --prefect")
    folder = args.keep or Path(tempfile.mkdtemp(prefix="rbmdiff-timing-"))
    root = make_project(folder / "rbmdiff", overrides=None if args.tiny else {})
    report = (time_prefect if args.prefect else time_repro)(root)
    if args.floor:
        floor = time_floor(root)
        report.update(floor, floor_share=round(
            floor["dvc_floor_s"] / (floor["dvc_floor_s"] + report["stage_work_s"]), 3))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
