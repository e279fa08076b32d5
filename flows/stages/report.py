"""report: the sampler runs as one table, the headline metrics, and the figures."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import torch

from flows import figures
from flows.artefacts import read_json, read_prepared, write_json, wrote
from flows.config import ReportParams
from flows.layout import Layout
from rbmdiff.errors import RbmdiffError
from rbmdiff.io import write_parquet

HEADLINE = ("mmd", "corr_rmse", "mean_abs_err", "test_log_likelihood", "tv_exact",
            "mean_free_energy", "wall_s", "samples_per_s", "cost_units", "num_samples")


FLOAT_COLUMNS = ("wall_s", "samples_per_s", "cost_units", "multiply_adds", "mean_abs_err",
                 "corr_rmse", "mmd", "mean_free_energy", "test_log_likelihood", "tv_exact",
                 "chain_break_fraction", "qpu_access_time")
INT_COLUMNS = ("num_qubits",)  # QPU runs only: nullable integers elsewhere


def samples_table(routes: list[str], layout: Layout) -> pd.DataFrame:
    """One row per sampler run (DESIGN §7), in the order of params.yaml's sample routes."""
    missing = [r for r in routes if not (layout.run(r) / "record.json").is_file()]
    if missing:
        raise RbmdiffError(f"no sampler run for {', '.join(missing)} under {layout.runs}; "
                           "run their sample stages first (dvc repro)")
    table = pd.DataFrame.from_records([read_json(layout.run(r) / "record.json") for r in routes])
    for column in table.columns:  # JSON null -> NaN in numeric columns, <NA> in flags
        if column == "mock":
            table[column] = table[column].astype("boolean")
        elif column in INT_COLUMNS:
            table[column] = pd.to_numeric(table[column]).astype("Int64")
        elif column in FLOAT_COLUMNS or column.startswith("beta_eff"):
            table[column] = pd.to_numeric(table[column]).astype("float64")
    return table


def report(p: ReportParams, routes: list[str], layout: Layout) -> dict:
    """Write reports/samples.parquet, reports/metrics.json and reports/figures/*.png;
    -> the metrics."""
    table = samples_table(routes, layout)
    write_parquet(table, layout.samples_table)
    history = pd.read_parquet(layout.training)
    metrics = {
        "train": {k: history.iloc[-1][k] for k in ("step", "loss", "test_ll", "train_ll",
                                                    "log_z", "wall_s") if k in history},
        "samplers": {row["route"]: {k: row[k] for k in HEADLINE if k in row}
                     for _, row in table.iterrows()},
    }
    write_json(layout.metrics, metrics)

    _, test, info = read_prepared(layout)
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
        figures.training_curve(history, out / "training.png"),
    ]
    wrote("report", layout.samples_table, layout.metrics, *paths)
    return json.loads(layout.metrics.read_text())
