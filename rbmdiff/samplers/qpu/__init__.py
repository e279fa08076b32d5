"""The ``qpu`` sampler (docs/math.md §6, §6a), one concern per module:

- :mod:`.embedding`: K_{n,m} on the solver graph, its JSON cache, the native identity embedding;
- :mod:`.solvers`: the QPU, or the "thermal" / "annealer" mocks on MockDWaveSampler's graph;
- :mod:`.thermal`: the "thermal" mock (exact, or chain-block Gibbs of the programmed problem);
- :mod:`.scaling`: the prefactor cap from the solver's ranges, the chain-strength rule;
- :mod:`.temperature`: β of reads by maximum pseudo-likelihood;
- :mod:`.calibration`: the bracketed search for β_model(p) = 1;
- :mod:`.check`: the global check (mean energy against the model's);
- :mod:`.store`: paid reads kept on disk, retries of transient faults;
- :mod:`.sampler`: :class:`QPUSampler`, tying them together.
"""

from rbmdiff.samplers.qpu.embedding import (
    biclique_limit,
    check_embeddable,
    default_embedding_dir,
    load_or_find_embedding,
    search_embedding,
)
from rbmdiff.samplers.qpu.sampler import EmbeddedSolver, QPUSampler, QPUWarning
from rbmdiff.samplers.qpu.solvers import has_token, mock_solver
from rbmdiff.samplers.qpu.temperature import estimate_beta

__all__ = [
    "EmbeddedSolver", "QPUSampler", "QPUWarning", "biclique_limit", "check_embeddable",
    "default_embedding_dir", "estimate_beta", "has_token", "load_or_find_embedding",
    "mock_solver", "search_embedding",
]
