"""report: the sampler runs as one table, the headline metrics, a readable summary
(reports/report.md) and the figures."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import torch

from flows import figures
from flows.artefacts import TIMINGS, read_json, read_prepared, read_timings, write_json, wrote
from flows.config import ReportParams
from flows.layout import Layout
from flows.yardstick import yardstick
from rbmdiff.data import is_binary
from rbmdiff.errors import RbmdiffError
from rbmdiff.exact import EXACT_LAW_BITS, log_partition, mean_log_likelihood
from rbmdiff.files import atomic_write_bytes
from rbmdiff.io import read_info, write_parquet
from rbmdiff.metrics import sample_record
from rbmdiff.rbm import RBM
from rbmdiff.records import QPU_FACTS, TYPES
from rbmdiff.samplers.base import Samples

HEADLINE = ("mmd", "corr_rmse", "mean_abs_err", "test_log_likelihood", "tv_exact",
            "mean_free_energy", "cost_units", "num_samples")

# What each sample statistic measures, and what a good value is (reports/report.md).
COLUMNS = {
    "mmd": "MMD² (Hamming kernel) between samples and held-out rows; 0 for the same law, "
           "noise around 0 (it is unbiased, so slightly negative happens)",
    "corr_rmse": "RMS difference of pairwise unit correlations, samples against held-out "
                 "rows; 0 is perfect, sampling noise ≈ 1/√N",
    "mean_abs_err": "mean over units of |sample mean − held-out mean|; 0 is perfect",
    "tv_exact": "total variation between the samples' empirical law and the model's exact law "
                "p_θ(v), in [0, 1]; a sampler of p_θ reaches the finite-N floor "
                "≈ ½ Σ √(2p(1−p)/(πN))",
    "test_log_likelihood": "exact mean log p_θ(v) of the binary held-out rows (nats per row): "
                           "a property of the model, the same in every row; higher is better",
    "mean_free_energy": "mean free energy F(v) of the samples under the model; samplers of "
                        "the same model should agree",
}


def undefined_columns(n_visible: int, n_hidden: int, test_binary: bool) -> dict[str, str]:
    """Statistics not defined for this model and data: column -> why."""
    out = {}
    if n_visible > EXACT_LAW_BITS:
        out["tv_exact"] = (f"needs the exact law over 2^n visible states, n ≤ {EXACT_LAW_BITS} "
                           f"(here n = {n_visible})")
    if min(n_visible, n_hidden) > EXACT_LAW_BITS:
        out["test_log_likelihood"] = (f"needs log Z by enumerating the smaller layer, "
                                      f"≤ {EXACT_LAW_BITS} units (here {min(n_visible, n_hidden)})")
    elif not test_binary:
        out["test_log_likelihood"] = ("the held-out rows are grey levels, not binary states; "
                                      "see the model's test log-likelihood on their binary draw")
    return out


def binary_rows(x: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, str]:
    """Binary rows as they are, grey levels as one draw v ~ Bernoulli(x) (the reference the
    sample statistics use, seed 0).  x: (N, n) -> ((N, n) float64 of 0/1, description)."""
    x = x.to(torch.float64)
    if is_binary(x):
        return x, "binary rows as they are"
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(x, generator=g), f"one draw v ~ Bernoulli(grey level), seed {seed}"


def model_record(rbm: RBM, test: torch.Tensor) -> dict:
    """The model's exact mean test log-likelihood, (1/N) Σ_k [−F(v_k)] − log Z, with log Z by
    enumerating the smaller layer; on grey test rows, on their binary draw (binary_rows).
    None when the smaller layer has more than EXACT_LAW_BITS units."""
    v, how = binary_rows(test)
    record = {"n_visible": rbm.n_visible, "n_hidden": rbm.n_hidden, "test_rows": len(v),
              "test_data": how, "test_log_likelihood": None, "log_z": None}
    if min(rbm.n_visible, rbm.n_hidden) <= EXACT_LAW_BITS:
        log_z = log_partition(rbm)
        record.update(test_log_likelihood=mean_log_likelihood(rbm, v, log_z), log_z=log_z)
    return record


def reference_record(rbm: RBM, train: torch.Tensor, test: torch.Tensor) -> dict:
    """The sample statistics of the training rows (binary draw, seed 1) against the held-out
    rows: what a perfect sampler of the data law would score, noise included."""
    v, _ = binary_rows(train, seed=1)
    return sample_record(Samples(v=v, info={"sampler": "training data"}), rbm, test)


def samples_table(routes: list[str], layout: Layout) -> pd.DataFrame:
    """One row per sampler run (docs/math.md §7), in the order of params.yaml's sample routes;
    ``wall_s`` and ``samples_per_s`` from this machine's timing logs (NaN for a run it did not
    make, e.g. one fetched with ``dvc pull``)."""
    missing = [r for r in routes if not (layout.run(r) / "record.json").is_file()]
    if missing:
        raise RbmdiffError(f"no sampler run for {', '.join(missing)} under {layout.runs}; "
                           "run their sample stages first (dvc repro)")
    table = pd.DataFrame.from_records([{**read_json(layout.run(r) / "record.json"),
                                         **dict.fromkeys(TIMINGS, math.nan),
                                         **read_timings(layout, r)} for r in routes])
    for column in table.columns:  # JSON null -> NaN in numeric columns, <NA> in flags
        kind = TYPES.get(column)
        if kind == "boolean" or (kind == "Int64" and column in QPU_FACTS):
            table[column] = table[column].astype(kind)
        elif kind == "float64":
            table[column] = pd.to_numeric(table[column]).astype(kind)
    return table


def write_samples_table(routes: list[str], layout: Layout) -> pd.DataFrame:
    """Write reports/samples.parquet (not a DVC output: its timings are this machine's);
    -> the table."""
    table = samples_table(routes, layout)
    write_parquet(table, layout.samples_table)
    return table


def route_draws(routes: list[str], layout: Layout, n_visible: int) -> dict[str, torch.Tensor]:
    """Each route's visible samples, route -> (B, n) float64 of 0/1."""
    columns = [f"v{i}" for i in range(n_visible)]
    return {r: torch.from_numpy(pd.read_parquet(layout.run(r) / "samples.parquet",
                                                columns=columns).to_numpy(dtype=np.float64,
                                                                          copy=True))
            for r in routes}


def cost_per_sample(row: pd.Series) -> tuple[float, str]:
    """A run's cost per sample in units that do not depend on the machine: multiply-adds for
    the classical routes (the sampler's own count; annealing: n·m per sweep, ≈ the couplings,
    as docs/notes/2026-12-07-sampling-quality.md counts it), QPU access µs for the QPU."""
    if row["cost_unit"] == "qpu_access_us":
        return float(row["cost_units"]) / row["num_samples"], "QPU µs"
    macs = row.get("multiply_adds", math.nan)
    if not _finite(macs) and row["cost_unit"] == "sweeps":  # anneal: one read per sample
        macs = float(row["cost_units"]) * row["n_visible"] * row["n_hidden"] * row["num_samples"]
    return float(macs) / row["num_samples"], "multiply-adds"


def provenance(info: dict) -> dict | None:
    """What a reader must be told about a QPU route's samples: which device made them (a mock
    is not a QPU) and whether the route's own check against the model failed.  Reads the
    sampler's info keys with .get: ``fidelity_ok`` / ``fidelity_worst`` where the sampler
    gives its fidelity verdict, else the energy check (``energy_check_ok``, ``energy_z``).
    None for other samplers."""
    if info.get("sampler") != "qpu":
        return None
    kind = info.get("mock_kind") or ("mock" if info.get("mock") else None)
    ok = info.get("fidelity_ok", info.get("energy_check_ok"))
    worst = info.get("fidelity_worst")
    if worst is not None and isinstance(info.get("fidelity_z"), int | float):
        worst = f"{worst}: z = {info['fidelity_z']:.1f}"
    if worst is None and info.get("energy_z") is not None:
        worst = f"mean energy z = {info['energy_z']:.1f}"
    return {"device": info.get("device") if info.get("device") not in (None, "cpu") else (
                f"mock ({kind})" if kind else info.get("solver")),
            "mock": kind is not None, "mock_kind": kind, "check_ok": ok,
            "check_worst": worst if isinstance(worst, str | int | float | None) else str(worst)}


def provenance_note(route: str, prov: dict) -> str:
    """One sentence for report.md and the figure."""
    where = (f"came from a mock ({prov['mock_kind']}), not a quantum annealer" if prov["mock"]
             else f"came from {prov['device']}")
    check = {True: "its check against the model passed",
             False: "its check against the model FAILED"
                    + (f" ({prov['check_worst']})" if prov["check_worst"] else ""),
             None: "it carries no check against the model"}[prov["check_ok"]]
    return f"The `{route}` row {where}; {check}."


def report(p: ReportParams, routes: list[str], layout: Layout) -> dict:
    """Write reports/statistics.json, reports/report.md, reports/figures/*.png (tracked: a
    function of the inputs) and reports/samples.parquet (with timings); -> the metrics.
    statistics.json holds only the statistics defined for this model and data
    (``undefined`` says why the others are missing), each route's distance to the model
    beside its distance to the data, and the floor of a perfect sample of the same size
    (flows.yardstick)."""
    table = write_samples_table(routes, layout)
    history = pd.read_parquet(layout.training)
    train, test, info = read_prepared(layout)
    rbm = RBM.load(layout.model)
    model = model_record(rbm, test)
    undefined = undefined_columns(rbm.n_visible, rbm.n_hidden, is_binary(test))
    shown = [k for k in HEADLINE if k not in undefined]
    reference = reference_record(rbm, train, test)
    draws = route_draws(routes, layout, info["n_visible"])
    yard = yardstick(rbm, train, test, draws, seed=p.seed)
    provenances = {r: provenance(read_info(layout.run(r) / "samples.parquet")) for r in routes}
    costs = {row["route"]: cost_per_sample(row) for _, row in table.iterrows()}
    metrics = {
        "model": model,
        "train": {k: history.iloc[-1][k] for k in ("step", "loss", "test_ll", "train_ll",
                                                    "log_z") if k in history},
        "samplers": route_metrics(table, shown, yard, costs, provenances),
        "reference": {k: reference[k] for k in shown if k in COLUMNS},
        "yardstick": {"reference": yard["reference"], "floor": yard["floor"],
                      "excess_sd": {r: v["excess_sd"] for r, v in yard["routes"].items()}},
        "undefined": undefined,
    }
    write_json(layout.metrics, metrics)
    summary = layout.metrics.with_name("report.md")
    notes = [provenance_note(r, v) for r, v in provenances.items() if v is not None]
    atomic_write_bytes(summary, markdown(info, model, table, reference, undefined,
                                         yard=yard, costs=costs, notes=notes).encode())

    rows = grid_rows(test, draws, provenances, seed=p.seed, k=p.grid_samples)
    shape = figures.image_shape(info["n_visible"], info.get("shape"))
    out = layout.figures
    paths = [
        figures.sample_grid(rows, shape, out / "samples_grid.png"),
        figures.quality_vs_cost(table, out / "quality_vs_cost.png", yard=yard, costs=costs,
                                reference=reference, notes=notes),
        figures.training_curve(history, out / "training.png",
                               final_test_ll=model["test_log_likelihood"]),
    ]
    wrote("report", layout.samples_table, layout.metrics, summary, *paths)
    return json.loads(layout.metrics.read_text())


def route_metrics(table: pd.DataFrame, shown: list[str], yard: dict, costs: dict,
                  provenances: dict) -> dict:
    """Each route's headline statistics, its distances to the model, whether it is at the
    floor, its cost per sample and (a QPU route) where its reads came from."""
    samplers = {}
    for _, row in table.iterrows():
        route = row["route"]
        samplers[route] = {k: row[k] for k in shown if k in row}
        samplers[route].update(
            {f"{s}_model": v for s, v in yard["routes"][route]["to_model"].items()},
            at_floor=yard["routes"][route]["at_floor"],
            cost_per_sample=costs[route][0], cost_per_sample_unit=costs[route][1])
        if provenances[route] is not None:
            samplers[route]["provenance"] = provenances[route]
    return samplers


def grid_rows(test: torch.Tensor, draws: dict, provenances: dict, *, seed: int,
              k: int) -> dict[str, np.ndarray]:
    """The grid figure's rows: k held-out rows and k draws of each route, picked by ``seed``
    (a mock QPU route labelled with its kind)."""
    g = torch.Generator().manual_seed(seed)
    rows = {"held-out data": test[torch.randperm(test.shape[0], generator=g)[:k]].numpy()}
    for route in draws:
        pick = torch.randperm(len(draws[route]), generator=g)[:k]
        mock = provenances[route] and provenances[route]["mock"]
        label = f"{route}\n(mock {provenances[route]['mock_kind']})" if mock else route
        rows[label] = draws[route][pick].numpy().astype(np.float32)
    return rows


HOW_TO_READ = (
    "Read the two tables together: a route's distance **to the model** measures its sampler "
    "error (a route at the floor samples the model as well as a perfect sample of the same "
    "size can show), while the perfect sample's distance **to the data** is the model's own "
    "error, so a route that beats it against the data does so by not sampling the model.")


def markdown(info: dict, model: dict, table: pd.DataFrame, reference: dict,
             undefined: dict[str, str], *, yard: dict | None = None,
             costs: dict[str, tuple[float, str]] | None = None,
             notes: list[str] | None = None) -> str:
    """reports/report.md: the model's exact test log-likelihood; each sampler's defined
    statistics against the data beside the training data's and a perfect sample's; each
    sampler's distance to the model beside the floor; provenance notes; the columns."""
    ll = model["test_log_likelihood"]
    lines = [f"# rbmdiff report: {info.get('name', 'data')}", "",
             f"Model: {model['n_visible']} visible × {model['n_hidden']} hidden units.", "",
             "Exact test log-likelihood: " + (
                 f"**{ll:.3f} nats per row** (log Z = {model['log_z']:.3f} by enumeration; "
                 f"{model['test_rows']} held-out rows, {model['test_data']})." if ll is not None
                 else "not computed (both layers above "
                      f"{EXACT_LAW_BITS} units: log Z is not enumerable)."), ""]
    if notes:
        lines += ["**Warnings.** " + " ".join(notes), ""]
    if yard is not None:
        lines += [HOW_TO_READ, ""]
    stats = [c for c in COLUMNS if c not in undefined and c != "test_log_likelihood"]
    header = ["route", *stats, "cost per sample"]
    lines += ["## Samples against held-out data", "",
              "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in table.iterrows():
        cost = (_cost(costs[row["route"]]) if costs
                else f"{row['cost_units']:.4g} {row['cost_unit']}")
        lines.append("| " + " | ".join([row["route"], *(_num(row[c]) for c in stats), cost])
                     + " |")
    lines.append("| training data (reference) | " + " | ".join(
        _num(reference[c]) for c in stats) + " | |")
    if yard is not None:
        for size, floor in yard["floor"].items():
            lines.append(f"| perfect sample of the model, N = {int(size):,} (mean ± sd) | "
                         + " | ".join(_pm(floor["to_data"].get(c)) for c in stats) + " | |")
    lines += ["", "The reference row scores the training rows as if they were samples: a "
              "sampler of the data's own law gets about this, noise included."]
    if yard is not None:
        lines += ["", *_model_table(table, yard)]
    lines += ["", "## Columns", ""]
    lines += [f"- `{c}`: {COLUMNS[c]}." for c in COLUMNS if c not in undefined]
    lines += [f"- `{c}`: not defined here ({why}); empty in samples.parquet." for c, why in
              undefined.items()]
    lines += ["- cost per sample: multiply-adds (classical routes) or QPU access µs, units "
              "that do not depend on the machine; wall seconds are in samples.parquet "
              "(`wall_s`), a timing of this machine."]
    return "\n".join(lines) + "\n"


def _model_table(table: pd.DataFrame, yard: dict) -> list[str]:
    """The to-model table: each route's distances to a perfect sample of the model beside the
    floor of its size, and whether it is at the floor."""
    ref = yard["reference"]
    stats = list(next(iter(yard["routes"].values()))["to_model"]) if yard["routes"] else []
    header = ["route", *stats, "at the floor"]
    lines = ["## Samples against the model", "",
             f"Distances to a perfect sample R of the model ({ref['rows']:,} rows, "
             f"{ref['method']}; `tv_exact` against the exact law). The floor is what "
             f"{ref['floor_draws']} independent perfect samples of the route's size score "
             f"(mean ± sd); a route is at the floor when every distance is within mean + "
             f"{ref['at_floor_sd']:g} sd.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in table.iterrows():
        r = yard["routes"][row["route"]]
        cells = [_num(r["to_model"][s]) + f" ({r['excess_sd'][s]:+.1f} sd)"
                 if _finite(r["excess_sd"][s]) else _num(r["to_model"][s]) for s in stats]
        lines.append("| " + " | ".join([row["route"], *cells,
                                        "yes" if r["at_floor"] else "**no**"]) + " |")
    for size, floor in yard["floor"].items():
        lines.append(f"| floor: perfect sample, N = {int(size):,} | "
                     + " | ".join(_pm(floor["to_model"].get(s)) for s in stats) + " | |")
    return lines


def _cost(cost: tuple[float, str]) -> str:
    return f"{cost[0]:.3g} {cost[1]}"


def _pm(spread: dict | None) -> str:
    return "—" if spread is None else f"{spread['mean']:.4g} ± {spread['sd']:.2g}"


def _finite(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _num(x: float) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"
