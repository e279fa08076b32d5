"""A device with the model's K_{n,m} embedding on its graph (:class:`EmbeddedSolver`): found
or loaded once per model shape, the identity for a hardware-native model, none for an
unstructured device (which takes the logical problem)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rbmdiff.choices import TOPOLOGIES
from rbmdiff.errors import RbmdiffError
from rbmdiff.samplers.qpu import embedding
from rbmdiff.samplers.qpu.device import Device
from rbmdiff.samplers.qpu.settings import QPUSettings
from rbmdiff.seeds import sampler_seed


@dataclass
class EmbeddedSolver:
    """A device with the K_{n,m} embedding (None for an unstructured device)."""

    device: Device
    topology: str | None
    shape: list[int]
    embedding: dict[str, list[int]] | None
    method: str  # "busclique", "minorminer", "cache", "native" or "none" (unstructured)
    path: Path | None  # the cached embedding file; None for a native model
    graph: Any = None  # the device's graph (networkx), kept for a native model's checks

    @property
    def child(self) -> Any:
        return self.device.sampler

    @property
    def mock_kind(self) -> str | None:
        return self.device.mock_kind

    @property
    def mock_reason(self) -> str:
        return self.device.reason

    @property
    def mock(self) -> bool:
        return self.device.mock_kind is not None

    def info(self) -> dict:
        """Device and embedding facts for a sampler's ``info``."""
        chains = [len(c) for c in (self.embedding or {}).values()] or [1]
        return {
            "device": self.device.name, "solver": "mock" if self.mock else self.device.name,
            "mock": self.mock, "mock_kind": self.mock_kind, "mock_reason": self.mock_reason,
            "topology": self.topology, "topology_shape": self.shape,
            "embedding_method": self.method,
            "embedding_path": str(self.path) if self.path else None,
            "chain_length_max": max(chains), "chain_length_mean": float(np.mean(chains)),
            "num_qubits": int(sum(chains)) if self.embedding else None,
        }


def check_accepts(dev: Device, settings: QPUSettings) -> None:
    """Refuse a device that would ignore the run's annealing_time or cannot draw a given
    number of reads."""
    if settings.annealing_time is not None and not dev.accepts("annealing_time"):
        raise RbmdiffError(f"the device {dev.name} takes no annealing_time: drop "
                           f"annealing_time={settings.annealing_time}")
    if not dev.accepts("num_reads"):
        raise RbmdiffError(f"the device {dev.name} takes no num_reads: the QPU route needs "
                           "a sampler that draws a given number of reads")


def embed_on(dev: Device, settings: QPUSettings, n: int, m: int, *, seed: int = 0,
             layout: dict | None = None, weights: torch.Tensor | None = None
             ) -> EmbeddedSolver:
    """K_{n,m} on ``dev``: loaded or found (cached in ``settings.embedding_dir``), the
    identity on a native ``layout``'s graph (``weights`` checked), or none on an
    unstructured device."""
    if not dev.structured:
        return EmbeddedSolver(dev, None, [], None, "none", None)
    topology, shape = dev.topology()
    graph = dev.sampler.to_networkx_graph()
    if layout is not None:
        if (layout["topology"], list(layout["shape"])) != (topology, shape):
            raise RbmdiffError(
                f"the model is native to {layout['topology']} {layout['shape']}, the device "
                f"is {topology} {shape}: retrain on this device's graph")
        w = weights if weights is not None else torch.ones(n, m)
        emb, method, path = embedding.native_embedding(layout, graph, w), "native", None
    else:
        if topology in TOPOLOGIES:
            embedding.check_embeddable(n, m, topology, shape)
        emb, method, path = embedding.load_or_find_embedding(
            graph, n, m, topology=topology or "graph", shape=shape,
            folder=settings.embedding_dir, timeout=settings.embedding_timeout,
            seed=sampler_seed(seed))
    if dev.mock_kind == "thermal":  # the thermal mock draws chains layer by layer
        dev.sampler.substitute_kwargs["layers"] = [
            [emb[f"v{i}"] for i in range(n)], [emb[f"h{j}"] for j in range(m)]]
    return EmbeddedSolver(dev, topology, shape, emb, method, path, graph)
