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


def quality_vs_cost(table: pd.DataFrame, path: Path, *, yard: dict,
                    costs: dict[str, tuple[float, str]], reference: dict,
                    notes: list[str] | None = None) -> Path:
    """Save :func:`quality_vs_cost_figure` as a PNG."""
    return _save(quality_vs_cost_figure(table, yard=yard, costs=costs, reference=reference,
                                        notes=notes), path)


def quality_vs_cost_figure(table: pd.DataFrame, *, yard: dict,
                           costs: dict[str, tuple[float, str]], reference: dict,
                           notes: list[str] | None = None) -> Figure:
    """MMD² to the model (sampler error) and to held-out data (model and sampler error) versus
    cost per sample in units that do not depend on the machine (multiply-adds, log axis).

    Left: the floor of a perfect sample of the model, mean ± sd and the "at the floor" line
    (flows.yardstick).  Right: the training data scored as samples (the data reference) and
    the perfect sample of the model (the model's own error).  MMD² is unbiased, so it can be
    ≤ 0: the y axes are linear.  Routes whose cost is not in multiply-adds (the QPU: µs of
    access) are drawn as horizontal lines, their cost in the legend; the notes (a mock, a
    failed check) are printed under the panels."""
    fig = Figure(figsize=(11, 4.6))
    axes = fig.subplots(1, 2)
    size = str(int(table["num_samples"].iloc[0]))
    floor = yard["floor"][size]
    for ax, key, title in ((axes[0], "model", "to the model: sampler error"),
                           (axes[1], "data", "to held-out data")):
        for i, row in enumerate(table.itertuples()):
            y = (yard["routes"][row.route]["to_model"]["mmd"] if key == "model" else row.mmd)
            cost, unit = costs[row.route]
            label = f"{row.route}: {cost:.3g} {unit} per sample"
            colour = f"C{i % 10}"
            if unit == "multiply-adds" and np.isfinite(cost) and cost > 0:
                ax.scatter(cost, y, s=70, marker=MARKERS.get(row.sampler, "o"), color=colour,
                           label=label, zorder=3)
            elif np.isfinite(y):
                ax.axhline(y, color=colour, ls=":", lw=1.5, label=label)
        if key == "model":
            f = floor["to_model"]["mmd"]
            ax.axhspan(f["mean"] - f["sd"], f["mean"] + f["sd"], color="grey", alpha=0.25,
                       label=f"perfect sample of the model, N = {int(size):,} (mean ± sd)")
            ax.axhline(f["mean"] + yard["reference"]["at_floor_sd"] * f["sd"], color="grey",
                       ls="--", lw=1, label="at the floor below this line")
        else:
            f = floor["to_data"]["mmd"]
            ax.axhspan(f["mean"] - f["sd"], f["mean"] + f["sd"], color="C7", alpha=0.25,
                       label="perfect sample of the model: the model's error (mean ± sd)")
            ax.axhline(reference["mmd"], color="k", ls="--", lw=1,
                       label="training data as samples: the data reference")
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xscale("log")
        ax.margins(x=0.3)
        ax.set_xlabel("multiply-adds per sample (machine-independent)")
        ax.set_ylabel("MMD² (Hamming kernel), lower is better")
        ax.set_title(f"MMD² {title}", fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="best")
    fig.suptitle("sample quality against cost", fontsize=10)
    if notes:
        fig.text(0.5, -0.02, "\n".join(notes).replace("`", ""), ha="center", va="top",
                 fontsize=8, color="C3", wrap=True)
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
    has_ll = "test_ll" in history and history["test_ll"].notna().any()
    if not has_ll:  # one number: said in the title, not a panel around one dot
        return _loss_only_figure(history, final_test_ll)
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


def _loss_only_figure(history: pd.DataFrame, final_test_ll: float | None) -> Figure:
    """The loss panel alone, the final model's exact held-out log-likelihood in the title
    (grey-level data: no log-likelihood is recorded as training goes)."""
    fig = Figure(figsize=(6.5, 3.8))
    ax = fig.subplots()
    whole = whole_epochs(history)
    ax.plot(whole["step"], whole["loss"], marker=".", label="mean loss per epoch")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("training loss (epoch mean)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    final = ("" if final_test_ll is None else
             f"\nfinal model: exact held-out log-likelihood {final_test_ll:.3f} nats per row")
    fig.suptitle(f"training loss per epoch{final}", fontsize=10)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None},
                bbox_inches="tight")  # the figure legend sits outside the axes
    atomic_write_bytes(path, buf.getvalue())
    return path
