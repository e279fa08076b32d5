"""report: the sampler runs as one table, the headline metrics, a readable summary
(reports/report.md) and the figures."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import torch

from flows import figures
from flows.artefacts import read_json, read_prepared, write_json, wrote
from flows.config import ReportParams
from flows.layout import Layout
from rbmdiff.data import is_binary
from rbmdiff.errors import RbmdiffError
from rbmdiff.exact import EXACT_LAW_BITS, log_partition
from rbmdiff.files import atomic_write_bytes
from rbmdiff.io import write_parquet
from rbmdiff.metrics import sample_record
from rbmdiff.rbm import RBM
from rbmdiff.samplers.base import Samples

HEADLINE = ("mmd", "corr_rmse", "mean_abs_err", "test_log_likelihood", "tv_exact",
            "mean_free_energy", "wall_s", "samples_per_s", "cost_units", "num_samples")


FLOAT_COLUMNS = ("wall_s", "samples_per_s", "cost_units", "multiply_adds", "mean_abs_err",
                 "corr_rmse", "mmd", "mean_free_energy", "test_log_likelihood", "tv_exact",
                 "chain_break_fraction", "qpu_access_time", "beta_model", "prefactor",
                 "chain_strength", "energy_z")
INT_COLUMNS = ("num_qubits", "rounds")  # QPU runs only: nullable integers elsewhere
FLAG_COLUMNS = ("mock", "clipped", "target_reached", "fidelity_ok")

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
        with torch.no_grad():
            log_z = log_partition(rbm)
            f = rbm.free_energy(v.to(rbm.dtype)).double()
        record.update(test_log_likelihood=float(-f.mean() - log_z), log_z=log_z)
    return record


def reference_record(rbm: RBM, train: torch.Tensor, test: torch.Tensor) -> dict:
    """The sample statistics of the training rows (binary draw, seed 1) against the held-out
    rows: what a perfect sampler of the data law would score, noise included."""
    v, _ = binary_rows(train, seed=1)
    return sample_record(Samples(v=v, info={"sampler": "training data"}), rbm, test)


def samples_table(routes: list[str], layout: Layout) -> pd.DataFrame:
    """One row per sampler run (docs/math.md §7), in the order of params.yaml's sample routes."""
    missing = [r for r in routes if not (layout.run(r) / "record.json").is_file()]
    if missing:
        raise RbmdiffError(f"no sampler run for {', '.join(missing)} under {layout.runs}; "
                           "run their sample stages first (dvc repro)")
    table = pd.DataFrame.from_records([read_json(layout.run(r) / "record.json") for r in routes])
    for column in table.columns:  # JSON null -> NaN in numeric columns, <NA> in flags
        if column in FLAG_COLUMNS:
            table[column] = table[column].astype("boolean")
        elif column in INT_COLUMNS:
            table[column] = pd.to_numeric(table[column]).astype("Int64")
        elif column in FLOAT_COLUMNS or column.startswith("beta_eff"):
            table[column] = pd.to_numeric(table[column]).astype("float64")
    return table


def report(p: ReportParams, routes: list[str], layout: Layout) -> dict:
    """Write reports/samples.parquet, reports/statistics.json, reports/report.md and
    reports/figures/*.png; -> the metrics.  statistics.json holds only the statistics defined
    for this model and data (``undefined`` says why the others are missing)."""
    table = samples_table(routes, layout)
    write_parquet(table, layout.samples_table)
    history = pd.read_parquet(layout.training)
    train, test, info = read_prepared(layout)
    rbm = RBM.load(layout.model)
    model = model_record(rbm, test)
    undefined = undefined_columns(rbm.n_visible, rbm.n_hidden, is_binary(test))
    shown = [k for k in HEADLINE if k not in undefined]
    reference = reference_record(rbm, train, test)
    metrics = {
        "model": model,
        "train": {k: history.iloc[-1][k] for k in ("step", "loss", "test_ll", "train_ll",
                                                    "log_z", "wall_s") if k in history},
        "samplers": {row["route"]: {k: row[k] for k in shown if k in row}
                     for _, row in table.iterrows()},
        "reference": {k: reference[k] for k in shown if k in COLUMNS},
        "undefined": undefined,
    }
    write_json(layout.metrics, metrics)
    summary = layout.metrics.with_name("report.md")
    atomic_write_bytes(summary, markdown(info, model, table, reference, undefined).encode())

    g = torch.Generator().manual_seed(p.seed)
    k = p.grid_samples
    rows = {"data": test[torch.randperm(test.shape[0], generator=g)[:k]].numpy()}
    for route in routes:
        draws = pd.read_parquet(layout.run(route) / "samples.parquet",
                                columns=[f"v{i}" for i in range(info["n_visible"])])
        pick = torch.randperm(len(draws), generator=g)[:k].numpy()
        rows[route] = draws.to_numpy(dtype=np.float32)[pick]
    shape = figures.image_shape(info["n_visible"], info.get("shape"))
    out = layout.figures
    paths = [
        figures.sample_grid(rows, shape, out / "samples_grid.png"),
        figures.quality_vs_cost(table, out / "quality_vs_cost.png"),
        figures.training_curve(history, out / "training.png",
                               final_test_ll=model["test_log_likelihood"]),
    ]
    wrote("report", layout.samples_table, layout.metrics, summary, *paths)
    return json.loads(layout.metrics.read_text())


def markdown(info: dict, model: dict, table: pd.DataFrame, reference: dict,
             undefined: dict[str, str]) -> str:
    """reports/report.md: the model's exact test log-likelihood, each sampler's defined
    statistics beside the training data's, and what each column means."""
    ll = model["test_log_likelihood"]
    lines = [f"# rbmdiff report: {info.get('name', 'data')}", "",
             f"Model: {model['n_visible']} visible × {model['n_hidden']} hidden units.", "",
             "Exact test log-likelihood: " + (
                 f"**{ll:.3f} nats per row** (log Z = {model['log_z']:.3f} by enumeration; "
                 f"{model['test_rows']} held-out rows, {model['test_data']})." if ll is not None
                 else "not computed (both layers above "
                      f"{EXACT_LAW_BITS} units: log Z is not enumerable)."), ""]
    stats = [c for c in COLUMNS if c not in undefined and c != "test_log_likelihood"]
    header = ["route", *stats, "wall_s", "cost"]
    lines += ["## Samples against held-out data", "",
              "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in table.iterrows():
        cost = f"{row['cost_units']:.4g} {row['cost_unit']}"
        lines.append("| " + " | ".join([row["route"], *(_num(row[c]) for c in stats),
                                        _num(row["wall_s"]), cost]) + " |")
    lines.append("| training data (reference) | " + " | ".join(
        _num(reference[c]) for c in stats) + " | | |")
    lines += ["", "The reference row scores the training rows as if they were samples: a "
              "sampler of the data's own law gets about this, noise included.", "",
              "## Columns", ""]
    lines += [f"- `{c}`: {COLUMNS[c]}." for c in COLUMNS if c not in undefined]
    lines += [f"- `{c}`: not defined here ({why}); empty in samples.parquet." for c, why in
              undefined.items()]
    return "\n".join(lines) + "\n"


def _num(x: float) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"
