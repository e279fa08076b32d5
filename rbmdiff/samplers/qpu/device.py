"""The device the QPU route samples: any ``dimod.Sampler``, in Ocean's composite convention.

- A ``dimod.Structured`` sampler (``DWaveSampler``, the two mocks, a ``StructureComposite``) is
  minor-embedded on its graph. Its ``properties`` give ``h_range``, ``j_range`` and
  ``extended_j_range`` where it has them; where it has none, Advantage's published ranges
  (``DEFAULT_RANGES``) are assumed, so the programmed problem would fit a QPU too.
- An unstructured sampler (a hybrid solver, ``SimulatedAnnealingSampler``, one written in a
  test) gets the logical problem with no embedding, no chains, and no range limit unless its
  properties declare one.

Only parameters the sampler declares in ``parameters`` are passed to it. Nothing here assumes
the device's inverse temperature is known: the route calibrates it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dimod

from rbmdiff.errors import RbmdiffError
from rbmdiff.samplers.qpu import embedding, solvers

if TYPE_CHECKING:
    from rbmdiff.samplers.qpu.settings import QPUSettings

DEFAULT_RANGES = {"h_range": [-4.0, 4.0], "j_range": [-1.0, 1.0]}  # Advantage's


@dataclass
class Device:
    """A dimod sampler with what the route needs to know of it."""

    sampler: dimod.Sampler
    name: str  # info["device"]: what ran
    mock_kind: str | None  # "thermal" / "annealer" for the project's mocks, else None
    reason: str  # why this device was chosen

    @property
    def structured(self) -> bool:
        return isinstance(self.sampler, dimod.Structured)

    @property
    def properties(self) -> dict:
        """The sampler's properties, with ``DEFAULT_RANGES`` filled in for a structured one."""
        props = dict(getattr(self.sampler, "properties", {}) or {})
        if self.structured:
            for key, value in DEFAULT_RANGES.items():
                props.setdefault(key, value)
        return props

    def accepts(self, parameter: str) -> bool:
        return parameter in (getattr(self.sampler, "parameters", {}) or {})

    def topology(self) -> tuple[str | None, list[int]]:
        """(type, shape) from ``properties["topology"]``; (None, []) when it has none."""
        topo = self.properties.get("topology") or {}
        return topo.get("type"), list(topo.get("shape", []))


def describe(sampler: Any) -> str:
    """A sampler's name for ``info["device"]``: its class, and a QPU's solver name."""
    name = type(sampler).__name__
    solver = getattr(getattr(sampler, "solver", None), "name", None)
    return f"{name}({solver})" if isinstance(solver, str) else name


def check_sampler(sampler: Any) -> None:
    """Refuse anything that is not a dimod sampler, in one line."""
    if not isinstance(sampler, dimod.Sampler):
        raise RbmdiffError(
            f"sampler must be a dimod.Sampler (e.g. DWaveSampler(), "
            f"dwave.samplers.SimulatedAnnealingSampler()), got {type(sampler).__name__}")


def mock_kind(settings: QPUSettings) -> tuple[str | None, str]:
    """-> (the mock to use, or None for the QPU; why)."""
    if isinstance(settings.mock, str):
        return settings.mock, f"mock={settings.mock!r} requested"
    if settings.mock is True:
        return "annealer", "mock=True requested (the annealer mock)"
    if solvers.has_token():
        return None, "D-Wave token configured"
    if settings.mock is False:
        raise RbmdiffError(
            "mock=False needs a D-Wave token: set DWAVE_API_TOKEN or run `dwave config "
            "create`; or pass mock='annealer' (or 'thermal') to sample offline")
    return "annealer", ("no D-Wave token configured (DWAVE_API_TOKEN unset, no dwave config "
                        "file): the annealer mock")


def open_device(sampler: Any, settings: QPUSettings, n_visible: int, n_hidden: int, *,
                layout: dict | None = None) -> Device:
    """The device to sample: ``sampler`` as given, else a mock (on a native model's graph;
    an oversized K_{n,m} refused before it is built) or the QPU."""
    if sampler is not None:
        return Device(sampler, describe(sampler), None, "sampler= given")
    kind, reason = mock_kind(settings)
    if kind is None:
        child = solvers.open_qpu(settings.topology, settings.solver, retries=settings.retries,
                                 backoff=settings.retry_backoff)
        return Device(child, describe(child), None, reason)
    topology, shape = settings.topology, settings.mock_shape
    if layout is not None:
        topology, shape = layout["topology"], list(layout["shape"])
    else:
        embedding.check_embeddable(n_visible, n_hidden, topology, shape)
    child = solvers.mock_solver(kind, topology, shape, beta=settings.mock_beta,
                                sweeps=settings.mock_sweeps)
    name = f"{describe(child)}({kind} mock, {topology} {shape})"
    return Device(child, name, kind, reason)
