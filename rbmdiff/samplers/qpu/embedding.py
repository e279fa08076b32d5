"""Embedding K_{n,m} (visible × hidden) on a solver graph, its JSON cache, and the identity
embedding of a hardware-native RBM (one qubit per unit, no chains)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from rbmdiff.choices import TOPOLOGIES
from rbmdiff.errors import NotEmbeddable, RbmdiffError
from rbmdiff.files import atomic_write_bytes
from rbmdiff.ising import hidden_labels, visible_labels

if TYPE_CHECKING:
    import networkx as nx


def shape_name(topology: str, shape: list[int]) -> str:
    """'P16' for pegasus [16], 'Z12 (t=4)' for zephyr [12, 4]."""
    if topology == "pegasus" and shape:
        return f"P{shape[0]}"
    if topology != "zephyr" or not shape:
        return f"{list(shape)}"
    return f"Z{shape[0]} (t={shape[1] if len(shape) > 1 else 4})"


def biclique_limit(topology: str, shape: list[int]) -> int | None:
    """k such that busclique embeds K_{n,m} on the perfect-yield graph iff max(n, m) ≤ k
    (its ``find_biclique_embedding`` serves K_{n,m} from a K_{k',k'} with k' ≥ max(n, m)).
    Closed forms, checked against busclique's tables in the tests:

        pegasus P_M (M ≥ 3):   k = 12(M − 1) − 8     (P8: 76, P16: 172)
        zephyr Z_{m,t}:        k = 2t(2m − 1)        (Z5: 72, Z12: 184 for t = 4)

    None when no closed form applies (small or unknown shapes).
    """
    if topology == "pegasus" and shape and shape[0] >= 3:
        return 12 * (shape[0] - 1) - 8
    if topology == "zephyr" and shape:
        m, t = shape[0], (shape[1] if len(shape) > 1 else 4)
        return 2 * t * (2 * m - 1)
    return None


LARGEST_BICLIQUE = 184  # zephyr Z12 (Advantage2), beyond pegasus P16's 172


def check_embeddable(n: int, m: int, topology: str, shape: list[int]) -> None:
    """Refuse K_{n,m} beyond the topology's biclique limit K_{k,k}, instantly (closed form)."""
    k = biclique_limit(topology, shape)
    if k is None or max(n, m) <= k:
        return
    beyond = (f"an RBM with {n} visible × {m} hidden units needs a K_{{{n},{m}}} minor, beyond "
              f"the biclique limit K_{{{k},{k}}} of {topology} {shape_name(topology, shape)}")
    if max(n, m) > LARGEST_BICLIQUE:  # no graph holds it: the advice is a native model
        raise NotEmbeddable(
            f"{beyond} and of the largest D-Wave QPU graph (zephyr Z12, K_{{{LARGEST_BICLIQUE},"
            f"{LARGEST_BICLIQUE}}}): no chains embed it; train a hardware-native model "
            "instead (rbmdiff train --topology zephyr --topology-shape [12,4]; BENCHMARKS.md "
            "\"QPU route\")")
    raise NotEmbeddable(f"{beyond}: use at most {k} units on each layer, or a larger topology "
                        "(pegasus P16 holds K_{172,172}, zephyr Z12 K_{184,184})")


def default_embedding_dir() -> Path:
    """$XDG_CACHE_HOME/rbmdiff/embeddings (default ~/.cache/rbmdiff/embeddings)."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "rbmdiff" / "embeddings"


def graph_id(graph: nx.Graph) -> str:
    """sha256 of the sorted qubit and coupler lists: the identity of a solver's working graph."""
    nodes = sorted(graph.nodes)
    edges = sorted(tuple(sorted(e)) for e in graph.edges)
    return hashlib.sha256(json.dumps([nodes, edges]).encode()).hexdigest()


def biclique_edges(n: int, m: int) -> list[tuple[str, str]]:
    """The n·m edges (v_i, h_j) of K_{n,m}."""
    return [(v, h) for v in visible_labels(n) for h in hidden_labels(m)]


def is_perfect_yield(graph: nx.Graph, topology: str, shape: list[int]) -> bool:
    """Whether ``graph`` is the whole (fabric-only) pegasus/zephyr graph of its shape."""
    from rbmdiff.topology import solver_graph

    full = solver_graph(topology, shape)
    return (len(graph), graph.number_of_edges()) == (len(full), full.number_of_edges())


UNBALANCED = 2  # K_{n,m} with max(n, m) ≥ this · min(n, m): also try minorminer
MINORMINER_TRIES = 10
MINORMINER_SEEDS = (0, 1, 2)  # fixed: the embedding depends on the graph and (n, m) only
SEARCH_VERSION = 2  # cached embeddings of another search version are searched again


def qubits(emb: dict) -> tuple[int, int]:
    """(longest chain, qubits in all): the order in which embeddings are preferred."""
    lengths = [len(c) for c in emb.values()]
    return max(lengths), sum(lengths)


def search_embedding(
    graph: nx.Graph, n: int, m: int, *, topology: str, shape: list[int], timeout: float,
    seed: int,
) -> tuple[dict[str, list[int]], str]:
    """Embed K_{n,m}: busclique's biclique embedding (shortest longest chain, every chain of
    one length); for an unbalanced K_{n,m}, where that wastes qubits on the smaller layer's
    side, minorminer's too, kept when its longest chain is no longer and it uses fewer qubits
    (K_{64,16} on pegasus P8: 264 qubits instead of 480, fewer chains to break); the best of
    ``MINORMINER_SEEDS``. On a defective graph without a biclique embedding, minorminer alone
    with ``seed``; on a graph of another kind (a user's structured sampler), minorminer alone.
    -> (embedding, method)."""
    from minorminer import find_embedding
    from minorminer.busclique import busgraph_cache

    known = topology in TOPOLOGIES  # busclique knows these graphs' structure
    emb = (busgraph_cache(graph).find_biclique_embedding(visible_labels(n), hidden_labels(m))
           if known else None)
    if emb:
        emb = {k: list(c) for k, c in emb.items()}
        if max(n, m) < UNBALANCED * min(n, m):
            return emb, "busclique"
        found = [find_embedding(biclique_edges(n, m), graph, timeout=timeout, random_seed=s,
                                tries=MINORMINER_TRIES) for s in MINORMINER_SEEDS]
        best = min((e for e in found if e), key=qubits, default=None)
        if best and qubits(best)[0] <= qubits(emb)[0] and qubits(best)[1] < qubits(emb)[1]:
            return {k: list(c) for k, c in best.items()}, "minorminer"
        return emb, "busclique"
    if known and is_perfect_yield(graph, topology, shape):  # busclique's tables are exact
        raise RbmdiffError(
            f"K_{{{n},{m}}} has no busclique biclique embedding on {topology} "
            f"{shape_name(topology, shape)}; use fewer units on the larger layer"
        )
    emb = find_embedding(biclique_edges(n, m), graph, timeout=timeout, random_seed=seed)
    if not emb:
        raise NotEmbeddable(
            f"no embedding of K_{{{n},{m}}} found on {topology} {shape_name(topology, shape)} "
            f"(busclique, then minorminer within {timeout:g} s); use fewer units on either layer"
        )
    return {k: list(c) for k, c in emb.items()}, "minorminer"


def load_or_find_embedding(
    graph: nx.Graph, n: int, m: int, *, topology: str, shape: list[int], folder: Path,
    timeout: float, seed: int,
) -> tuple[dict[str, list[int]], str, Path]:
    """The cached K_{n,m} embedding for this graph, or a new one (searched, then saved as JSON).
    -> (embedding, method, path); method is "cache" when the file was reused."""
    from dwave.embedding import is_valid_embedding

    gid = graph_id(graph)
    path = Path(folder) / f"{topology}-{'x'.join(map(str, shape))}-{gid[:16]}-K{n}x{m}.json"
    if path.is_file():
        try:
            record = json.loads(path.read_text())
            emb = {k: list(c) for k, c in record["embedding"].items()}
            if (record.get("graph_id") == gid and record.get("search") == SEARCH_VERSION
                    and is_valid_embedding(emb, biclique_edges(n, m), graph)):
                return emb, "cache", path
        except (ValueError, KeyError, TypeError, AttributeError):
            pass  # unreadable or stale: search again and overwrite
    emb, method = search_embedding(
        graph, n, m, topology=topology, shape=shape, timeout=timeout, seed=seed
    )
    record = {"topology": topology, "shape": list(shape), "graph_id": gid, "n_visible": n,
              "n_hidden": m, "method": method, "search": SEARCH_VERSION, "embedding": emb}
    atomic_write_bytes(path, json.dumps(record).encode())
    return emb, method, path


def check_layout(layout: dict, n: int, m: int) -> None:
    """Refuse a layout that does not place n visible and m hidden units on distinct qubits."""
    try:
        vis, hid = list(layout["visible_qubits"]), list(layout["hidden_qubits"])
        topology, shape = layout["topology"], list(layout["shape"])
    except (KeyError, TypeError):
        raise RbmdiffError("a native layout needs topology, shape, visible_qubits and "
                           "hidden_qubits (rbmdiff.topology.native_layout)") from None
    if (len(vis), len(hid)) != (n, m) or len(set(vis) | set(hid)) != n + m:
        raise RbmdiffError(f"the layout places {len(vis)}×{len(hid)} units on "
                           f"{len(set(vis) | set(hid))} qubits; the RBM is {n}×{m}")
    if not isinstance(topology, str) or not shape:
        raise RbmdiffError(f"bad layout topology {topology!r} / shape {shape!r}")


def native_embedding(
    layout: dict, graph: nx.Graph, weights: torch.Tensor
) -> dict[str, list[int]]:
    """The identity embedding {v_i: [visible_qubits[i]], h_j: [hidden_qubits[j]]} of a
    hardware-native RBM; refuses a qubit missing from ``graph`` or a nonzero weight W_ij whose
    qubits have no coupler."""
    vis, hid = list(layout["visible_qubits"]), list(layout["hidden_qubits"])
    missing = [q for q in vis + hid if q not in graph]
    if missing:
        raise RbmdiffError(f"the native layout uses qubits {missing[:5]} that the solver's "
                           "working graph lacks; retrain on this solver's graph")
    nz = torch.nonzero(weights.detach() != 0).tolist()
    bad = [(i, j) for i, j in nz if not graph.has_edge(vis[i], hid[j])]
    if bad:
        raise RbmdiffError(f"{len(bad)} nonzero weights (first W{bad[0]}) have no coupler on "
                           "the solver graph: the model is not native to it")
    return {**{f"v{i}": [int(q)] for i, q in enumerate(vis)},
            **{f"h{j}": [int(q)] for j, q in enumerate(hid)}}
