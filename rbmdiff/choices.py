"""Every enumerated setting, declared once (no torch: ``rbmdiff --help`` and params.yaml's
checks read them without loading the library's models)."""

from __future__ import annotations

DEVICES = ("auto", "cpu", "cuda")  # --device: auto = CUDA when usable, else the CPU
METHODS = ("dsm", "cd", "pcd", "ml")  # training: score matching, CD-k, PCD-k, exact ML
SCORES = ("posterior", "free_energy")  # the score model (docs/math.md §2, §3)
M_METHODS = ("exact", "meanfield", "tap", "gibbs", "gibbs_cov")  # m_θ(a, t) of the posterior score
TRAIN_M_METHODS = tuple(m for m in M_METHODS if m != "gibbs")  # gibbs's m has no gradient
RECIPES = ("recommended", "plain")  # DSM with the posterior score: measured best, or §5 as written
TOPOLOGIES = ("pegasus", "zephyr")  # D-Wave graphs, and hardware-native masks
SAMPLERS = ("sde", "ode", "gibbs", "anneal", "qpu")  # rbmdiff.samplers.REGISTRY's names
NEGATIVES = ("gibbs", "anneal", "qpu")  # where PCD/CD draw their negative phase
QPU_MOCKS = ("thermal", "annealer")  # the local stand-ins for a QPU
MOCK_SHAPES = {"pegasus": [8], "zephyr": [5, 4]}  # the mocks' graphs: K_{76,76}, K_{72,72}
CHAIN_RULES = ("relative", "utc")  # the QPU route's chain strength: f · p · max|J|, or UTC
