"""The QPU route offline, on MockDWaveSampler (Pegasus and Zephyr); a live test when a token exists.

No test here reaches the network: every mock test passes ``mock=True``; the live test skips
without a token. busclique's and our embedding caches live in temporary folders.
"""

from __future__ import annotations

import json
import math
import time

import dimod
import pytest
import torch

import rbmdiff.samplers.qpu as qpu
import rbmdiff.samplers.qpu.embedding as qpu_embedding
import rbmdiff.samplers.qpu.solvers as qpu_solvers
from rbmdiff import RBM, RbmdiffError
from rbmdiff.exact import empirical_law, total_variation, visible_law
from rbmdiff.samplers import get
from rbmdiff.samplers.qpu import QPUSampler
from rbmdiff.samplers.qpu.scaling import CHAIN_LADDER
from tests.test_anneal import tv_noise

FAST = {"mock": True, "mock_sweeps": 100, "calibration_reads": 500, "num_bootstrap": 50}


@pytest.fixture
def rbm() -> RBM:
    """8×6: a balanced K_{8,6}, embedded by busclique with 2-qubit chains on pegasus P8."""
    return RBM.random(8, 6, scale=1.0, seed=5, dtype=torch.float64)


@pytest.mark.parametrize("topology", ["pegasus", "zephyr"])
def test_mock_reads_are_binary_with_full_info(rbm, topology, tmp_path):
    s = QPUSampler(topology=topology, embedding_dir=tmp_path, **FAST).sample(rbm, 700, seed=3)
    assert s.v.shape == (700, 8) and s.v.dtype == torch.float32
    assert set(s.v.unique().tolist()) <= {0.0, 1.0}
    info = s.info
    assert info["solver"] == "mock" and info["mock"] is True and info["topology"] == topology
    assert 0.0 <= info["chain_break_fraction"] <= 1.0
    assert info["beta_eff_low"] <= info["beta_eff"] <= info["beta_eff_high"]
    assert math.isfinite(info["beta_eff"]) and info["beta_eff"] > 0
    assert 1 <= info["chain_length_mean"] <= info["chain_length_max"]
    assert info["chain_length_max"] == (2 if topology == "pegasus" else 1)  # chains on P8
    assert info["num_qubits"] >= 8 + 6
    assert info["cost_unit"] == "qpu_access_us"
    assert info["cost_units"] == pytest.approx(info["timing"]["qpu_access_time"])
    assert info["cost_units"] > 0
    assert info["mock_kind"] == "annealer"  # mock=True: the annealer mock
    # at most 4 search rounds, plus the chain-strength rungs probed beyond the first
    assert 1 <= info["rounds"] == len(info["calibration"]) <= 4 + len(CHAIN_LADDER) - 1
    assert info["qpu_calls"] == info["rounds"] + 1  # calibration rounds + 1 final call
    assert info["calibration"][0]["prefactor"] == pytest.approx(1 / 5.0)  # 1 / mock_beta
    assert info["prefactor"] <= info["prefactor_max"]
    assert info["clipped"] is False
    assert info["beta_eff"] == pytest.approx(info["beta_model"] / info["prefactor"])
    assert info["energy_reference"] == "exact" and math.isfinite(info["energy_z"])
    assert info["qpu_access_time"] == info["cost_units"]
    json.dumps(info)  # the pipeline stores info as JSON


def test_embedding_is_cached_and_reused_without_search(rbm, tmp_path, monkeypatch):
    sampler = QPUSampler(embedding_dir=tmp_path, calibration_rounds=0, **FAST)
    first = sampler.sample(rbm, 50, seed=0)
    assert first.info["embedding_method"] == "busclique"
    files = list(tmp_path.glob("*.json"))
    assert len(files) == 1
    record = json.loads(files[0].read_text())
    assert (record["n_visible"], record["n_hidden"], record["topology"]) == (8, 6, "pegasus")

    def no_search(*args, **kwargs):
        raise AssertionError("the embedding was searched for a second time")

    monkeypatch.setattr(qpu_embedding, "search_embedding", no_search)
    sampler = QPUSampler(embedding_dir=tmp_path, calibration_rounds=0, **FAST)  # a new run
    second = sampler.sample(rbm, 50, seed=1)
    assert second.info["embedding_method"] == "cache"
    assert second.info["num_qubits"] == first.info["num_qubits"]
    solver = sampler.embed(8, 6)  # the public seam the pipeline's embed stage uses
    assert solver.method == "cache" and solver.info()["num_qubits"] == first.info["num_qubits"]
    # a record from another version of the search is searched again (and overwritten)
    record = json.loads(files[0].read_text())
    files[0].write_text(json.dumps({**record, "search": record["search"] - 1}))
    monkeypatch.undo()
    assert sampler.embed(8, 6).method == "busclique"
    assert json.loads(files[0].read_text())["search"] == record["search"]


@pytest.mark.parametrize(
    ("topology", "shape", "limit"),
    [("pegasus", None, "K_{76,76}"), ("pegasus", [16], "K_{172,172}"),
     ("zephyr", None, "K_{72,72}")],
)
def test_oversized_rbm_fails_fast_naming_the_limit(topology, shape, limit, tmp_path,
                                                    monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("work started on an RBM that cannot embed")

    monkeypatch.setattr(qpu_embedding, "search_embedding", no_work)
    monkeypatch.setattr(qpu_solvers, "mock_solver", no_work)
    big = RBM.random(784, 200, seed=0)
    sampler = QPUSampler(topology=topology, mock_shape=shape, embedding_dir=tmp_path, **FAST)
    start = time.perf_counter()
    with pytest.raises(RbmdiffError, match=r"K_\{784,200\}") as err:
        sampler.sample(big, 10, seed=0)
    assert time.perf_counter() - start < 1.0
    assert limit in str(err.value) and topology in str(err.value)


def test_an_unbalanced_biclique_takes_the_embedding_with_fewer_qubits():
    """K_{64,16} on pegasus P8: busclique's chains are all 6 qubits (480 in all); minorminer's
    have the same longest chain with fewer qubits, and are kept. A balanced K_{16,16} keeps
    busclique's without a search."""
    from rbmdiff.topology import solver_graph

    graph = solver_graph("pegasus", [8])
    emb, method = qpu_embedding.search_embedding(graph, 64, 16, topology="pegasus", shape=[8],
                                                 timeout=60, seed=0)
    assert method == "minorminer"
    assert qpu_embedding.qubits(emb)[0] <= 6 and qpu_embedding.qubits(emb)[1] < 480
    from dwave.embedding import is_valid_embedding

    assert is_valid_embedding(emb, qpu_embedding.biclique_edges(64, 16), graph)
    _, method = qpu_embedding.search_embedding(graph, 16, 16, topology="pegasus", shape=[8],
                                               timeout=60, seed=0)
    assert method == "busclique"


def test_closed_form_limits_match_busclique_tables():
    # busclique embeds K_{n,m} iff max(n, m) ≤ k on a perfect-yield graph: K_{k,k} is found,
    # K_{k+1,1} is not.
    import dwave.graphs as dg
    from minorminer.busclique import busgraph_cache

    for topology, shape, graph in [("pegasus", [4], dg.pegasus_graph(4)),
                                   ("pegasus", [6], dg.pegasus_graph(6)),
                                   ("zephyr", [2, 4], dg.zephyr_graph(2, 4)),
                                   ("zephyr", [3, 2], dg.zephyr_graph(3, 2))]:
        cache = busgraph_cache(graph)
        k = qpu.biclique_limit(topology, shape)
        assert len(cache.largest_balanced_biclique()) == 2 * k
        assert cache.find_biclique_embedding(k, k)
        assert not cache.find_biclique_embedding(k + 1, 1)


@pytest.mark.parametrize(("topology", "mock_beta"), [("pegasus", 2.0), ("zephyr", 6.0)])
def test_thermal_mock_route_after_calibration(topology, mock_beta, tmp_path):
    # A 6×4 RBM embeds with single-qubit chains on P8 and Z5; the thermal mock's reads are
    # exactly Boltzmann at mock_beta on the programmed problem. Starting from the guess β = 1,
    # calibration must find β_eff = mock_beta and program E / β_eff; the visible law then
    # matches p(v) up to (i) sampling noise of N reads, E[TV] + 6 sd (tv_noise: 64 states,
    # N = 20,000 -> 0.020 + 0.013), and (ii) the error left in β: TV(p_1, p_β) for β at the
    # ends of the reported 95% interval of β_model, computed exactly. seed fixed: 4.
    rbm = RBM.random(6, 4, scale=1.0, seed=3, dtype=torch.float64)
    n = 20_000
    s = QPUSampler(topology=topology, mock="thermal", mock_beta=mock_beta, beta_eff=1.0,
                   calibration_reads=5000, embedding_dir=tmp_path).sample(rbm, n, seed=4)
    info = s.info
    assert info["chain_length_max"] == 1 and info["chain_break_fraction"] == 0.0
    assert info["beta_eff"] == pytest.approx(mock_beta, rel=0.05)
    assert info["prefactor"] == pytest.approx(1 / mock_beta, rel=0.05)
    assert info["beta_model"] == pytest.approx(1.0, rel=0.05)
    _, p = visible_law(rbm)
    mean, sd = tv_noise(p, n)
    beta_error = max(
        total_variation(p, visible_law(RBM(b * rbm.W, b * rbm.b, b * rbm.c))[1])
        for b in (info["beta_model_low"], info["beta_model_high"])
    )
    bound = mean + 6 * sd + beta_error
    tv = total_variation(empirical_law(s.v), p)
    assert tv <= bound, f"TV {tv:.4f} > {bound:.4f} (β_model {info['beta_model']:.3f})"


def test_beta_estimate_recovers_a_known_temperature():
    # Reads of a 10-spin Ising problem by simulated annealing ending at β = 2 (thermal there):
    # the pseudo-likelihood estimate is within 5% and its 95% bootstrap interval holds it.
    from dwave.samplers import SimulatedAnnealingSampler

    g = torch.Generator().manual_seed(0)
    h = {i: 0.5 * float(torch.randn(1, generator=g)) for i in range(10)}
    J = {(i, j): 0.3 * float(torch.randn(1, generator=g)) for i in range(5) for j in range(5, 10)}
    ss = SimulatedAnnealingSampler().sample(
        dimod.BinaryQuadraticModel.from_ising(h, J), num_reads=10_000, num_sweeps=200,
        beta_range=(0.1, 2.0), seed=1,
    )
    beta, low, high = qpu.estimate_beta(h, J, ss, num_bootstrap=200, seed=0)
    assert beta == pytest.approx(2.0, rel=0.05)
    assert low < beta < high and high - low < 0.2 * beta


def test_auto_selection_falls_back_to_mock_and_explains(rbm, tmp_path, monkeypatch):
    monkeypatch.setattr(qpu_solvers, "has_token", lambda: False)
    s = get("qpu", embedding_dir=tmp_path, mock_sweeps=50, calibration_rounds=0).sample(
        rbm, 20, seed=0)
    assert s.info["mock"] is True and "no D-Wave token" in s.info["mock_reason"]
    assert s.info["mock_kind"] == "annealer"
    with pytest.raises(RbmdiffError, match="token"):
        QPUSampler(mock=False, embedding_dir=tmp_path).sample(rbm, 20, seed=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"topology": "chimera"}, "topology"), ({"mock_beta": -1.0}, "mock_beta"),
     ({"calibration_rounds": -1}, "calibration_rounds"), ({"chain_strength": 0.0}, "chain"),
     ({"mock": "ideal"}, "mock"), ({"chain_strength": "strong"}, "rule")],
)
def test_bad_parameters_are_refused(kwargs, match):
    with pytest.raises(RbmdiffError, match=match):
        QPUSampler(**kwargs)


def test_chain_strength_beyond_the_solver_is_refused(rbm, tmp_path):
    # the mock's extended_j_range [-2, 1] allows chain couplings down to -2
    with pytest.raises(RbmdiffError, match="extended_j_range"):
        QPUSampler(chain_strength=2.5, embedding_dir=tmp_path, **FAST).sample(rbm, 10, seed=0)


@pytest.mark.live_qpu
def test_live_qpu_reads(tmp_path):
    if not qpu.has_token():
        pytest.skip("no D-Wave token configured (set DWAVE_API_TOKEN or run `dwave config create`)")
    rbm = RBM.random(4, 3, scale=1.0, seed=0, dtype=torch.float64)
    s = QPUSampler(mock=False, calibration_reads=200, embedding_dir=tmp_path).sample(
        rbm, 200, seed=0)
    assert s.v.shape == (200, 4) and s.info["mock"] is False
    assert s.info["cost_units"] > 0 and math.isfinite(s.info["beta_eff"])
