"""``python -m flows.stages NAME [ROUTE]``: run one pipeline stage, as ``dvc.yaml`` does.

Reads params.yaml (validated), runs the stage's function, logs where its outputs went and
how long it took (process and stage time, for the orchestration share).  The stage runs in a
child of a warm server that has torch and the library imported already
(:mod:`flows.stages.warm`; ``RBMDIFF_STAGE_SERVER=0`` runs it in this process instead).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

START_WALL = time.time()  # the command's start; the warm server's child is given it
WHERE = "in this process"   # or "in a warm server's child" (flows.stages.warm sets it)


def stage_function(name: str):
    """Import the stage's module (torch, pandas, … where the process has not yet) and return
    its function; done before the stage's clock starts, so imports count as process start."""
    import importlib

    return getattr(importlib.import_module(f"flows.stages.{name}"), name)


def run_stage(name: str, route: str | None, params_path: Path, *, progress: bool) -> dict:
    """Dispatch to the stage function with the sections it reads."""
    from flows.config import ParamsError, load_params
    from flows.layout import Layout

    params = load_params(params_path)
    layout = Layout(params_path.parent)
    function = stage_function(name)  # imported already by main(): a lookup
    if name == "prepare":
        return function(params.data, layout)
    if name == "train":
        return function(params.train, layout, progress=progress)
    if name == "embed":
        return function(params.embed, params.train.n_hidden, layout)
    if name == "sample":
        if route not in params.sample:
            raise ParamsError(f"{params_path}: sample.{route}: no such route; routes are "
                              f"{', '.join(params.sample)}")
        return function(route, params.sample[route], layout)
    return function(params.report, list(params.sample), layout)


def main(argv: list[str] | None = None) -> int:
    from flows.stages import STAGES

    parser = argparse.ArgumentParser(prog="python -m flows.stages",
                                     description="run one rbmdiff pipeline stage (dvc.yaml cmd)")
    parser.add_argument("stage", choices=STAGES)
    parser.add_argument("route", nargs="?", help="the sample stage's route (a sampler name)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if (args.stage == "sample") != (args.route is not None):
        parser.error("give a ROUTE with the sample stage, and only with it")
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    from rbmdiff.errors import RbmdiffError

    label = args.stage + (f"@{args.route}" if args.route else "")
    try:
        stage_function(args.stage)  # imports: the process's start, not the stage's work
        began = time.time()
        run_stage(args.stage, args.route, args.params, progress=not args.quiet)
    except RbmdiffError as exc:
        print(f"stage {label}: error: {exc}", file=sys.stderr)
        return 2
    now = time.time()
    logging.getLogger("flows").info(
        "stage %s: %.2f s in the stage, %.2f s in the process (%s)", label, now - began,
        now - START_WALL, WHERE,
    )
    return 0


def fast_exit(code: int) -> None:
    """Exit without the interpreter's teardown of torch, pandas and dwave modules (≈1.3 s per
    stage here, 9 stages per pipeline).  Safe: every output was written with an fsync and an
    atomic rename before this point, and the streams are flushed here."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    from flows.stages.warm import run_in_server

    status = run_in_server(sys.argv[1:], START_WALL)  # None: no warm server; run it here
    fast_exit(main() if status is None else status)
