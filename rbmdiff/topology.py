"""Hardware-native RBMs: a bipartite subgraph of a D-Wave solver graph, one qubit per unit.

Pegasus and Zephyr qubits come in two orientations (vertical u = 0, horizontal u = 1); the
couplers between the orientations form a bipartite graph.  An RBM whose visible units sit on
vertical qubits and hidden units on horizontal ones, with W_ij allowed only where qubits i and j
are coupled, is programmed on the solver with no chains (docs/math.md §6a, "hardware-native RBMs").
"""

from __future__ import annotations

from typing import Any

import torch

from rbmdiff.choices import MOCK_SHAPES, TOPOLOGIES
from rbmdiff.errors import RbmdiffError

DEFAULT_SHAPES = MOCK_SHAPES  # the mock solvers' graphs


def solver_graph(topology: str, shape: list[int]) -> Any:
    """The perfect-yield pegasus P_M ([M]) or zephyr Z_{m,t} ([m, t]) graph, linear labels."""
    import dwave.graphs as dg

    if topology == "pegasus":
        return dg.pegasus_graph(shape[0])
    if topology == "zephyr":
        return dg.zephyr_graph(shape[0], shape[1] if len(shape) > 1 else 4)
    raise RbmdiffError(f"unknown topology {topology!r}; choose one of {TOPOLOGIES}")


def orientation(topology: str, shape: list[int], qubit: int) -> int:
    """u of a linear qubit label: 0 vertical, 1 horizontal."""
    import dwave.graphs as dg

    if topology == "pegasus":
        return dg.pegasus_coordinates(shape[0]).linear_to_pegasus(qubit)[0]
    t = shape[1] if len(shape) > 1 else 4
    return dg.zephyr_coordinates(shape[0], t).linear_to_zephyr(qubit)[0]


def native_layout(
    n_visible: int, n_hidden: int, topology: str = "zephyr", shape: list[int] | None = None
) -> tuple[torch.Tensor, dict]:
    """A connectivity mask (n_visible, n_hidden) of bools and its layout on the solver graph.

    Qubits are chosen greedily: start from the best-connected vertical qubit, then add, to either
    layer that is not yet full, the qubit with the most couplers to the other layer's chosen
    qubits (ties: visible first, then the lowest label).  Returns ``(mask, layout)`` with layout =
    ``{"topology", "shape", "visible_qubits", "hidden_qubits"}`` (plain types, saved in the
    model's meta); mask[i, j] is True where visible_qubits[i] couples to hidden_qubits[j].
    """
    if topology not in TOPOLOGIES:
        raise RbmdiffError(f"unknown topology {topology!r}; choose one of {TOPOLOGIES}")
    shape = list(shape or DEFAULT_SHAPES[topology])
    graph = solver_graph(topology, shape)
    side = {q: orientation(topology, shape, q) for q in graph.nodes}
    pools = [sorted(q for q in graph.nodes if side[q] == u) for u in (0, 1)]
    need = (n_visible, n_hidden)
    if n_visible > len(pools[0]) or n_hidden > len(pools[1]):
        raise RbmdiffError(
            f"a {n_visible}×{n_hidden} native RBM needs more qubits than {topology} {shape} has "
            f"({len(pools[0])} per orientation): use a larger shape (rbmdiff train "
            "--topology-shape) or fewer units")
    chosen: list[list[int]] = [[], []]
    links = [dict.fromkeys(pool, 0) for pool in pools]  # couplers to the other layer's chosen
    first = max(pools[0], key=lambda q: (sum(side[r] == 1 for r in graph[q]), -q))
    _take(graph, side, chosen, links, 0, first)
    while len(chosen[0]) < need[0] or len(chosen[1]) < need[1]:
        u, best = max(((u, q) for u in (0, 1) if len(chosen[u]) < need[u] for q in links[u]),
                      key=lambda uq: (links[uq[0]][uq[1]], -uq[0], -uq[1]))
        _take(graph, side, chosen, links, u, best)
    vis, hid = chosen
    mask = torch.tensor([[graph.has_edge(i, j) for j in hid] for i in vis], dtype=torch.bool)
    layout = {"topology": topology, "shape": shape, "visible_qubits": vis, "hidden_qubits": hid}
    return mask, layout


def _take(graph, side, chosen, links, u: int, qubit: int) -> None:
    """Add ``qubit`` to layer u and credit its neighbours in the other layer."""
    chosen[u].append(qubit)
    del links[u][qubit]
    for r in graph[qubit]:
        if side[r] != u and r in links[1 - u]:
            links[1 - u][r] += 1
