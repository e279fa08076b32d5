"""The QPU route's device seam (any dimod sampler), its calibration cache, the chain re-check
at the final prefactor, and its one-line refusals of bad settings."""

from __future__ import annotations

import json
import math
import warnings

import dimod
import pytest
import torch

from rbmdiff import RBM
from rbmdiff.errors import RbmdiffError
from rbmdiff.exact import empirical_law, total_variation, visible_law
from rbmdiff.samplers import get
from rbmdiff.samplers.qpu import QPUWarning
from tests.test_qpu_noisy import NoisyBoltzmann


@pytest.fixture
def rbm() -> RBM:
    return RBM.random(6, 4, scale=1.0, seed=3, dtype=torch.float64)


def quiet(sampler, rbm, n, seed=0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QPUWarning)
        return sampler.sample(rbm, n, seed=seed)


def test_unstructured_sampler_gets_the_logical_problem(rbm, tmp_path):
    # an exact device at β = 2.5, never told to the route: no embedding, no chains, the
    # calibrated reads at the exact law within sampling noise (E[TV] + 0.03 at 4,000 reads)
    dev = NoisyBoltzmann(2.5, 0.0, 0)
    s = get("qpu", sampler=dev, embedding_dir=tmp_path).sample(rbm, 4000, seed=0)
    info = s.info
    assert info["device"] == "NoisyBoltzmann" and info["embedding_method"] == "none"
    assert info["chain_break_fraction"] == 0 and info["mock"] is False
    assert info["prefactor"] == pytest.approx(1 / 2.5, rel=0.05)
    assert info["fidelity_ok"] and info["target_reached"]
    _, p = visible_law(rbm)
    assert total_variation(empirical_law(s.v), p) < 0.1


@pytest.mark.slow
def test_structured_sampler_is_embedded_on_its_own_graph(rbm, tmp_path):
    # simulated annealing on a user's graph (a king's graph, not a D-Wave topology the route
    # knows): minorminer embeds K_{6,4}; ranges default to Advantage's
    import networkx as nx
    from dwave.samplers import SimulatedAnnealingSampler

    g = nx.convert_node_labels_to_integers(nx.grid_2d_graph(8, 8))
    g.add_edges_from((8 * r + c, 8 * (r + 1) + c + d) for r in range(7) for c in range(8)
                     for d in (-1, 1) if 0 <= c + d < 8)
    dev = dimod.StructureComposite(SimulatedAnnealingSampler(), list(g.nodes), list(g.edges))
    s = quiet(get("qpu", sampler=dev, embedding_dir=tmp_path), rbm, 500)
    info = s.info
    assert info["device"] == "StructureComposite" and info["embedding_method"] == "minorminer"
    assert info["prefactor"] <= info["prefactor_max"] and info["num_qubits"] >= 10
    assert isinstance(info["fidelity_ok"], bool) and info["fidelity_stats"] > 0
    assert len(info["sampler_seeds"]) == info["qpu_calls"]  # each call seeded


def test_any_non_dimod_object_is_refused():
    with pytest.raises(RbmdiffError, match=r"must be a dimod\.Sampler"):
        get("qpu", sampler=object())


def test_annealing_time_is_refused_by_a_device_that_ignores_it(rbm, tmp_path):
    with pytest.raises(RbmdiffError, match="takes no annealing_time"):
        get("qpu", sampler=NoisyBoltzmann(2.0, 0.0, 0), annealing_time=20.0,
            embedding_dir=tmp_path).sample(rbm, 10, seed=0)


@pytest.mark.parametrize(("kw", "match"), [
    ({"beta_eff": 0}, "beta_eff must be a positive number"),
    ({"beta_eff": float("nan")}, "beta_eff must be a positive number"),
    ({"chain_strength_factor": 0}, "chain_strength_factor must be a positive number"),
    ({"mock_shape": [1]}, "mock_shape"),
    ({"mock_shape": [5], "topology": "zephyr"}, None),  # t defaults to 4: accepted
    ({"postprocess_sweeps": -1}, "postprocess_sweeps"),
    ({"alpha": 1.5}, "alpha"),
    ({"calibration_reads": 0}, "calibration_reads"),
    ({"chain_strength": float("inf")}, "chain_strength must be positive"),
])
def test_bad_settings_are_one_line_errors(kw, match):
    if match is None:
        get("qpu", **kw)
        return
    with pytest.raises(RbmdiffError, match=match) as err:
        get("qpu", **kw)
    assert "\n" not in str(err.value)


def test_nan_written_into_the_model_after_the_sampler_is_built(rbm, tmp_path):
    sampler = get("qpu", mock="thermal", embedding_dir=tmp_path)
    with torch.no_grad():
        rbm.W[0, 0] = math.nan
    with pytest.raises(RbmdiffError, match="NaN or inf"):
        sampler.sample(rbm, 10, seed=0)


def test_calibration_is_cached_and_reused_and_invalidated(rbm, tmp_path):
    dev = NoisyBoltzmann(2.5, 0.0, 0)
    first = get("qpu", sampler=dev, embedding_dir=tmp_path).sample(rbm, 1000, seed=0)
    assert not first.info["calibration_reused"] and first.info["calibration_reads"] > 0
    assert list((tmp_path / "calibration").glob("*.json"))
    again = get("qpu", sampler=dev, embedding_dir=tmp_path).sample(rbm, 1000, seed=1)
    assert again.info["calibration_reused"] and again.info["calibration_reads"] == 0
    assert again.info["prefactor"] == first.info["prefactor"]
    other = RBM(rbm.W * 1.01, rbm.b, rbm.c)  # another model: calibrated again
    assert not get("qpu", sampler=dev, embedding_dir=tmp_path).sample(
        other, 1000, seed=0).info["calibration_reused"]
    fresh = get("qpu", sampler=dev, embedding_dir=tmp_path, reuse_calibration=False)
    assert not fresh.sample(rbm, 1000, seed=0).info["calibration_reused"]


def test_a_damaged_calibration_record_is_calibrated_again(rbm, tmp_path):
    dev = NoisyBoltzmann(2.5, 0.0, 0)
    get("qpu", sampler=dev, embedding_dir=tmp_path).sample(rbm, 1000, seed=0)
    for path in (tmp_path / "calibration").glob("*.json"):
        path.write_text("{torn")
    s = get("qpu", sampler=dev, embedding_dir=tmp_path).sample(rbm, 1000, seed=0)
    assert not s.info["calibration_reused"]


@pytest.mark.slow
def test_chain_strength_is_rechecked_at_the_final_prefactor(tmp_path):
    # annealer mock at mock_beta 9: calibration lowers p from 1/5, so the chain coupling
    # p · cs₁ weakens; the final reads' breaks are checked and the rung climbed, so the reads
    # returned hold their chains (< 1 % broken), or the run warns.
    from rbmdiff.samplers.qpu.sampler import BROKEN_WARN

    rbm = RBM.random(12, 9, scale=1.0, seed=5, dtype=torch.float64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = get("qpu", mock="annealer", mock_beta=9.0, embedding_dir=tmp_path).sample(
            rbm, 1000, seed=0)
    info = s.info
    finals = [c for c in info["calibration"] if c.get("final")]
    assert all(c["chain_break_fraction"] > BROKEN_WARN for c in finals)
    assert info["chain_break_fraction"] <= BROKEN_WARN or any(
        "chains broke" in str(w.message) for w in caught)


@pytest.mark.filterwarnings("ignore::rbmdiff.samplers.qpu.QPUWarning")  # an optimiser
def test_cli_takes_a_users_sampler(rbm, tmp_path, capsys):
    # --set sampler=MODULE:NAME: a class built with no arguments
    from rbmdiff.cli import main

    model = tmp_path / "m.pt"
    rbm.save(model)
    out = tmp_path / "s.parquet"
    argv = ["sample", "--model", str(model), "--sampler", "qpu", "--num-samples", "200",
            "--out", str(out), "--quiet",
            "--set", "sampler=dwave.samplers:SimulatedAnnealingSampler",
            "--set", f"embedding_dir={json.dumps(str(tmp_path))}"]
    assert main(argv) == 0, capsys.readouterr().err
    import pyarrow.parquet as pq

    assert pq.read_table(out).num_rows == 200
    capsys.readouterr()
    assert main([*argv[:-4], "--set", "sampler=nope:Nothing"]) != 0  # no exception escapes
    err = capsys.readouterr().err.strip()
    assert "cannot import" in err and "\n" not in err


@pytest.mark.parametrize("beta_dev", [0.05, 2.5])
def test_too_hot_first_guess_is_climbed_out_of(rbm, tmp_path, beta_dev):
    # a first guess a billion times too small (beta_eff=1e9: p = 1e-9): the reads are uniform,
    # β_model ≈ 0 or below; the search raises p tenfold a round (never lowers it) until it
    # brackets β = 1, and β_model is finite throughout
    dev = NoisyBoltzmann(beta_dev, 0.0, 0)
    s = get("qpu", sampler=dev, beta_eff=1e9, calibration_rounds=14,
            embedding_dir=tmp_path).sample(rbm, 2000, seed=0)
    ps = [c["prefactor"] for c in s.info["calibration"]]
    assert all(math.isfinite(c["beta_model"]) for c in s.info["calibration"])
    assert ps[1] == pytest.approx(10 * ps[0])
    assert s.info["target_reached"] and s.info["prefactor"] == pytest.approx(1 / beta_dev,
                                                                                rel=0.1)


def test_native_model_records_the_topology_it_ran_on(tmp_path):
    from rbmdiff.topology import native_layout

    mask, layout = native_layout(6, 4, "zephyr")
    dense = RBM.random(6, 4, scale=1.0, seed=3, dtype=torch.float64)
    rbm = RBM(dense.W * mask, dense.b, dense.c, mask=mask, meta={"layout": layout})
    s = quiet(get("qpu", mock="thermal", embedding_dir=tmp_path), rbm, 200)
    assert s.info["topology"] == "zephyr" and s.info["params"]["topology"] == "zephyr"


def test_a_dense_mnist_model_is_refused_in_one_line_naming_the_biclique_limit(tmp_path, capsys):
    # 784 visible units exceed every D-Wave graph's biclique limit (Z12: K_{184,184}): the
    # route refuses before any search, in one line that points at the hardware-native route
    from rbmdiff.cli import main

    model = tmp_path / "d.pt"
    RBM.random(784, 20, seed=0).save(model)
    for extra in ([], ["--set", "topology=zephyr", "--set", "mock_shape=[12,4]"]):
        code = main(["sample", "--model", str(model), "--sampler", "qpu", "--num-samples",
                     "100", "--out", str(tmp_path / "d.parquet"), "--quiet", *extra])
        err = capsys.readouterr().err.strip()
        assert code == 2 and "\n" not in err, err
        assert "K_{784,20}" in err and "biclique limit" in err and "K_{184,184}" in err
        assert "--topology zephyr --topology-shape [12,4]" in err


def test_mean_statistics_match_the_per_read_table():
    # the verdict's means without the (B, n·m) table (10 GB for 2,000 reads of 784×840)
    from rbmdiff.samplers.qpu.check import mean_statistics, statistics

    rbm = RBM.random(7, 5, scale=1.0, seed=1, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    v = torch.bernoulli(torch.full((300, 7), 0.4, dtype=torch.float64), generator=g)
    h = torch.bernoulli(torch.full((300, 5), 0.6, dtype=torch.float64), generator=g)
    f = statistics(rbm, v, h)
    assert torch.allclose(torch.from_numpy(mean_statistics(rbm, v, h)),
                          torch.from_numpy(f.mean(0)), atol=1e-12)
