"""Calibration: the prefactor p at which the reads' logical β (β_model, pseudo-likelihood in
the model's own units) is 1, by a bracketed search on the rising branch β_model(p).

An ideal device at inverse temperature β_dev gives β_model(p) = β_dev · p, so the search works
in log p against log β_model: before a bracket exists it steps along a secant (slope 1 from a
single point, the measured slope from two, clamped to [¼, 4]), each step at most ×10 and never
past the cap; once some p gave β_model < 1 and another > 1, it interpolates inside that
bracket (regula falsi, the new point kept 5 % of the way from either end). Reads hotter than
any positive β explains (β_model ≤ 0) raise p by the largest step; reads with no excitation
(β_model = inf) lower it. It stops when β_model is within ``tol`` of 1 or 1 lies in its
bootstrap interval, when the cap is reached with β_model still below 1 (the target is out of
reach), or after ``rounds`` measurements. The cap may change between rounds (a stronger chain
lowers it), so it is read before each step.

A calibration is a result: :func:`cache_key` names what determines it and :func:`load` /
:func:`save` keep it as JSON beside the embedding cache, so later runs reuse it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rbmdiff.files import atomic_write_bytes

MAX_STEP = 10.0  # a step before the bracket changes p by at most this factor
CACHE_VERSION = 2  # records of another version are calibrated again


@dataclass
class Search:
    """The chosen prefactor, whether the target looked reachable, and every measurement."""

    prefactor: float
    converged: bool
    out_of_reach: bool
    points: list[tuple[float, float]] = field(default_factory=list)  # (p, β_model)


def solve_prefactor(
    measure: Callable[[float], tuple[float, float, float]], p0: float,
    p_max: Callable[[], float], *, rounds: int, tol: float = 0.02,
) -> Search:
    """measure(p) -> (β_model, low, high) of reads at prefactor p; p_max() the current cap.
    -> the Search."""
    p = min(p0, p_max())
    search = Search(p, converged=False, out_of_reach=False)
    lo: tuple[float, float] | None = None  # (log p, log β) with β < 1, largest p
    hi: tuple[float, float] | None = None  # with β > 1, smallest p
    for _ in range(rounds):
        beta, low, high = measure(p)
        search.points.append((p, beta))
        if math.isnan(beta):  # no usable reads: stop where we are
            break
        if abs(beta - 1) <= tol or low <= 1 <= high:
            search.prefactor, search.converged = p, True
            return search
        cap = p_max()
        x = math.log(p)
        y = math.log(beta) if beta > 0 else -math.inf  # −inf: hotter than β = 0
        if y < 0:
            lo = (x, y) if lo is None or x > lo[0] else lo
            if p >= cap * (1 - 1e-9):
                search.prefactor, search.out_of_reach = cap, True
                return search
        else:
            hi = (x, y) if hi is None or x < hi[0] else hi
        p = _next(search.points, lo, hi, cap)
        search.prefactor = p
    return search


def _next(points, lo, hi, p_max: float) -> float:
    """The next prefactor to measure."""
    x = math.log(points[-1][0])
    y = math.log(points[-1][1]) if points[-1][1] > 0 else -math.inf
    if lo is not None and hi is not None and math.isfinite(hi[1]) and math.isfinite(lo[1]):
        (x0, y0), (x1, y1) = lo, hi
        t = y0 / (y0 - y1)
        return math.exp(x0 + min(max(t, 0.05), 0.95) * (x1 - x0))
    if lo is not None and hi is not None:  # an end read no excitations or β ≤ 0: bisect
        return math.exp((lo[0] + hi[0]) / 2)
    slope = 1.0
    if len(points) >= 2:
        pa = points[-2][1]
        xa, ya = math.log(points[-2][0]), math.log(pa) if pa > 0 else -math.inf
        xb, yb = x, y
        if math.isfinite(ya) and math.isfinite(yb) and xb != xa:
            slope = min(max((yb - ya) / (xb - xa), 0.25), 4.0)
    step = -y / slope if math.isfinite(y) else -math.copysign(math.log(MAX_STEP), y)
    step = min(max(step, -math.log(MAX_STEP)), math.log(MAX_STEP))
    return min(math.exp(x + step), p_max)


def cache_key(*, W: np.ndarray, b: np.ndarray, c: np.ndarray, embedding: dict | None,
              device: str, settings: dict) -> str:
    """SHA-256 of what determines a calibration: the model (W, b, c), the embedding, the
    device and the settings that change its reads (annealing time, chain rule, clip, the
    mocks' β and sweeps).  -> 32 hex digits."""
    digest = hashlib.sha256()
    for a in (W, b, c):
        digest.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
    emb = sorted((str(k), list(map(int, v))) for k, v in (embedding or {}).items())
    digest.update(json.dumps([emb, device, sorted(settings.items()), CACHE_VERSION],
                             default=str).encode())
    return digest.hexdigest()[:32]


def load(folder: Path | None, key: str) -> dict | None:
    """The calibration stored under ``key``; None when absent, unreadable or of another
    version (then calibrated again)."""
    path = folder / f"{key}.json" if folder is not None else None
    if path is None or not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(record, dict) and record.get("version") == CACHE_VERSION
    return record if ok and record.get("prefactor", 0) > 0 else None


def save(folder: Path | None, key: str, record: dict) -> None:
    """Keep a calibration (atomic write); nothing when there is no folder."""
    if folder is not None:
        data = json.dumps({**record, "version": CACHE_VERSION}, default=float).encode()
        atomic_write_bytes(folder / f"{key}.json", data)
