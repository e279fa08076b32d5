"""The ``rbmdiff`` console script: train, sample, evaluate (DESIGN §8)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from rbmdiff.errors import RbmdiffError

DEVICES = ("auto", "cpu", "cuda")  # rbmdiff.device.DEVICES (kept here: --help imports no torch)
DEVICE_HELP = "where tensors live: auto (a CUDA GPU when one is available, else the CPU), cpu, cuda"


def _int_at_least(low: int):
    """An argparse type: an integer ≥ ``low``, with a one-line error otherwise."""
    what = "a positive integer" if low == 1 else f"an integer ≥ {low}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
        return value

    return parse


_positive_int, _nonneg_int = _int_at_least(1), _int_at_least(0)


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text}")
    return value


def _key_value(text: str) -> tuple[str, object]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.replace("-", "_"), value


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr (exit 2), pointing at --help."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rbmdiff",
        description="An RBM whose free energy is a diffusion model's score: train it by "
        "denoising score matching, sample it by SDE, Gibbs, annealing or a D-Wave QPU.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=_Parser)

    t = sub.add_parser("train", help="fit an RBM to data and save it")
    t.add_argument("--data", required=True, help="built-in name (digits, digits-binary, "
                   "bas-3x3, bas-4x4) or a .npy/.csv/.parquet file of values in [0, 1]")
    t.add_argument("--n-hidden", type=_positive_int, required=True)
    t.add_argument("--score", choices=("free_energy", "posterior"), default="posterior")
    t.add_argument("--method", choices=("dsm", "pcd", "cd", "ml"), default="dsm")
    t.add_argument("--seed", type=_nonneg_int, default=0)
    t.add_argument("--out", required=True, type=Path, help="model file to write")
    t.add_argument("--steps", type=_positive_int, default=2000, help="optimiser steps")
    t.add_argument("--batch-size", type=_positive_int, default=64)
    t.add_argument("--lr", type=_finite_float, default=1e-2)
    t.add_argument("--eps", type=_finite_float, default=1e-3, help="logit clip ε ∈ (0, ½)")
    t.add_argument("--beta-min", type=_finite_float, default=0.1)
    t.add_argument("--beta-max", type=_finite_float, default=20.0)
    t.add_argument("--t-eps", type=_finite_float, default=1e-3)
    t.add_argument("--m-method", choices=("exact", "meanfield"), default=None,
                   help="how the posterior score computes m_θ (default: exact when the "
                   "smaller layer has ≤ 16 units, else 10 mean-field sweeps)")
    t.add_argument("--recipe", choices=("recommended", "plain"), default="recommended",
                   help="DSM with the posterior score: 'recommended' is the measured best "
                   "variance-reduced variant (rbmdiff.train.RECOMMENDED_DSM, see "
                   "BENCHMARKS.md); 'plain' is DESIGN §5 as written (λ = σ², t ~ U[t_ε, 1])")
    t.add_argument("--sweeps", type=_positive_int, default=10, help="mean-field sweeps")
    t.add_argument("--cd-k", type=_positive_int, default=1, help="Gibbs sweeps per CD/PCD step")
    t.add_argument("--threads", type=_positive_int, default=1, help="torch threads")
    t.add_argument("--history", type=Path, help="also write the training history (Parquet)")
    t.add_argument("--checkpoint", type=Path, help="checkpoint file: written every epoch; "
                   "if it exists, training resumes from it (same arguments and data)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--device", choices=DEVICES, default="auto", help=DEVICE_HELP)

    s = sub.add_parser("sample", help="draw samples from a trained RBM into Parquet")
    s.add_argument("--model", required=True, type=Path)
    s.add_argument("--sampler", required=True, choices=("sde", "ode", "gibbs", "anneal", "qpu"))
    s.add_argument("--num-samples", type=_positive_int, required=True)
    s.add_argument("--seed", type=_nonneg_int, default=0)
    s.add_argument("--out", required=True, type=Path, help="samples file (.parquet)")
    s.add_argument("--set", dest="params", type=_key_value, action="append", default=[],
                   metavar="KEY=VALUE", help="sampler parameter, e.g. --set steps=300")
    s.add_argument("--data", help="held-out data: also compute the DESIGN §7 statistics")
    s.add_argument("--stats", type=Path, help="write the statistics record (Parquet, one row)")
    s.add_argument("--chunk-size", type=_positive_int, default=100_000,
                   help="samples drawn and written per chunk (bounds memory)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--device", choices=DEVICES, default="auto", help=DEVICE_HELP + " (the sde "
                   "and ode samplers; the others run on the CPU)")

    e = sub.add_parser("evaluate", help="print a JSON object of metrics of a model on data")
    e.add_argument("--model", required=True, type=Path)
    e.add_argument("--data", required=True)
    e.add_argument("--ais-chains", type=_positive_int, default=200)
    e.add_argument("--ais-betas", type=_positive_int, default=2000)
    e.add_argument("--seed", type=_nonneg_int, default=0)
    e.add_argument("--device", choices=DEVICES, default="auto", help=DEVICE_HELP)
    return parser


def cmd_train(args: argparse.Namespace) -> None:
    import torch

    from rbmdiff.data import load_dataset
    from rbmdiff.device import resolve
    from rbmdiff.train import RECOMMENDED_DSM, train

    resolve(args.device)  # a device that is not there: refuse before any work
    torch.set_num_threads(args.threads)
    dataset = load_dataset(args.data, min_rows=args.batch_size)
    _check_writable(args.out)
    m_method = args.m_method or (
        "exact" if min(dataset.n_visible, args.n_hidden) <= 16 else "meanfield")
    recipe = (RECOMMENDED_DSM if args.recipe == "recommended" and args.method == "dsm"
              and args.score == "posterior" else {})
    result = train(
        dataset.train, n_hidden=args.n_hidden, method=args.method, score=args.score,
        steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
        beta_min=args.beta_min, beta_max=args.beta_max, eps=args.eps, t_eps=args.t_eps,
        m_method=m_method, sweeps=args.sweeps, cd_k=args.cd_k,
        eval_data=dataset.test, progress=not args.quiet, checkpoint=args.checkpoint,
        device=args.device, **recipe,
    )
    result.rbm.meta["training"]["recipe"] = args.recipe if recipe else "plain"
    result.rbm.meta["training"]["data"] = args.data
    if dataset.shape:
        result.rbm.meta["image_shape"] = list(dataset.shape)
    result.rbm.save(args.out)
    if args.checkpoint is not None:
        args.checkpoint.unlink(missing_ok=True)  # the run is complete: nothing to resume
    if args.history:
        import pandas as pd

        from rbmdiff.io import write_parquet

        write_parquet(pd.DataFrame(result.history), args.history)
    last = result.history[-1] if result.history else {}
    print(json.dumps({"model": str(args.out), **{k: last[k] for k in last}}, default=float))


def cmd_sample(args: argparse.Namespace) -> None:
    from rbmdiff import samplers
    from rbmdiff.device import resolve
    from rbmdiff.io import sample_to_parquet, write_parquet
    from rbmdiff.metrics import SampleStats
    from rbmdiff.rbm import RBM

    device = resolve(args.device)
    rbm = RBM.load(args.model)
    test = _matching_data(args.data, rbm, args.model) if args.data else None
    params = dict(args.params)
    if args.sampler in ("sde", "ode"):
        params.setdefault("device", str(device))
    sampler = samplers.get(args.sampler, **params)
    _check_writable(args.out)
    stats = SampleStats(rbm) if test is not None else None
    info = sample_to_parquet(
        sampler, rbm, args.num_samples, seed=args.seed, path=args.out,
        chunk_size=args.chunk_size, on_chunk=stats and (lambda chunk: stats.update(chunk.v)),
        progress=not args.quiet,
    )
    summary = {"out": str(args.out), "wall_s": info["wall_s"],
               "cost_units": info["cost_units"], "cost_unit": info["cost_unit"]}
    if stats is not None:
        import pandas as pd

        record = stats.record(info, test)
        if args.stats:
            write_parquet(pd.DataFrame([record]), args.stats)
        summary.update(record)
    print(json.dumps(summary, default=str))


def cmd_evaluate(args: argparse.Namespace) -> None:
    from rbmdiff.device import resolve
    from rbmdiff.evaluate import evaluate
    from rbmdiff.rbm import RBM

    resolve(args.device)  # a device that is not there: refuse before any work
    rbm = RBM.load(args.model)
    test = _matching_data(args.data, rbm, args.model)
    metrics = evaluate(rbm, test, ais_chains=args.ais_chains, ais_betas=args.ais_betas,
                       seed=args.seed, device=args.device)
    print(json.dumps(metrics, indent=2))


def _matching_data(source: str, rbm, model_path: Path):
    from rbmdiff.data import load_dataset

    data = load_dataset(source).test
    if data.shape[1] != rbm.n_visible:
        raise RbmdiffError(
            f"data {source} has {data.shape[1]} units per row but model {model_path} has "
            f"{rbm.n_visible} visible units"
        )
    return data


def _check_writable(path: Path) -> None:
    if path.exists() and path.is_dir():
        raise RbmdiffError(f"output {path} is a directory; give a file path")


COMMANDS = {"train": cmd_train, "sample": cmd_sample, "evaluate": cmd_evaluate}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except RbmdiffError as exc:
        print(f"rbmdiff {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rbmdiff {args.command}: interrupted; earlier outputs are intact", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
