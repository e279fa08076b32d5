"""The result type every sampler returns, and the shared start/finish bookkeeping."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import torch

from rbmdiff.errors import RbmdiffError
from rbmdiff.rbm import RBM


@dataclass
class Samples:
    """v: (B, n) of 0/1; x: (B, n) mean-field values or None; info: provenance and cost;
    raw_v: (B, n) the device's own reads when a sampler post-processed them, else None."""

    v: torch.Tensor
    x: torch.Tensor | None = None
    info: dict = field(default_factory=dict)
    raw_v: torch.Tensor | None = None


class Sampler(Protocol):
    name: str

    def sample(self, rbm: RBM, num_samples: int, *, seed: int) -> Samples: ...

    def params(self) -> dict: ...


def check_request(rbm: RBM, num_samples: int, seed: int) -> None:
    """Refuse impossible requests before any work."""
    if not isinstance(num_samples, int) or num_samples < 1:
        raise RbmdiffError(f"num_samples must be a positive integer, got {num_samples!r}")
    if not isinstance(seed, int) or seed < 0:
        raise RbmdiffError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(rbm, RBM):
        raise RbmdiffError(f"expected an rbmdiff.RBM, got {type(rbm).__name__}")


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` torch threads (None: leave as is), restoring the previous count after.

    On a small shared machine one thread per process is often fastest for small RBMs.  The
    count is the process's: off the main thread (samplers run concurrently, e.g. a
    pipeline's routes) it is left as is, since changing it would change the others' runs.
    """
    if n is not None and n < 1:
        raise RbmdiffError(f"threads must be ≥ 1, got {n}")
    if n is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Timer:
    """Wall-clock seconds since construction."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def make_info(
    sampler: Sampler, *, seed: int, num_samples: int, wall_s: float, cost_units: float,
    cost_unit: str, params: dict | None = None, **extra,
) -> dict:
    """The info fields every sampler reports, plus its own; ``params`` (the run's settings)
    defaults to ``sampler.params()``, ``device`` (where the work ran) to "cpu"."""
    extra.setdefault("device", "cpu")
    return {
        "sampler": sampler.name,
        "params": sampler.params() if params is None else params,
        "seed": seed,
        "num_samples": num_samples,
        "wall_s": wall_s,
        "samples_per_s": num_samples / wall_s if wall_s > 0 else float("inf"),
        "cost_units": float(cost_units),
        "cost_unit": cost_unit,
        **extra,
    }
