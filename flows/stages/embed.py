"""embed: minor-embed K_{n,m} (visible × hidden) on the QPU's graph once, cached as JSON.

Without a D-Wave token (or with ``embed.mock: true``) the graph is the mock solver's
(``embed.topology``, ``embed.mock_shape``); with one it is the real solver's.  The sample
stage's QPU route reads the embedding, and which solver it was made for, from here.
"""

from __future__ import annotations

import logging
import shutil

from flows.artefacts import read_json, staged_dir, write_json, wrote
from flows.config import EmbedParams
from flows.layout import Layout
from rbmdiff.errors import NotEmbeddable
from rbmdiff.samplers.qpu import QPUSampler

log = logging.getLogger("flows")


def embed(p: EmbedParams, n_hidden: int, layout: Layout) -> dict:
    """Write models/embedding/{<graph>-K{n}x{m}.json, solver.json}; -> solver.json's content.

    Refuses an RBM beyond the topology's biclique limit before building anything.  The search
    runs in a private folder beside the output, seeded with the previous embeddings (reused
    when still valid for the graph), which replaces the output folder whole once it has
    succeeded: a failed search leaves the previous embedding in place.  A model too large for
    the graph is a result, not a fault: solver.json says so (``refused``), a qpu route refuses
    with that line, and the other routes run.
    """
    n = int(read_json(layout.dataset_info)["n_visible"])
    out = layout.embedding
    with staged_dir(out) as staging:
        for old in out.glob("*-K*.json") if out.is_dir() else ():
            shutil.copy2(old, staging / old.name)
        sampler = QPUSampler(mock=p.mock, topology=p.topology, mock_shape=p.mock_shape,
                             embedding_dir=staging, embedding_timeout=p.timeout)
        try:
            solver = sampler.embed(n, n_hidden, seed=p.seed)
        except NotEmbeddable as exc:
            solver, info = None, {"refused": str(exc), "topology": p.topology, "n_visible": n,
                                  "n_hidden": n_hidden}
        else:
            facts = solver.info()
            info = {
                "topology": solver.topology, "shape": list(solver.shape), "mock": solver.mock,
                "mock_reason": solver.mock_reason, "solver": facts["solver"], "n_visible": n,
                "n_hidden": n_hidden, "embedding_file": solver.path.name,
                **{k: facts[k] for k in ("num_qubits", "chain_length_max", "chain_length_mean")},
            }
        for stale in staging.iterdir():
            if solver is None or stale != solver.path:
                stale.unlink()
        write_json(staging / layout.solver_info.name, info)
    if solver is None:
        log.warning("embed: %s (a qpu route would refuse; the other routes run)",
                    info["refused"])
        wrote("embed", layout.solver_info)
        return info
    # how it was got (searched, or reused from the previous output) varies between runs of
    # the same inputs: logged, not in the tracked solver.json
    log.info("embed: K_{%d,%d} embedding by %s", n, n_hidden, solver.method)
    wrote("embed", out / solver.path.name, layout.solver_info)
    return info
