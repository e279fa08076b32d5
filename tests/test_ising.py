"""rbmdiff.ising against brute force: every joint state of a small RBM."""

from __future__ import annotations

import dimod
import numpy as np
import pytest
import torch

from rbmdiff import RBM, RbmdiffError
from rbmdiff.ising import split_samples, to_bqm, to_ising


@pytest.fixture
def rbm() -> RBM:
    return RBM.random(5, 4, scale=1.0, seed=11, dtype=torch.float64)


def all_states(bqm: dimod.BinaryQuadraticModel, n: int, m: int):
    """All 2^(n+m) states of ``bqm`` by ExactSolver, with their v (B, n) and h (B, m)."""
    ss = dimod.ExactSolver().sample(bqm)
    v, h = split_samples(ss, n, m, dtype=torch.float64)
    return ss, v, h


def test_bqm_energy_equals_rbm_energy_on_every_state(rbm):
    bqm = to_bqm(rbm)
    assert bqm.vartype is dimod.BINARY
    assert set(bqm.variables) == {f"v{i}" for i in range(5)} | {f"h{j}" for j in range(4)}
    ss, v, h = all_states(bqm, 5, 4)
    assert len(ss) == 2**9
    expected = rbm.energy(v, h).numpy()
    np.testing.assert_allclose(ss.record.energy, expected, rtol=0, atol=1e-12)
    # and bqm.energy on single samples, the contract's literal form
    for k in (0, 137, 511):
        sample = dict(zip(ss.variables, ss.record.sample[k].tolist(), strict=True))
        assert bqm.energy(sample) == pytest.approx(float(expected[k]), abs=1e-12)


def test_float32_rbm_gives_float64_bqm(rbm):
    bqm32 = to_bqm(rbm.to(torch.float32))
    W32 = rbm.W.to(torch.float32)
    assert bqm32.quadratic[("v2", "h3")] == float(-W32[2, 3])  # exact float32 value, in float64


def test_spin_form_differs_from_qubo_by_its_offset(rbm):
    h, J, offset, clipped = to_ising(rbm)
    assert not clipped
    spin = dimod.BinaryQuadraticModel.from_ising(h, J)  # offset left out
    ss, v, hid = all_states(spin, 5, 4)
    assert ss.vartype is dimod.SPIN
    e_rbm = rbm.energy(v, hid).numpy()
    diff = e_rbm - ss.record.energy
    np.testing.assert_allclose(diff, offset, rtol=0, atol=1e-12)  # the same constant everywhere


def test_prefactor_scales_the_ising_form(rbm):
    h1, J1, off1, _ = to_ising(rbm)
    h2, J2, off2, _ = to_ising(rbm, prefactor=0.25)
    assert h2 == pytest.approx({k: 0.25 * x for k, x in h1.items()}, abs=1e-15)
    assert J2 == pytest.approx({k: 0.25 * x for k, x in J1.items()}, abs=1e-15)
    assert off2 == pytest.approx(0.25 * off1, abs=1e-15)


def test_clipping_to_ranges_is_reported(rbm):
    h, J, _, clipped = to_ising(rbm, prefactor=10.0, h_range=(-1.0, 1.0), j_range=(-0.5, 0.5))
    assert clipped
    assert max(abs(x) for x in h.values()) == 1.0
    assert max(abs(x) for x in J.values()) == 0.5
    assert min(J.values()) >= -0.5
    _, _, _, clipped = to_ising(rbm, h_range=(-100.0, 100.0), j_range=(-100.0, 100.0))
    assert not clipped


def test_bad_prefactor_or_range_is_refused(rbm):
    with pytest.raises(RbmdiffError, match="prefactor"):
        to_ising(rbm, prefactor=0.0)
    with pytest.raises(RbmdiffError, match="j_range"):
        to_ising(rbm, j_range=(1.0, -1.0))


def test_split_samples_picks_columns_by_label():
    labels = ["h1", "v1", "h0", "v0"]  # any order
    arr = np.array([[1, 0, 0, 1], [0, 1, 1, 1]])
    v, h = split_samples((arr, labels), 2, 2)
    assert v.tolist() == [[1, 0], [1, 1]] and h.tolist() == [[0, 1], [1, 0]]
    v, h = split_samples((2 * arr - 1, labels), 2, 2)  # SPIN
    assert v.tolist() == [[1, 0], [1, 1]] and v.dtype == torch.float32
    agg = dimod.SampleSet.from_samples((arr, labels), dimod.BINARY, energy=[0.0, 0.0],
                                       num_occurrences=[3, 1])
    v, _ = split_samples(agg, 2, 2)  # rows repeated by num_occurrences
    assert v.tolist() == [[1, 0]] * 3 + [[1, 1]]
    with pytest.raises(RbmdiffError, match="lack"):
        split_samples((arr, labels), 3, 2)
