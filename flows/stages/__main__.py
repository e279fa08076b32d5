"""``python -m flows.stages NAME [ROUTE]``: run one pipeline stage, as ``dvc.yaml`` does.

Reads params.yaml (validated), runs the stage's function in this process, and logs where its
outputs went and how long the stage took.  A bad input is one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from flows import stages
from flows.config import load_params
from flows.layout import Layout
from flows.stages import STAGES
from rbmdiff.errors import EX_TEMPFAIL, ONE_LINE_ERRORS, TransientError


def run_stage(name: str, route: str | None, params_path: Path, *, progress: bool) -> dict:
    """Run the stage on params.yaml at ``params_path`` (validated), in its folder."""
    return stages.run(name, load_params(params_path), Layout(params_path.parent), route=route,
                      progress=progress)


def main(argv: list[str] | None = None) -> int:
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
    label = args.stage + (f"@{args.route}" if args.route else "")
    began = time.perf_counter()
    try:
        run_stage(args.stage, args.route, args.params, progress=not args.quiet)
    except ONE_LINE_ERRORS as exc:
        print(f"stage {label}: error: {exc}", file=sys.stderr)
        return EX_TEMPFAIL if isinstance(exc, TransientError) else 2
    logging.getLogger("flows").info("stage %s: %.2f s in the stage", label,
                                    time.perf_counter() - began)
    return 0


if __name__ == "__main__":
    sys.exit(main())
