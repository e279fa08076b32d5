"""Sampler error against model error: a perfect sample is at the floor, a sampler of another
law is not; exact draws through the hidden layer follow the model's law; the report says
where the QPU row came from and costs runs in machine-independent units."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from flows import figures
from flows.stages.report import (
    cost_per_sample,
    markdown,
    model_record,
    provenance,
    provenance_note,
    reference_record,
)
from flows.yardstick import FLOOR_SD, yardstick
from rbmdiff import RBM
from rbmdiff.exact import binary_states
from rbmdiff.reference import exact_draws, perfect_sampler


def _model(n: int = 10, m: int = 4, seed: int = 0) -> RBM:
    return RBM.random(n, m, scale=1.0, seed=seed, dtype=torch.float64)


def test_exact_draws_through_the_hidden_layer_have_the_models_unit_means() -> None:
    """n = 24 > 20: drawn via h ~ p(h), v ~ p(v | h).  E[v] = Σ_h p(h) σ(b + Wh), exact by
    enumerating 2^4 hidden states; 20,000 draws, each mean within 4.5 standard errors (seed 0;
    24 units, so a false alarm is < 24 · 7e-6)."""
    rbm = _model(24, 4, seed=1)
    assert perfect_sampler(rbm, init_data=torch.zeros(1, 24)).exact
    v = exact_draws(rbm, 20_000, seed=0)
    h = binary_states(4, dtype=torch.float64)
    p = torch.softmax(-rbm.hidden_free_energy(h).double(), 0)
    mean = (p[:, None] * rbm.visible_mean(h).double()).sum(0)
    se = (mean * (1 - mean) / 20_000).sqrt()
    assert ((v.double().mean(0) - mean).abs() <= 4.5 * se).all()


def test_a_perfect_sample_is_at_the_floor_and_another_law_is_not() -> None:
    """Seeds fixed.  'exact': an independent exact sample of the model; 'hot': the model at
    β = ¼ (W, b, c scaled), a sampler that samples the wrong law; 'coin': v ~ Bernoulli(½)."""
    rbm = _model()
    g = torch.Generator().manual_seed(5)
    test = exact_draws(rbm, 400, seed=99)
    hot = RBM(rbm.W / 4, rbm.b / 4, rbm.c / 4)
    draws = {"exact": exact_draws(rbm, 1000, seed=123), "hot": exact_draws(hot, 1000, seed=7),
             "coin": torch.bernoulli(torch.full((1000, 10), 0.5), generator=g).double()}
    y = yardstick(rbm, test, test, draws, seed=0, reference_rows=4000)
    assert y["reference"]["exact"] and set(y["floor"]) == {"1000"}
    assert y["routes"]["exact"]["at_floor"]
    assert max(y["routes"]["exact"]["excess_sd"].values()) <= FLOOR_SD
    for route in ("hot", "coin"):
        assert not y["routes"][route]["at_floor"]
        assert y["routes"][route]["excess_sd"]["tv_exact"] > 10 * FLOOR_SD
    floor = y["floor"]["1000"]
    assert set(floor["to_model"]) == {"mmd", "corr_rmse", "mean_abs_err", "tv_exact"}
    assert abs(floor["to_model"]["mmd"]["mean"]) < 3 * floor["to_model"]["mmd"]["sd"] + 1e-4
    assert floor["to_data"]["mmd"]["sd"] > 0  # the noise of a sampled statistic at N = 1000


def test_the_floor_is_a_long_gibbs_run_when_no_layer_can_be_enumerated() -> None:
    rbm = RBM.random(22, 21, scale=0.1, seed=0, dtype=torch.float64)
    ref = perfect_sampler(rbm, init_data=torch.zeros(5, 22), burn_in=5)
    assert not ref.exact and "block Gibbs" in ref.method and ref.draw(30, 0).shape == (30, 22)


QPU_INFO = {"sampler": "qpu", "mock": True, "mock_kind": "annealer", "device": "cpu",
            "energy_check_ok": False, "energy_z": 53.44}


def test_qpu_provenance_says_mock_and_a_failed_check_before_and_after_the_fidelity_keys() -> None:
    p = provenance(QPU_INFO)
    assert p["mock"] and p["check_ok"] is False and p["check_worst"] == "mean energy z = 53.4"
    note = provenance_note("qpu", p)
    assert "mock (annealer)" in note and "FAILED (mean energy z = 53.4)" in note
    verdict = provenance({**QPU_INFO, "fidelity_ok": True, "fidelity_worst": "energy",
                          "fidelity_z": 1.23, "device": "MockDWaveSampler (thermal)"})
    assert verdict["check_ok"] is True and verdict["check_worst"] == "energy: z = 1.2"
    assert verdict["device"] == "MockDWaveSampler (thermal)"
    assert "passed" in provenance_note("qpu", verdict)
    assert provenance({"sampler": "gibbs"}) is None


def test_cost_per_sample_is_machine_independent() -> None:
    row = pd.Series({"cost_unit": "sweeps", "cost_units": 200.0, "multiply_adds": math.nan,
                     "n_visible": 64, "n_hidden": 16, "num_samples": 2000})
    assert cost_per_sample(row) == (200 * 64 * 16, "multiply-adds")
    gibbs = row.copy()
    gibbs["multiply_adds"] = 2 * 2000 * 200 * 64 * 16
    assert cost_per_sample(gibbs) == (2 * 200 * 64 * 16, "multiply-adds")
    qpu = pd.Series({"cost_unit": "qpu_access_us", "cost_units": 4000.0, "num_samples": 2000})
    assert cost_per_sample(qpu) == (2.0, "QPU µs")


def test_report_and_figure_show_floor_data_reference_and_the_mock() -> None:
    rbm = _model()
    test = exact_draws(rbm, 300, seed=9)
    draws = {"gibbs": exact_draws(rbm, 500, seed=1), "qpu": exact_draws(rbm, 500, seed=2)}
    yard = yardstick(rbm, test, test, draws, seed=0, reference_rows=2000)
    reference = reference_record(rbm, test, test)
    rows = [{**reference, "route": r, "sampler": r, "num_samples": 500} for r in draws]
    table = pd.DataFrame(rows)
    costs = {"gibbs": (1.6e5, "multiply-adds"), "qpu": (3.2, "QPU µs")}
    notes = [provenance_note("qpu", provenance(QPU_INFO))]
    fig = figures.quality_vs_cost_figure(table, yard=yard, costs=costs, reference=reference,
                                         notes=notes)
    left, right = fig.get_axes()
    labels = [t.get_text() for t in right.get_legend().get_texts()]
    assert "training data as samples: the data reference" in labels
    assert "qpu: 3.2 QPU µs per sample" in labels  # a line: no multiply-adds to place it at
    assert any(t.startswith("perfect sample of the model, N = 500")
               for t in (x.get_text() for x in left.get_legend().get_texts()))
    assert left.get_xlabel().startswith("multiply-adds per sample")
    assert any("mock (annealer)" in t.get_text() for t in fig.texts)
    text = markdown({"name": "t"}, model_record(rbm, test), table, reference, {}, yard=yard,
                    costs=costs, notes=notes)
    assert "## Samples against the model" in text and "sampler error" in text
    assert "floor: perfect sample, N = 500" in text and "mock (annealer)" in text
    assert "1.6e+05 multiply-adds" in text


@pytest.fixture(autouse=True)
def _threads():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_headline_carries_the_to_model_distance_and_the_noise() -> None:
    from flows.headline import headline

    spread = {"mmd": {"mean": 1e-5, "sd": 8e-5}}
    metrics = {"samplers": {"sde": {"mmd": 1e-4, "mmd_model": 1.2e-3},
                            "gibbs": {"mmd": 9e-4, "mmd_model": -4e-5}},
               "yardstick": {"floor": {"2000": {"to_model": spread,
                                                "to_data": {"mmd": {"mean": 1e-3, "sd": 4e-4}}}}}}
    out = headline(metrics)
    assert out["mmd_model"] == {"sde": 1.2e-3, "gibbs": -4e-5}
    assert out["mmd_sd"] == {"data": 4e-4, "model": 8e-5}
