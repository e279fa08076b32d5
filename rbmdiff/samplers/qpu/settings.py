"""The QPU sampler's settings: one frozen record, validated once, whether given to the
constructor or, for the per-run ones (``PER_RUN``), to ``QPUSampler.sample`` as a dimod
sampler takes its parameters per call.  Every refusal is a one-line RbmdiffError naming the
setting and its value."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rbmdiff.choices import CHAIN_RULES, MOCK_SHAPES, TOPOLOGIES
from rbmdiff.errors import RbmdiffError
from rbmdiff.samplers.qpu import embedding, solvers

PER_RUN = ("annealing_time", "num_reads", "chain_strength", "chain_strength_factor", "clip",
           "beta_eff", "calibration_rounds", "calibration_reads", "reuse_calibration",
           "num_bootstrap", "postprocess_sweeps", "verdict", "alpha")
"""What ``sample()`` takes per run: how to anneal, scale, calibrate and judge; not which
device, graph, embedding or folders (those fix the solver the sampler opens once)."""


@dataclass(frozen=True)
class QPUSettings:
    """The settings of :class:`rbmdiff.samplers.qpu.QPUSampler` (its signature holds their
    defaults, its docstring says what each means), validated and normalised: ``mock_shape``
    filled in from the topology, ``chain_strength`` None read as "relative", folders as
    Paths."""

    topology: str
    mock: bool | str | None
    mock_shape: list[int] | None
    mock_beta: float
    mock_sweeps: int
    solver: str | None
    beta_eff: float | None
    calibration_rounds: int
    calibration_reads: int | None
    num_bootstrap: int
    chain_strength: float | str | None
    chain_strength_factor: float | None
    clip: bool
    layout: dict | None
    num_reads: int | None
    annealing_time: float | None
    embedding_dir: str | os.PathLike | None
    embedding_timeout: float
    calibration_dir: str | os.PathLike | None
    reuse_calibration: bool
    postprocess_sweeps: int
    verdict: bool
    alpha: float
    read_store: str | os.PathLike | None
    retries: int
    retry_backoff: float

    def __post_init__(self) -> None:
        validate(self)
        embedding_dir = (Path(self.embedding_dir) if self.embedding_dir
                         else embedding.default_embedding_dir())
        normal = {
            "mock_shape": list(self.mock_shape or MOCK_SHAPES[self.topology]),
            "mock_beta": float(self.mock_beta), "clip": bool(self.clip),
            "chain_strength": ("relative" if self.chain_strength is None
                               else self.chain_strength),
            "embedding_dir": embedding_dir,
            "calibration_dir": (Path(self.calibration_dir) if self.calibration_dir
                                else embedding_dir / "calibration"),
            "reuse_calibration": bool(self.reuse_calibration), "alpha": float(self.alpha),
            "verdict": bool(self.verdict),
            "read_store": Path(self.read_store) if self.read_store else None,
        }
        for name, value in normal.items():
            object.__setattr__(self, name, value)

    def replace(self, **overrides: Any) -> QPUSettings:
        """These settings with the per-run ``overrides`` (``PER_RUN``), validated alike."""
        unknown = sorted(set(overrides) - set(PER_RUN))
        if unknown:
            raise RbmdiffError(
                f"sample() takes no setting {', '.join(map(repr, unknown))}: the per-run "
                f"settings are {', '.join(PER_RUN)}; give the others to QPUSampler(...)")
        return dataclasses.replace(self, **overrides)

    def params(self) -> dict:
        """The settings a run's ``info["params"]`` names (folders and layout left out)."""
        keep = ("topology", "mock", "mock_shape", "mock_beta", "mock_sweeps", "solver",
                "beta_eff", "calibration_rounds", "calibration_reads", "num_bootstrap",
                "chain_strength", "chain_strength_factor", "clip", "num_reads",
                "annealing_time", "postprocess_sweeps", "verdict", "alpha", "retries")
        return {name: getattr(self, name) for name in keep}


def validate(s: QPUSettings) -> None:
    """Refuse the first setting out of its range, in one line."""
    if s.topology not in TOPOLOGIES:
        raise RbmdiffError(f"unknown topology {s.topology!r}; choose one of {TOPOLOGIES}")
    if not (s.mock is None or isinstance(s.mock, bool) or s.mock in solvers.MOCK_KINDS):
        raise RbmdiffError(f"mock must be None, True, False or one of "
                           f"{solvers.MOCK_KINDS}, got {s.mock!r}")
    _check_numbers(s)
    if s.mock_shape is not None and not _shape_ok(s.topology, s.mock_shape):
        raise RbmdiffError(
            f"mock_shape {s.mock_shape!r} is no {s.topology} shape: give [M] with M ≥ 2 for "
            "pegasus (e.g. [8]), [m, t] with m, t ≥ 1 for zephyr (e.g. [5, 4])")
    _check_chain_strength(s.chain_strength)
    if not (_number(s.retry_backoff) and s.retry_backoff >= 0):
        raise RbmdiffError(f"retry_backoff must be ≥ 0 s, got {s.retry_backoff!r}")


def _check_numbers(s: QPUSettings) -> None:
    """The positive numbers, alpha, the counts and the optional counts."""
    for label in ("mock_beta", "beta_eff", "embedding_timeout", "chain_strength_factor",
                  "annealing_time"):
        x = getattr(s, label)
        if x is not None and not (_number(x) and math.isfinite(x) and x > 0):
            raise RbmdiffError(f"{label} must be a positive number, got {x!r}")
    if not (_number(s.alpha) and 0 < s.alpha < 1):
        raise RbmdiffError(f"alpha must lie in (0, 1), got {s.alpha!r}")
    for label, low in (("mock_sweeps", 1), ("calibration_rounds", 0), ("num_bootstrap", 0),
                       ("postprocess_sweeps", 0), ("retries", 0)):
        k = getattr(s, label)
        if not _integer(k) or k < low:
            raise RbmdiffError(f"{label} must be an integer ≥ {low}, got {k!r}")
    for label in ("num_reads", "calibration_reads"):
        k = getattr(s, label)
        if k is not None and (not _integer(k) or k < 1):
            raise RbmdiffError(f"{label} must be a positive integer or None, got {k!r}")


def _check_chain_strength(chain_strength: Any) -> None:
    """A rule of ``rbmdiff.choices.CHAIN_RULES`` (None: "relative") or a positive number."""
    if chain_strength is None:
        return
    if isinstance(chain_strength, str):
        if chain_strength not in CHAIN_RULES:
            raise RbmdiffError(f"unknown chain_strength rule {chain_strength!r}; give a "
                               f"number or one of {CHAIN_RULES}")
    elif not (_number(chain_strength) and math.isfinite(chain_strength)
              and chain_strength > 0):
        raise RbmdiffError(f"chain_strength must be positive, got {chain_strength!r}")


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _integer(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _shape_ok(topology: str, shape: Any) -> bool:
    """Whether ``shape`` is a graph shape MockDWaveSampler builds for ``topology``."""
    if not isinstance(shape, list | tuple) or not all(_integer(k) for k in shape):
        return False
    if topology == "pegasus":
        return len(shape) == 1 and shape[0] >= 2
    return len(shape) in (1, 2) and all(k >= 1 for k in shape)
