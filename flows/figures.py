"""The report's figures: samples beside real data, quality against cost, the training curve."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure  # no pyplot: no global state, no display, thread-safe
from matplotlib.ticker import NullFormatter

from rbmdiff.files import atomic_write_bytes

MARKERS = {"sde": "o", "ode": "D", "gibbs": "s", "anneal": "^", "qpu": "*"}


def image_shape(n: int, shape: list[int] | None) -> tuple[int, int]:
    """The data's image shape, else the squarest (rows, cols) with rows · cols = n."""
    if shape and len(shape) == 2 and shape[0] * shape[1] == n:
        return shape[0], shape[1]
    rows = max(r for r in range(1, math.isqrt(n) + 1) if n % r == 0)
    return rows, n // rows


def sample_grid(rows: dict[str, np.ndarray], shape: tuple[int, int], path: Path) -> Path:
    """One row of images per source (real data first).  rows: label -> (k, n) in [0, 1]."""
    k = max(len(v) for v in rows.values())
    fig = Figure(figsize=(0.9 * k + 1.2, 0.95 * len(rows)))
    axes = fig.subplots(len(rows), k, squeeze=False)
    for r, (label, images) in enumerate(rows.items()):
        for c in range(k):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(images):
                ax.imshow(images[c].reshape(shape), cmap="gray_r", vmin=0, vmax=1,
                          interpolation="nearest")
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle("samples from each sampler beside held-out data", fontsize=10)
    return _save(fig, path)


def quality_vs_cost(table: pd.DataFrame, path: Path) -> Path:
    """MMD and correlation RMSE against held-out data (lower is better) versus wall seconds
    per 1000 samples, one marker per sampler run, each labelled with its native cost."""
    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2)
    per_k = 1000 * table["wall_s"] / table["num_samples"]
    for ax, (column, title) in zip(axes, [("mmd", "MMD² (Hamming kernel)"),
                                          ("corr_rmse", "pairwise-correlation RMSE")],
                                   strict=True):
        for i, row in table.iterrows():
            ax.scatter(per_k[i], row[column], s=80, marker=MARKERS.get(row["sampler"], "o"),
                       label=row["route"])
            ax.annotate(f"{row['route']}\n{row['cost_units']:.3g} {row['cost_unit']}",
                        (per_k[i], row[column]), textcoords="offset points", xytext=(6, 4),
                        fontsize=7)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.margins(x=0.35, y=0.15)
        ax.set_xlabel("wall seconds per 1000 samples (log)")
        ax.set_ylabel(f"{title}, lower is better")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("sample quality against cost", fontsize=10)
    return _save(fig, path)


def training_curve(history: pd.DataFrame, path: Path) -> Path:
    """Training loss per recorded epoch, and the exact test log-likelihood where recorded."""
    columns = [c for c in ("loss", "test_ll") if c in history and history[c].notna().any()]
    fig = Figure(figsize=(5 * len(columns), 3.5))
    axes = fig.subplots(1, len(columns), squeeze=False)
    for ax, column in zip(axes[0], columns, strict=True):
        ax.plot(history["step"], history[column])
        ax.set_xlabel("optimiser step")
        ax.set_ylabel(column)
        ax.grid(alpha=0.3)
    fig.suptitle("training", fontsize=10)
    return _save(fig, path)


def _save(fig: Figure, path: Path) -> Path:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    atomic_write_bytes(path, buf.getvalue())
    return path
