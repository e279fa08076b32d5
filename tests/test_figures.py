"""The report's training figure, checked through its matplotlib objects: whole epochs only,
log-likelihood where known (quality against cost: tests/test_yardstick.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from flows import figures


def history(**extra) -> pd.DataFrame:
    """Epochs of 23 steps to step 598, then a 2-step last epoch with a noisy loss."""
    steps = np.r_[np.arange(23, 600, 23), 600]
    loss = 1 / np.sqrt(steps) + np.r_[np.zeros(len(steps) - 1), 0.2]
    return pd.DataFrame({"step": steps, "loss": loss, **{k: f(steps) for k, f in extra.items()}})


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


def test_training_figure_without_recorded_ll_puts_the_final_model_in_the_title() -> None:
    fig = figures.training_figure(history(), final_test_ll=-29.3)
    assert len(fig.get_axes()) == 1  # no panel spent on one dot
    assert "-29.300 nats per row" in fig._suptitle.get_text()
    assert fig.get_axes()[0].lines[0].get_xdata()[-1] == 598  # whole epochs only
