"""embed: minor-embed K_{n,m} (visible × hidden) on the QPU's graph once, cached as JSON.

Without a D-Wave token (or with ``embed.mock: true``) the graph is the mock solver's
(``embed.topology``, ``embed.mock_shape``); with one it is the real solver's.  The sample
stage's QPU route reads the embedding, and which solver it was made for, from here.
"""

from __future__ import annotations

import numpy as np

from flows.artefacts import fresh_dir, read_json, write_json, wrote
from flows.config import EmbedParams
from flows.layout import Layout
from rbmdiff.samplers.qpu import QPUSampler, check_embeddable, load_or_find_embedding


def embed(p: EmbedParams, n_hidden: int, layout: Layout) -> dict:
    """Write models/embedding/{<graph>-K{n}x{m}.json, solver.json}; -> solver.json's content.

    Refuses an RBM beyond the topology's biclique limit before building anything.
    """
    n = int(read_json(layout.dataset_info)["n_visible"])
    sampler = QPUSampler(mock=p.mock, topology=p.topology, mock_shape=p.mock_shape,
                         embedding_dir=layout.embedding, embedding_timeout=p.timeout)
    # TODO(library): a public QPUSampler.embed(n, m, seed=) would replace these two private calls.
    use_mock, reason = sampler._use_mock()
    if use_mock:
        check_embeddable(n, n_hidden, p.topology, p.mock_shape)
    child = sampler._child(use_mock)
    topo = child.properties["topology"]
    topology, shape = topo["type"], list(topo["shape"])
    check_embeddable(n, n_hidden, topology, shape)
    folder = fresh_dir(layout.embedding)
    embedding, method, path = load_or_find_embedding(
        child.to_networkx_graph(), n, n_hidden, topology=topology, shape=shape, folder=folder,
        timeout=p.timeout, seed=p.seed,
    )
    chains = [len(c) for c in embedding.values()]
    info = {
        "topology": topology, "shape": shape, "mock": use_mock, "mock_reason": reason,
        "solver": "mock" if use_mock else child.solver.name, "n_visible": n,
        "n_hidden": n_hidden, "embedding_file": path.name, "method": method,
        "num_qubits": int(sum(chains)), "chain_length_max": max(chains),
        "chain_length_mean": float(np.mean(chains)),
    }
    write_json(layout.solver_info, info)
    wrote("embed", path, layout.solver_info)
    return info
