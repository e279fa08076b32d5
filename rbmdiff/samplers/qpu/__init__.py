"""The ``qpu`` sampler (docs/math.md §6, §6a), one concern per module:

- :mod:`.settings`: :class:`QPUSettings`, the sampler's settings validated (per-run ones too);
- :mod:`.embedding`: K_{n,m} on the solver graph, its JSON cache, the native identity embedding;
- :mod:`.solvers`: the QPU, or the "thermal" / "annealer" mocks on MockDWaveSampler's graph;
- :mod:`.device`: the dimod sampler a run uses (given, a mock, or the QPU) and what it takes;
- :mod:`.embedded`: :class:`EmbeddedSolver`, the device with the model's embedding;
- :mod:`.thermal`: the "thermal" mock (exact, or chain-block Gibbs of the programmed problem);
- :mod:`.scaling`: the prefactor cap from the solver's ranges, the chain-strength rule;
- :mod:`.temperature`: β of reads by maximum pseudo-likelihood;
- :mod:`.calibration`: the bracketed search for β_model(p) = 1, its cache;
- :mod:`.prefactor`: the prefactor a run programs (cached, nominal or searched);
- :mod:`.run`: one run's device calls, chain rungs and β_model of each batch of reads;
- :mod:`.check`: the global check (mean energy against the model's);
- :mod:`.verdict`: the final reads judged against the model, :class:`QPUWarning`;
- :mod:`.facts`: the run's info, its :class:`rbmdiff.records.QPUFacts` in place;
- :mod:`.store`: paid reads kept on disk, retries of transient faults;
- :mod:`.sampler`: :class:`QPUSampler`, tying them together.
"""

from rbmdiff.samplers.qpu.embedded import EmbeddedSolver
from rbmdiff.samplers.qpu.embedding import (
    biclique_limit,
    check_embeddable,
    default_embedding_dir,
    load_or_find_embedding,
    search_embedding,
)
from rbmdiff.samplers.qpu.sampler import QPUSampler
from rbmdiff.samplers.qpu.settings import QPUSettings
from rbmdiff.samplers.qpu.solvers import has_token, mock_solver
from rbmdiff.samplers.qpu.temperature import estimate_beta
from rbmdiff.samplers.qpu.verdict import QPUWarning

__all__ = [
    "EmbeddedSolver", "QPUSampler", "QPUSettings", "QPUWarning", "biclique_limit",
    "check_embeddable", "default_embedding_dir", "estimate_beta", "has_token",
    "load_or_find_embedding", "mock_solver", "search_embedding",
]
