"""The ``rbmdiff`` console script: train, sample, evaluate (docs/design.md §8)."""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

from rbmdiff.choices import (
    DEVICES,
    NEGATIVES,
    SAMPLERS,
    TOPOLOGIES,
)
from rbmdiff.errors import EX_TEMPFAIL, ONE_LINE_ERRORS, RbmdiffError, TransientError
from rbmdiff.jsonsafe import dumps

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


def _parquet_path(text: str) -> Path:
    """An output named *.parquet: the file is Parquet whatever its name, so another suffix
    (x.csv) would mislead."""
    if Path(text).suffix.lower() != ".parquet":
        raise argparse.ArgumentTypeError(
            f"{text!r}: samples are written as Parquet; name the file *.parquet (convert "
            "with pandas.read_parquet(path).to_csv(...))")
    return Path(text)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rbmdiff")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _key_value(text: str) -> tuple[str, object]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.replace("-", "_"), value


def _shape(text: str) -> list[int]:
    """``--topology-shape``: a JSON list of positive integers, e.g. [12,4]."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    if (not isinstance(value, list) or not value or len(value) > 2
            or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in value)):
        raise argparse.ArgumentTypeError(
            f"expected a graph shape as JSON, pegasus [M] or zephyr [m, t], got {text!r}")
    return value


def _device_object(params: dict) -> dict:
    """``--set sampler=module:Name``: the qpu route's device, any dimod sampler, imported at the
    edge: Name a class (built with no arguments), a function returning a sampler, or a sampler
    instance."""
    spec = params.get("sampler")
    if not isinstance(spec, str):
        return params
    import importlib

    module, sep, name = spec.partition(":")
    if not sep or not module or not name:
        raise RbmdiffError(f"--set sampler={spec!r}: give MODULE:NAME, e.g. "
                           "sampler=dwave.samplers:SimulatedAnnealingSampler")
    try:
        obj = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise RbmdiffError(f"--set sampler={spec!r}: cannot import it ({exc})") from None
    if callable(obj):
        try:
            obj = obj()
        except Exception as exc:  # a user's constructor: any failure is theirs to read
            raise RbmdiffError(f"--set sampler={spec!r}: {name}() failed "
                               f"({type(exc).__name__}: {exc})") from None
    return {**params, "sampler": obj}


class _SamplerHelp(argparse.Action):
    """-h/--help of ``rbmdiff sample``: the usual help, then each sampler's parameters."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help="show this help message, with each sampler's parameters, and exit"):
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        parser.epilog = sampler_parameters_help()
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        parser.print_help()
        parser.exit()


def sampler_parameters_help() -> str:
    """Each registered sampler's keyword parameters and defaults, read from its class."""
    import importlib
    import inspect

    from rbmdiff.samplers import REGISTRY

    lines = ["sampler parameters (pass each as --set KEY=VALUE; VALUE is read as JSON, e.g. "
             "--set num_sweeps=300 --set init='\"data\"'):"]
    for name, target in REGISTRY.items():
        module, cls_name = target.split(":")
        try:
            cls = getattr(importlib.import_module(module), cls_name)
        except ImportError as exc:  # an optional dependency missing
            lines.append(f"  {name}: unavailable ({exc})")
            continue
        params = [f"{p.name}={p.default!r}" for p in inspect.signature(cls).parameters.values()
                  if p.kind is p.KEYWORD_ONLY]
        lines.append(f"  {name}: {', '.join(params)}")
    return "\n".join(lines)


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr (exit 2), pointing at --help."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _option(name: str) -> str:
    """A TrainOptions field as the CLI spells it: n_hidden -> --n-hidden."""
    return "--" + name.replace("_", "-")


def _add_train_options(parser: argparse.ArgumentParser) -> None:
    """One option per field of :class:`rbmdiff.options.TrainOptions`, with its type, choices,
    default and description (argparse keeps None: only what is given reaches the model)."""
    from rbmdiff.options import TrainOptions, choices, field_parser

    for name, field in TrainOptions.model_fields.items():
        if field.is_required():
            note = "required"
        elif field.default is None:
            note = "default: the rule's, see below"
        else:
            note = f"default {field.default}"
        parser.add_argument(_option(name), type=_argparse_type(field_parser(name)),
                            choices=choices(name), required=field.is_required(),
                            help=f"{field.description} ({note})")


def _argparse_type(parse):
    """A field's parser as an argparse ``type``: its problem as argparse's one-line error."""

    def convert(text: str):
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{str(exc)[0].lower()}{str(exc)[1:]}, got "
                                             f"{text!r}") from None

    convert.__name__ = parse.__name__
    return convert


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rbmdiff",
        description="An RBM whose free energy is a diffusion model's score: train it by "
        "denoising score matching, sample it by SDE, Gibbs, annealing or a D-Wave QPU.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=_Parser)

    _train_parser(sub)
    _sample_parser(sub)
    _evaluate_parser(sub)
    return parser


def _train_parser(sub) -> None:
    t = sub.add_parser(
        "train", help="fit an RBM to data and save it",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="the rule's defaults (rbmdiff.training_defaults): DSM with the posterior score, "
        "exact m where its\nestimated run is ≤ 10 min and ≤ half the memory (then 16 noise "
        "draws, log-SNR [-2, 2], lr 0.1,\n1,000 steps), else second-order TAP m (10 sweeps, 4 "
        "draws, log-SNR [-4, 4], lr 0.04, 6,000 steps,\nfewer where its estimated cost passes "
        "10 min); without --method, TAP m only up to 64 visible\nunits and CD-10 beyond (e.g. "
        "MNIST, 784 visible); other methods lr 0.01, 2,000 steps, CD-1;\nbatch min(64, rows).")
    t.add_argument("--data", required=True, help="built-in name (digits, digits-binary, "
                   "mnist, mnist-binary, bas-3x3, bas-4x4) or a .npy/.csv/.parquet file of "
                   "values in [0, 1]")
    t.add_argument("--out", required=True, type=Path, help="model file to write")
    _add_train_options(t)
    t.add_argument("--topology", choices=TOPOLOGIES,
                   metavar="TOPOLOGY", help="%(choices)s: train a hardware-native RBM: W "
                   "only on couplers of this D-Wave "
                   "graph (rbmdiff.topology.native_layout; the layout is saved in the model)")
    t.add_argument("--topology-shape", type=_shape, metavar="SHAPE",
                   help="--topology's graph as JSON: pegasus [M], zephyr [m, t] (default: the "
                   "mocks' pegasus [8], zephyr [5,4]; MNIST's 784 visible units need zephyr "
                   "[7,4] or larger, Advantage2's full graph is [12,4]); sample on the same "
                   "shape (--set mock_shape=...)")
    t.add_argument("--negative", choices=NEGATIVES, default="gibbs",
                   help="--method pcd: where the negative phase comes from: persistent Gibbs "
                   "chains (gibbs), or fresh reads of the anneal or qpu sampler each step")
    t.add_argument("--negative-set", dest="negative_params", type=_key_value, action="append",
                   default=[], metavar="KEY=VALUE",
                   help="a parameter of the --negative sampler (see rbmdiff sample --help)")
    t.add_argument("--qpu-budget-us", type=_finite_float,
                   help="--negative qpu: stop training before its reads exceed this QPU "
                   "access time (µs)")
    t.add_argument("--history", type=Path, help="also write the training history (Parquet)")
    t.add_argument("--checkpoint", type=Path, help="checkpoint file: written every epoch; "
                   "if it exists, training resumes from it (same arguments and data)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--device", choices=DEVICES, default="auto", help=DEVICE_HELP)


def _sample_parser(sub) -> None:
    s = sub.add_parser("sample", help="draw samples from a trained RBM into Parquet",
                       add_help=False)
    s.add_argument("-h", "--help", action=_SamplerHelp)
    s.add_argument("--model", required=True, type=Path, help="model file (rbmdiff train --out)")
    s.add_argument("--sampler", required=True, choices=SAMPLERS,
                   help="docs/math.md §6")
    s.add_argument("--num-samples", type=_positive_int, required=True, help="samples to draw")
    s.add_argument("--seed", type=_nonneg_int, default=0, help="random seed (default 0)")
    s.add_argument("--out", required=True, type=_parquet_path,
                   help="samples file: Parquet, named *.parquet (the sampler's info in its "
                   "metadata)")
    s.add_argument("--set", dest="params", type=_key_value, action="append", default=[],
                   metavar="KEY=VALUE", help="sampler parameter, e.g. --set num_sweeps=300 "
                   "(each sampler's are listed below)")
    s.add_argument("--data", help="data (built-in name or file): also compute the docs/math.md "
                   "§7 statistics on its held-out rows; gibbs with init 'data' starts at its "
                   "training rows")
    s.add_argument("--stats", type=Path, help="write the statistics record (Parquet, one row)")
    s.add_argument("--chunk-size", type=_positive_int, default=100_000,
                   help="samples drawn and written per chunk (bounds memory)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--device", choices=DEVICES, default="auto", help=DEVICE_HELP + " (the sde "
                   "and ode samplers; the others run on the CPU)")


def _evaluate_parser(sub) -> None:
    e = sub.add_parser("evaluate", help="print a JSON object of metrics of a model on data")
    e.add_argument("--model", required=True, type=Path, help="model file (rbmdiff train --out)")
    e.add_argument("--data", required=True, help="built-in name or file; its held-out rows")
    e.add_argument("--ais-chains", type=_positive_int, default=200,
                   help="AIS chains, where log Z is not exact (default %(default)s)")
    e.add_argument("--ais-betas", type=_positive_int, default=2000,
                   help="AIS inverse temperatures (default %(default)s)")
    e.add_argument("--seed", type=_nonneg_int, default=0, help="random seed (default 0)")
    e.add_argument("--device", choices=DEVICES, default="auto", help=DEVICE_HELP)


def cmd_train(args: argparse.Namespace) -> None:
    import torch

    from rbmdiff.data import check_batch_size, load_dataset
    from rbmdiff.device import resolve
    from rbmdiff.options import TrainOptions, parse
    from rbmdiff.train import TrainConfig, fit
    from rbmdiff.training_defaults import options_for, reason, recipe_used, summary

    options = parse({k: getattr(args, k) for k in TrainOptions.model_fields
                     if getattr(args, k) is not None}, spell=_option)
    resolve(args.device)  # a device that is not there: refuse before any work
    torch.set_num_threads(options.threads)
    dataset = load_dataset(args.data)
    if options.batch_size is not None:
        check_batch_size(options.batch_size, len(dataset.train), name="--batch-size",
                         data=args.data)
    for path in (args.out, args.history, args.checkpoint):
        if path is not None:
            _check_writable(path)
    given = {**options.config_kwargs(), "device": args.device}
    kw = options_for(dataset.train, recipe=options.recipe, **given)  # the library's rule
    kw.update(_negative_options(args, kw.get("method", "dsm")))
    if args.topology:
        from rbmdiff.topology import native_layout

        kw["mask"], kw["layout"] = native_layout(dataset.n_visible, options.n_hidden,
                                                 args.topology, args.topology_shape)
    elif args.topology_shape is not None:
        raise RbmdiffError("--topology-shape needs --topology")
    if not args.quiet:
        why = reason(kw, n_visible=dataset.n_visible, given=given, recipe=options.recipe)
        print(f"rbmdiff train: {summary(kw, why)}", file=sys.stderr)
    result = fit(dataset.train, TrainConfig(**kw), eval_data=dataset.test,
                 progress=not args.quiet, checkpoint=args.checkpoint)
    meta = result.rbm.meta
    meta["training"]["recipe"] = recipe_used(kw, options.recipe)
    meta["training"]["data"] = args.data
    if dataset.shape:
        meta["image_shape"] = list(dataset.shape)
    _write(args.out, result.rbm.save)
    if args.checkpoint is not None:
        args.checkpoint.unlink(missing_ok=True)  # the run is complete: nothing to resume
    if args.history:
        import pandas as pd

        from rbmdiff.io import write_parquet

        _write(args.history, lambda path: write_parquet(pd.DataFrame(result.history), path))
    last = result.history[-1] if result.history else {}
    _print_json({"model": str(args.out), **last, **_stopped(meta["training"])})


def _negative_options(args: argparse.Namespace, method: str) -> dict:
    """train()'s negative-phase keywords from --negative, --negative-set, --qpu-budget-us."""
    if args.negative == "gibbs":
        if args.negative_params or args.qpu_budget_us is not None:
            raise RbmdiffError("--negative-set and --qpu-budget-us need --negative anneal or qpu")
        return {}
    if method != "pcd":
        raise RbmdiffError(f"--negative {args.negative} needs --method pcd")
    params = dict(args.negative_params)
    if args.negative == "qpu":
        params = _device_object(params)
        params.setdefault("calibration_rounds", 0)  # training absorbs the device's temperature
        params.setdefault("verdict", False)  # the trained model's likelihood judges the reads
    elif args.qpu_budget_us is not None:
        raise RbmdiffError("--qpu-budget-us needs --negative qpu")
    return {"negative": args.negative, "negative_params": params,
            "qpu_budget_us": args.qpu_budget_us}


def _stopped(training: dict) -> dict:
    """The early stop of a budget-capped run, for the printed summary."""
    keys = ("stopped", "steps_done", "qpu_access_us")
    return {k: training[k] for k in keys if training.get(k) is not None}


def cmd_sample(args: argparse.Namespace) -> None:
    from rbmdiff import samplers
    from rbmdiff.device import resolve
    from rbmdiff.io import sample_to_parquet, write_parquet
    from rbmdiff.metrics import SampleStats
    from rbmdiff.rbm import RBM

    device = resolve(args.device)
    rbm = RBM.load(args.model)
    test = _matching_data(args.data, rbm, args.model) if args.data else None
    params = _device_object(dict(args.params)) if args.sampler == "qpu" else dict(args.params)
    if args.sampler in ("sde", "ode"):
        params.setdefault("device", str(device))
    if args.sampler == "gibbs" and params.get("init") == "data":  # chains start at data rows
        if not args.data:
            raise RbmdiffError("--set init='\"data\"' starts the chains at training rows: "
                               "name the data with --data")
        from rbmdiff.data import load_dataset

        params["init_data"] = load_dataset(args.data).train
    sampler = samplers.get(args.sampler, **params)
    for path in (args.out, args.stats):
        if path is not None:
            _check_writable(path)
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
    _print_json(summary)


def cmd_evaluate(args: argparse.Namespace) -> None:
    from rbmdiff.device import resolve
    from rbmdiff.evaluate import evaluate
    from rbmdiff.rbm import RBM

    resolve(args.device)  # a device that is not there: refuse before any work
    rbm = RBM.load(args.model)
    test = _matching_data(args.data, rbm, args.model)
    metrics = evaluate(rbm, test, ais_chains=args.ais_chains, ais_betas=args.ais_betas,
                       seed=args.seed, device=args.device)
    _print_json(metrics, indent=2)


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
    """Refuse an output path that cannot be written, before any work."""
    if path.is_dir():
        raise RbmdiffError(f"output {path} is a directory; give a file path")
    folder = path.absolute().parent
    while not folder.exists():  # the writer creates missing folders
        folder = folder.parent
    if not folder.is_dir():
        raise RbmdiffError(f"cannot write {path}: {folder} is a file, not a folder")
    try:  # the one reliable test (permissions, read-only mounts, root): write there
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise RbmdiffError(f"cannot write {path}: folder {folder} is not writable "
                           f"({exc.strerror or exc})") from None


def _write(path: Path, writer) -> None:
    """Run ``writer(path)``, turning an OS refusal into a one-line error."""
    try:
        writer(path)
    except OSError as exc:
        raise RbmdiffError(f"cannot write {path}: {exc.strerror or exc}") from None


def _print_json(obj: dict, **kw) -> None:
    """Strict JSON on stdout: null, never NaN or Infinity."""
    print(dumps(obj, **kw))


COMMANDS = {"train": cmd_train, "sample": cmd_sample, "evaluate": cmd_evaluate}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except ONE_LINE_ERRORS as exc:
        print(f"rbmdiff {args.command}: error: {exc}", file=sys.stderr)
        return EX_TEMPFAIL if isinstance(exc, TransientError) else 2
    except KeyboardInterrupt:
        print(f"rbmdiff {args.command}: interrupted; earlier outputs are intact", file=sys.stderr)
        return 130
    except OSError as exc:  # disk full, read-only folder, …: outputs are written atomically
        where = f" {exc.filename}" if exc.filename else ""
        print(f"rbmdiff {args.command}: error: cannot write{where}: {exc.strerror or exc}; "
              "earlier outputs are intact", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
