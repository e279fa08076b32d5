"""The report's figures: samples beside real data, quality against cost, the training curve."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure  # no pyplot: no global state, no display, thread-safe

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
    """Save :func:`quality_vs_cost_figure` as a PNG."""
    return _save(quality_vs_cost_figure(table), path)


def quality_vs_cost_figure(table: pd.DataFrame) -> Figure:
    """MMD² and correlation RMSE against held-out data (lower is better) versus wall seconds
    per 1000 samples, both axes logarithmic, one marker per sampler run; the legend names
    each run and its native cost (no labels on the points, so none can overlap).  MMD² is
    unbiased, so it can be ≤ 0 (no detectable difference): such points sit on the axis's
    floor as open markers."""
    fig = Figure(figsize=(11, 4))
    axes = fig.subplots(1, 2)
    per_k = (1000 * table["wall_s"] / table["num_samples"]).to_numpy(dtype=float)
    colours = [f"C{i % 10}" for i in range(len(table))]
    for ax, (column, title) in zip(axes, [("mmd", "MMD² (Hamming kernel)"),
                                          ("corr_rmse", "pairwise-correlation RMSE")],
                                   strict=True):
        y = table[column].to_numpy(dtype=float)
        positive = y[np.isfinite(y) & (y > 0)]
        floor = positive.min() / 3 if len(positive) else 1e-6
        for i, row in enumerate(table.itertuples()):
            if not np.isfinite(y[i]):
                continue
            low = y[i] <= 0
            ax.scatter(per_k[i], max(y[i], floor), s=70, marker=MARKERS.get(row.sampler, "o"),
                       color=colours[i], facecolors="none" if low else colours[i],
                       label=f"{row.route}: {row.cost_units:.3g} {row.cost_unit}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.margins(x=0.2, y=0.2)
        ax.set_xlabel("wall seconds per 1000 samples")
        ax.set_ylabel(f"{title}, lower is better")
        ax.set_title(title + (f" (open: ≤ 0, drawn at {floor:.1g})" if (y <= 0).any() else ""),
                     fontsize=9)
        ax.grid(alpha=0.3, which="both")
    handles, labels = axes[1].get_legend_handles_labels()  # filled markers: correlations ≥ 0
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8,
               title="run: native cost", title_fontsize=8)
    fig.suptitle("sample quality against cost (log–log)", fontsize=10)
    return fig


def training_curve(history: pd.DataFrame, path: Path, *,
                   final_test_ll: float | None = None) -> Path:
    """Save :func:`training_figure` as a PNG."""
    return _save(training_figure(history, final_test_ll=final_test_ll), path)


def whole_epochs(history: pd.DataFrame) -> pd.DataFrame:
    """The records that each average the same number of steps: a last record over fewer
    steps (a short final epoch) is dropped, since its mean loss is noisier."""
    steps = history["step"].diff().fillna(history["step"].iloc[0])
    if len(history) > 2 and steps.iloc[-1] < steps.iloc[:-1].median():
        return history.iloc[:-1]
    return history


def training_figure(history: pd.DataFrame, *, final_test_ll: float | None = None) -> Figure:
    """Training loss per recorded epoch (whole epochs only); the exact log-likelihood as
    training went (when recorded: binary data), else the final model's exact held-out
    log-likelihood as one point; KL(data ‖ model) in a third panel where recorded."""
    has_kl = "kl_data_model" in history and history["kl_data_model"].notna().any()
    fig = Figure(figsize=(5.5 * (3 if has_kl else 2), 3.8))
    axes = fig.subplots(1, 3 if has_kl else 2)
    loss_ax, ll_ax = axes[0], axes[1]
    whole = whole_epochs(history)
    loss_ax.plot(whole["step"], whole["loss"], marker=".", label="mean loss per epoch")
    loss_ax.set_ylabel("training loss (epoch mean)")
    loss_ax.set_title("training loss", fontsize=9)
    if "test_ll" in history and history["test_ll"].notna().any():
        ll_ax.plot(history["step"], history["test_ll"], marker=".", color="C1",
                   label="held-out rows")
        if "train_ll" in history and history["train_ll"].notna().any():
            ll_ax.plot(history["step"], history["train_ll"], marker=".", color="C2",
                       label="training rows")
    elif final_test_ll is not None:
        ll_ax.scatter([history["step"].iloc[-1]], [final_test_ll], color="C1", zorder=3,
                      label="final model, held-out rows")
        ll_ax.set_xlim(0, history["step"].iloc[-1] * 1.05)
    ll_ax.set_ylabel("nats per row, higher is better")
    ll_ax.set_title("exact log-likelihood", fontsize=9)
    if has_kl:
        axes[2].plot(history["step"], history["kl_data_model"], marker=".", color="C3",
                     label="KL(training data ‖ model)")
        axes[2].set_ylabel("nats, lower is better")
        axes[2].set_title("exact KL(data ‖ model)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("optimiser step")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="best")
    fig.suptitle("training: loss per epoch and exact log-likelihood", fontsize=10)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None},
                bbox_inches="tight")  # the figure legend sits outside the axes
    atomic_write_bytes(path, buf.getvalue())
    return path
