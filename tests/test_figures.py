"""The report's figures, checked through their matplotlib objects: log axes, a legend naming
every run (no point labels to overlap), whole epochs only, log-likelihood where known."""

from __future__ import annotations

import numpy as np
import pandas as pd

from flows import figures

ROUTES = ["sde", "ode", "gibbs", "anneal", "qpu"]


def runs() -> pd.DataFrame:
    """Five runs, one 100× worse than the rest and one with MMD² ≤ 0."""
    return pd.DataFrame({
        "route": ROUTES, "sampler": ROUTES, "num_samples": [2000] * 5,
        "wall_s": [3.1, 0.6, 2.0, 5.0, 40.0], "mmd": [0.004, 0.02, -3e-4, 5e-4, 0.35],
        "corr_rmse": [0.05, 0.09, 0.03, 0.031, 0.4],
        "cost_units": [1.2e9, 2.4e8, 3e8, 2e6, 42751.4],
        "cost_unit": ["multiply_adds"] * 3 + ["sweeps", "qpu_access_us"]})


def history(**extra) -> pd.DataFrame:
    """Epochs of 23 steps to step 598, then a 2-step last epoch with a noisy loss."""
    steps = np.r_[np.arange(23, 600, 23), 600]
    loss = 1 / np.sqrt(steps) + np.r_[np.zeros(len(steps) - 1), 0.2]
    return pd.DataFrame({"step": steps, "loss": loss, **{k: f(steps) for k, f in extra.items()}})


def test_quality_vs_cost_is_log_log_with_every_run_in_the_legend(tmp_path) -> None:
    fig = figures.quality_vs_cost_figure(runs())
    axes = fig.get_axes()
    assert [(ax.get_xscale(), ax.get_yscale()) for ax in axes] == [("log", "log")] * 2
    assert all(not ax.texts for ax in axes)  # no labels on the points
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == [f"{r}: {c:.3g} {u}" for r, c, u in
                      zip(ROUTES, runs()["cost_units"], runs()["cost_unit"], strict=True)]
    mmd = np.concatenate([c.get_offsets()[:, 1] for c in axes[0].collections])
    assert (mmd > 0).all() and mmd.min() == np.float64(5e-4) / 3  # MMD² ≤ 0 on the floor
    path = figures.quality_vs_cost(runs(), tmp_path / "q.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_training_figure_drops_the_short_last_epoch_and_shows_exact_ll() -> None:
    fig = figures.training_figure(history(test_ll=lambda s: -10 - 5 / np.sqrt(s),
                                          kl_data_model=lambda s: 0.1 + 1 / np.sqrt(s)))
    loss_ax, ll_ax, kl_ax = fig.get_axes()
    x = loss_ax.lines[0].get_xdata()
    assert x[-1] == 598 and set(np.diff(x)) == {23}  # equal epochs only
    assert ll_ax.lines[0].get_xdata()[-1] == 600  # the exact LL is exact at every record
    assert ll_ax.get_ylabel().startswith("nats per row") and kl_ax.get_ylabel().startswith("nats")
    assert all(ax.get_xlabel() == "optimiser step" for ax in (loss_ax, ll_ax, kl_ax))
    assert fig._suptitle.get_text() != "training"


def test_training_figure_without_recorded_ll_shows_the_final_model() -> None:
    fig = figures.training_figure(history(), final_test_ll=-29.3)
    assert len(fig.get_axes()) == 2
    point = fig.get_axes()[1].collections[0].get_offsets()
    assert point.tolist() == [[600.0, -29.3]]
