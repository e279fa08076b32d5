from __future__ import annotations

import math

import pytest
import torch

import rbmdiff.exact as exact
from rbmdiff import RBM, RbmdiffError
from rbmdiff.ais import log_partition_ais
from tests.conftest import brute_log_z


@pytest.mark.parametrize("shape", [(6, 4), (3, 7), (5, 5)])
def test_log_partition_equals_brute_force_over_both_layers(shape):
    rbm = RBM.random(*shape, scale=1.0, seed=sum(shape), dtype=torch.float64)
    assert exact.log_partition(rbm) == pytest.approx(brute_log_z(rbm), abs=1e-10)


def test_chunked_enumeration_matches_single_block(monkeypatch):
    rbm = RBM.random(9, 8, scale=0.7, seed=1, dtype=torch.float64)
    whole = exact.log_partition(rbm)
    u = torch.randn(3, 9, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    m_whole = exact.visible_mean_given_field(rbm, u)
    monkeypatch.setattr(exact, "CHUNK_BITS", 3)
    assert exact.log_partition(rbm) == pytest.approx(whole, abs=1e-10)
    torch.testing.assert_close(exact.visible_mean_given_field(rbm, u), m_whole)


def test_binary_states_enumerate_in_order():
    s = exact.binary_states(3)
    assert s.tolist()[5] == [1, 0, 1]
    torch.testing.assert_close(exact.state_index(s), torch.arange(8))


def test_log_likelihood_normalises(tiny_rbm):
    states, p = exact.visible_law(tiny_rbm)
    assert float(p.sum()) == pytest.approx(1.0, abs=1e-12)
    torch.testing.assert_close(exact.log_likelihood(tiny_rbm, states).exp(), p)


@pytest.mark.parametrize("shape", [(5, 3), (3, 6)])  # hidden and visible enumeration paths
def test_visible_mean_given_field_equals_brute_force(shape):
    rbm = RBM.random(*shape, scale=1.0, seed=7, dtype=torch.float64)
    u = torch.randn(4, shape[0], generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    states = exact.binary_states(shape[0], dtype=torch.float64)
    logw = -rbm.free_energy(states)[None] + u @ states.T
    expected = torch.softmax(logw, 1) @ states
    torch.testing.assert_close(exact.visible_mean_given_field(rbm, u), expected)


def test_kl_of_model_to_itself_from_exact_law(tiny_rbm):
    """KL(p‖p) is 0 when the 'data' are drawn in exact proportions: here, a uniform RBM."""
    flat = RBM(torch.zeros(4, 2, dtype=torch.float64), torch.zeros(4, dtype=torch.float64),
               torch.zeros(2, dtype=torch.float64))
    assert exact.kl_data_model(flat, exact.binary_states(4)) == pytest.approx(0.0, abs=1e-12)
    one = exact.binary_states(4)[[3]]
    assert exact.kl_data_model(flat, one) == pytest.approx(4 * math.log(2), abs=1e-12)


def test_ais_agrees_with_exact_log_z_within_its_standard_error():
    """16 hidden units: exact log Z by enumerating 2^12 visible states vs AIS.

    Tolerance: 3 reported standard errors (a 3σ band; the estimator's bias at 3,000
    temperatures is far below it), and the error itself must be small (< 0.05 nats)."""
    rbm = RBM.random(12, 16, scale=0.5, seed=11, dtype=torch.float64)
    truth = exact.log_partition(rbm)
    est, se = log_partition_ais(rbm, num_chains=300, num_betas=3000, seed=0)
    assert se < 0.05
    assert abs(est - truth) <= 3 * se + 1e-3, (est, truth, se)


def test_enumeration_limit_is_a_clear_error():
    rbm = RBM.random(30, 30, seed=0)
    with pytest.raises(RbmdiffError, match="log_partition_ais"):
        exact.log_partition(rbm)
