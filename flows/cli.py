"""``rbmdiff-pipeline``: run the pipeline, a QPU campaign, a schedule, or one stage.

    rbmdiff-pipeline run [--dask ADDRESS|local] [--force]
    rbmdiff-pipeline campaign [--budget-us µs] [--resume ID]   (exit 1 unless every setting ran)
    rbmdiff-pipeline deploy --cron '0 3 * * *' [--serve]
    rbmdiff-pipeline stage NAME [ROUTE]          (what dvc.yaml's commands run)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import flows  # noqa: F401  (environment defaults before Prefect is imported)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rbmdiff-pipeline",
        description="rbmdiff's pipeline: DVC decides what is stale, Prefect runs it "
        "(prepare → train → embed → sample → report).",
    )
    parser.add_argument("--root", type=Path, default=Path("."),
                        help="project folder holding dvc.yaml and params.yaml (default: .)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    r = sub.add_parser("run", help="bring every artefact up to date in one Prefect flow run")
    r.add_argument("--dask", metavar="ADDRESS", help="run sampling on a Dask cluster: a "
                   "scheduler address (tcp://host:8786) or 'local' for a local cluster")
    r.add_argument("--force", action="store_true", help="rerun every stage")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    c = sub.add_parser("campaign", help="sweep QPU settings under a QPU-time budget")
    c.add_argument("--budget-us", type=float, help="QPU access time budget in µs "
                   "(default: params.yaml campaign.budget_us)")
    c.add_argument("--resume", metavar="ID", help="continue campaign ID (the table's "
                   "'campaign' column): skip its finished settings, count what it spent")
    c.add_argument("--dask", metavar="ADDRESS", help="run the campaign's QPU runs on Dask")
    c.add_argument("--quiet", action="store_true")
    d = sub.add_parser("deploy", help="register the pipeline as a scheduled Prefect deployment")
    d.add_argument("--cron", required=True, help="cron schedule, e.g. '0 3 * * *'")
    d.add_argument("--timezone", help="IANA time zone of the schedule (default UTC)")
    d.add_argument("--name", default="scheduled", help="deployment name")
    d.add_argument("--dask", metavar="ADDRESS", help="scheduled runs sample on this cluster")
    d.add_argument("--serve", action="store_true",
                   help="also execute the scheduled runs in this process (blocks)")
    s = sub.add_parser("stage", help="run one stage, as `dvc repro` does")
    s.add_argument("stage_args", nargs=argparse.REMAINDER, metavar="NAME [ROUTE]")
    return parser


def up_to_date(root: Path) -> dict | None:
    """The run's summary when DVC finds nothing stale (then Prefect is not started, nor its
    API, for a run that would do nothing); None when there is work."""
    from flows.ledger import Ledger

    plan = Ledger(str(root.resolve())).plan()
    if plan.stale:
        return None
    refresh_samples_table(root)
    print(f"rbmdiff-pipeline run: every stage is up to date ({', '.join(plan.fresh)}); "
          "Prefect not started", file=sys.stderr)
    return {"ran": [], "skipped": plan.fresh, "failed": {}}


def refresh_samples_table(root: Path) -> None:
    """Write reports/samples.parquet where it is missing (outputs fetched with ``dvc pull``):
    it is not a DVC output, since its timings are this machine's."""
    from flows.layout import Layout

    layout = Layout(root.resolve())
    if layout.samples_table.is_file():
        return
    from flows.config import load_params
    from flows.stages.report import write_samples_table

    write_samples_table(list(load_params(root / "params.yaml").sample), layout)


def check_dask(dask: str | None) -> None:
    """A --dask request that cannot work is refused before any work (one line)."""
    if dask:
        from flows.scaleout import needs_shared_api, task_runner

        task_runner(dask)
        needs_shared_api(dask)


def cmd_run(args: argparse.Namespace) -> dict:
    from flows.preflight import preflight

    preflight(args.root)  # bad input: one line, before Prefect starts or a stage runs
    check_dask(args.dask)
    out = up_to_date(args.root) if not args.force else None
    if out is None:
        from flows.pipeline import pipeline

        out = pipeline(root=str(args.root), dask=args.dask, force=args.force,
                       progress=not args.quiet)
        out = {k: out[k] for k in ("ran", "skipped", "failed")}
    return out


def cmd_campaign(args: argparse.Namespace) -> dict:
    from flows.campaign_table import check_request

    # bad input: one line, before Prefect is imported or started
    check_request(args.root, args.budget_us, args.resume)
    check_dask(args.dask)
    from flows.campaign import campaign
    from flows.scaleout import shared_api, task_runner

    flow = campaign.with_options(task_runner=task_runner(args.dask))
    with shared_api(args.dask):
        return flow(root=str(args.root), budget_us=args.budget_us, progress=not args.quiet,
                    resume=args.resume)


def cmd_deploy(args: argparse.Namespace) -> dict | None:
    from flows import deploy

    kw = {"name": args.name, "root": str(args.root), "dask": args.dask,
          "timezone": args.timezone}
    if args.serve:
        deploy.serve(args.cron, **kw)
        return None
    return {"deployment": deploy.register(args.cron, **kw), "cron": args.cron,
            "next": "start a runner: rbmdiff-pipeline deploy --cron ... --serve"}


COMMANDS = {"run": cmd_run, "campaign": cmd_campaign, "deploy": cmd_deploy}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "stage":
        from flows.stages.__main__ import main as stage_main

        return stage_main([*args.stage_args, "--params", str(args.root / "params.yaml")])
    from rbmdiff.errors import EX_TEMPFAIL, ONE_LINE_ERRORS, TransientError

    try:
        out = COMMANDS[args.command](args)
    except ONE_LINE_ERRORS as exc:
        print(f"rbmdiff-pipeline {args.command}: error: {exc}", file=sys.stderr)
        return EX_TEMPFAIL if isinstance(exc, TransientError) else 2
    except KeyboardInterrupt:
        print(f"rbmdiff-pipeline {args.command}: interrupted; committed stages are intact",
              file=sys.stderr)
        return 130
    except OSError as exc:  # disk full, a folder made read-only during the run, …
        where = f" {exc.filename}" if exc.filename else ""
        print(f"rbmdiff-pipeline {args.command}: error: cannot write{where}: "
              f"{exc.strerror or exc}; committed stages are intact", file=sys.stderr)
        return 2
    if out is None:  # deploy --serve: ran until stopped
        return 0
    print(json.dumps(out, indent=2, default=str))
    if args.command == "campaign" and len(out["done"]) < out["settings"]:
        print(f"rbmdiff-pipeline campaign: not every setting ran: {out['stopped']}; "
              f"`--resume {out['campaign']}` continues it", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # also guards Dask's local cluster, which re-imports __main__
    sys.exit(main())
