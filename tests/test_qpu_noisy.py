"""The QPU route on devices it was not written for: a noisy exact-Boltzmann device defined here
(β not told to the route, Gaussian control noise on every programmed h and J, per call), and
the annealer mock. Every run either matches the model or warns, naming the failed check; with
post-processing the reads match the model as well as Gibbs does."""

from __future__ import annotations

import warnings
from typing import ClassVar

import dimod
import numpy as np
import pytest
import torch

from rbmdiff import RBM, samplers
from rbmdiff.exact import empirical_law, total_variation, visible_law
from rbmdiff.samplers.qpu import QPUWarning
from tests.conftest import expected_tv

N = 4000  # reads per run


class NoisyBoltzmann(dimod.Sampler):
    """Exact reads ∝ exp(−beta · E'), E' the programmed SPIN problem with N(0, sigma²) added
    to every h and J, drawn afresh on each call (control errors). Unstructured: the route
    gives it the logical problem. Enumerates all 2^N states (N ≤ 16)."""

    parameters: ClassVar[dict] = {"num_reads": [], "seed": []}
    properties: ClassVar[dict] = {}

    def __init__(self, beta: float, sigma: float, noise_seed: int) -> None:
        self.beta, self.sigma, self.noise_seed, self.calls = beta, sigma, noise_seed, 0

    def sample(self, bqm, *, num_reads: int = 1, seed: int | None = None):
        bqm = bqm.change_vartype(dimod.SPIN, inplace=False)
        rng = np.random.default_rng([self.noise_seed, self.calls, seed or 0])
        self.calls += 1
        labels = list(bqm.variables)
        k = len(labels)
        h = np.array([bqm.get_linear(q) for q in labels]) + self.sigma * rng.normal(size=k)
        J = np.zeros((k, k))
        pos = {q: i for i, q in enumerate(labels)}
        for (u, v), val in bqm.quadratic.items():
            J[pos[u], pos[v]] = val + self.sigma * rng.normal()
        s = 2 * ((np.arange(2**k)[:, None] >> np.arange(k)) & 1) - 1.0
        e = s @ h + np.einsum("si,ij,sj->s", s, J, s)
        p = np.exp(-self.beta * (e - e.min()))
        rows = rng.choice(len(p), size=num_reads, p=p / p.sum())
        return dimod.SampleSet.from_samples_bqm((s[rows].astype(np.int8), labels), bqm)


def run(rbm: RBM, device, *, seed: int = 0, **kw):
    """-> (samples, QPU warnings raised)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = samplers.get("qpu", sampler=device, reuse_calibration=False, **kw).sample(
            rbm, N, seed=seed)
    return s, [str(w.message) for w in caught if issubclass(w.category, QPUWarning)]


@pytest.fixture(scope="module")
def model() -> tuple[RBM, torch.Tensor, float, float]:
    """An 8×6 RBM, its visible law, the exact-sample TV floor at N and Gibbs-1000's TV."""
    rbm = RBM.random(8, 6, scale=1.0, seed=11, dtype=torch.float64)
    _, p = visible_law(rbm)
    g = torch.Generator().manual_seed(0)
    v0 = torch.bernoulli(torch.full((N, 8), 0.5, dtype=torch.float64), generator=g)
    gibbs_tv = total_variation(empirical_law(rbm.gibbs(v0, 1000, generator=g)), p)
    return rbm, p, expected_tv(p, N), gibbs_tv


@pytest.mark.slow
def test_noisy_device_never_silently_wrong(model):
    """10 noise seeds at σ = 0.015, β_dev = 3.3 (unknown to the route): a run whose TV exceeds
    1.5 × floor + 0.01 always warns (fidelity test failed). At least one run must be caught,
    else the noise is too weak for this test to mean anything."""
    rbm, p, floor, _ = model
    caught = 0
    for k in range(10):
        s, warned = run(rbm, NoisyBoltzmann(3.3, 0.015, k), seed=k)
        tv = total_variation(empirical_law(s.v), p)
        assert s.info["device"] == "NoisyBoltzmann"
        assert s.info["fidelity_ok"] == (not any("fail the test" in w for w in warned))
        if tv > 1.5 * floor + 0.01:
            assert not s.info["fidelity_ok"], (k, tv, floor, s.info["fidelity_p"])
            assert any(s.info["fidelity_worst"] in w for w in warned)
            caught += 1
    assert caught >= 1


@pytest.mark.slow
def test_noiseless_device_passes(model):
    """The same device without noise samples the model: TV at the floor and the verdict passes
    (its false-alarm rate is alpha = 1 %, so 5 fixed seeds all pass)."""
    rbm, p, floor, _ = model
    for k in range(5):
        s, warned = run(rbm, NoisyBoltzmann(3.3, 0.0, k), seed=k)
        tv = total_variation(empirical_law(s.v), p)
        assert s.info["fidelity_ok"] and not warned, (k, s.info["fidelity_worst"])
        assert tv <= 1.5 * floor + 0.01
        assert s.info["target_reached"]


@pytest.mark.slow
def test_postprocessing_repairs_noisy_reads(model):
    """postprocess_sweeps=10 from the noisy device's reads: TV ≤ Gibbs-1000's + 0.02 on every
    seed, the raw verdict still reported beside the processed one, the raw reads kept."""
    rbm, p, _, gibbs_tv = model
    for k in range(10):
        s, _ = run(rbm, NoisyBoltzmann(3.3, 0.015, k), seed=k, postprocess_sweeps=10)
        tv = total_variation(empirical_law(s.v), p)
        assert tv <= gibbs_tv + 0.02, (k, tv, gibbs_tv)
        assert s.raw_v is not None and s.raw_v.shape == s.v.shape
        assert "raw_fidelity_ok" in s.info and s.info["postprocess_sweeps"] == 10


@pytest.mark.slow
def test_annealer_mock_never_silently_wrong(model):
    """The annealer mock (freeze-out, β unknown) on the same model at two sweep counts: each
    run matches the model or warns."""
    rbm, p, floor, _ = model
    for sweeps in (100, 1000):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            s = samplers.get("qpu", mock="annealer", mock_sweeps=sweeps,
                             reuse_calibration=False).sample(rbm, N, seed=1)
        tv = total_variation(empirical_law(s.v), p)
        warned = [w for w in caught if issubclass(w.category, QPUWarning)]
        assert tv <= 1.5 * floor + 0.01 or warned, (sweeps, tv, floor)
