from __future__ import annotations

import pytest
import torch

from rbmdiff import RBM, RbmdiffError
from rbmdiff.data import load_dataset
from rbmdiff.topology import native_layout, orientation, solver_graph
from rbmdiff.train import train

BAS = load_dataset("bas-3x3").train


@pytest.mark.parametrize("topology", ["zephyr", "pegasus"])
def test_native_layout_is_a_bipartite_subgraph_of_the_solver(topology):
    """Every allowed weight is a coupler between a vertical and a horizontal qubit, every
    coupler between chosen qubits is allowed, and no qubit is used twice."""
    mask, layout = native_layout(16, 16, topology)
    graph = solver_graph(topology, layout["shape"])
    vis, hid = layout["visible_qubits"], layout["hidden_qubits"]
    assert len(set(vis) | set(hid)) == 32
    assert {orientation(topology, layout["shape"], q) for q in vis} == {0}
    assert {orientation(topology, layout["shape"], q) for q in hid} == {1}
    for i, p in enumerate(vis):
        for j, q in enumerate(hid):
            assert bool(mask[i, j]) == graph.has_edge(p, q)
    # the greedy layout keeps most of K_{16,16}: Zephyr's 16 couplers per qubit give 160
    assert int(mask.sum()) >= {"zephyr": 160, "pegasus": 120}[topology]


def test_native_layout_refuses_too_many_units():
    with pytest.raises(RbmdiffError, match="more qubits"):
        native_layout(5000, 4, "zephyr")


@pytest.mark.parametrize("method, kw", [
    ("ml", {}), ("cd", {}), ("pcd", {}), ("dsm", {"m_method": "exact"}),
    ("dsm", {"m_method": "meanfield"}),
])
def test_masked_weights_stay_exactly_zero(method, kw, tmp_path):
    mask, layout = native_layout(9, 6, "zephyr")
    assert 0 < int(mask.sum()) < 54
    result = train(BAS, n_hidden=6, method=method, steps=40, batch_size=14, lr=0.05, seed=0,
                   mask=mask, **kw)
    rbm = result.rbm
    assert torch.equal(rbm.mask, mask)
    assert (rbm.W[~mask] == 0).all()
    assert (rbm.W[mask] != 0).all()          # the allowed weights did train
    rbm.meta["layout"] = layout
    rbm.save(tmp_path / "m.pt")
    back = RBM.load(tmp_path / "m.pt")
    assert torch.equal(back.mask, mask) and back.meta["layout"] == layout


def test_rbm_refuses_weights_outside_its_mask():
    mask = torch.eye(3, dtype=torch.bool)
    with pytest.raises(RbmdiffError, match="outside the connectivity mask"):
        RBM(torch.ones(3, 3), torch.zeros(3), torch.zeros(3), mask=mask)
