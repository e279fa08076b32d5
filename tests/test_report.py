"""The report's model section and column notes: the exact test log-likelihood is the one
rbmdiff.exact (and brute force over every joint state) gives for the same model."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from flows.stages.report import (
    binary_rows,
    markdown,
    model_record,
    reference_record,
    undefined_columns,
)
from rbmdiff import RBM, exact
from tests.conftest import brute_log_z


def test_model_ll_is_exact_on_binary_rows() -> None:
    rbm = RBM.random(6, 4, scale=1.0, seed=3, dtype=torch.float64)
    test = torch.bernoulli(torch.full((50, 6), 0.3), generator=torch.Generator().manual_seed(1))
    record = model_record(rbm, test)
    assert record["log_z"] == pytest.approx(brute_log_z(rbm), abs=1e-10)
    expected = float(exact.log_likelihood(rbm, test.double()).mean())
    assert record["test_log_likelihood"] == pytest.approx(expected, abs=1e-10)
    assert record["test_data"] == "binary rows as they are"


def test_model_ll_on_grey_rows_is_exact_on_their_binary_draw() -> None:
    """Digits' shape: 64 visible, 16 hidden (log Z by enumerating the hidden layer)."""
    rbm = RBM.random(64, 16, scale=0.3, seed=0, dtype=torch.float64)
    grey = torch.rand(40, 64, generator=torch.Generator().manual_seed(2))
    record = model_record(rbm, grey)
    v = torch.bernoulli(grey.double(), generator=torch.Generator().manual_seed(0))
    assert torch.equal(binary_rows(grey)[0], v)
    expected = float(exact.log_likelihood(rbm, v).mean())
    assert record["test_log_likelihood"] == pytest.approx(expected, abs=1e-9)
    assert "Bernoulli" in record["test_data"]


def test_columns_say_what_is_undefined_and_the_summary_omits_them() -> None:
    assert undefined_columns(9, 4, True) == {}
    why = undefined_columns(64, 16, False)
    assert set(why) == {"tv_exact", "test_log_likelihood"} and "n = 64" in why["tv_exact"]
    assert "grey" in why["test_log_likelihood"]
    assert set(undefined_columns(64, 32, True)) == {"tv_exact", "test_log_likelihood"}

    rbm = RBM.random(64, 16, scale=0.3, seed=0, dtype=torch.float64)
    g = torch.Generator().manual_seed(3)
    train, test = torch.rand(80, 64, generator=g), torch.rand(40, 64, generator=g)
    model, reference = model_record(rbm, test), reference_record(rbm, train, test)
    table = pd.DataFrame([{**reference, "route": "gibbs", "cost_units": 1e6,
                           "cost_unit": "multiply_adds", "wall_s": 1.5}])
    text = markdown({"name": "digits"}, model, table, reference, why)
    header = next(line for line in text.splitlines() if line.startswith("| route"))
    assert "tv_exact" not in header and "mmd" in header
    assert f"**{model['test_log_likelihood']:.3f} nats per row**" in text
    assert "`tv_exact`: not defined here" in text
