"""Calibration: the prefactor p at which the reads' logical β (β_model, pseudo-likelihood in
the model's own units) is 1, by a bracketed search on the rising branch β_model(p).

An ideal device at inverse temperature β_dev gives β_model(p) = β_dev · p, so the search works
in log p against log β_model: before a bracket exists it steps along a secant (slope 1 from a
single point, the measured slope from two, clamped to [¼, 4]), each step at most ×10 and never
past the cap; once some p gave β_model < 1 and another > 1, it interpolates inside that
bracket (regula falsi, the new point kept 5 % of the way from either end). It stops when
β_model is within ``tol`` of 1 or 1 lies in its bootstrap interval, when the cap is reached
with β_model still below 1 (the target is out of reach), or after ``rounds`` measurements.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_STEP = 10.0  # a step before the bracket changes p by at most this factor


@dataclass
class Search:
    """The chosen prefactor, whether the target looked reachable, and every measurement."""

    prefactor: float
    converged: bool
    out_of_reach: bool
    points: list[tuple[float, float]] = field(default_factory=list)  # (p, β_model)


def solve_prefactor(
    measure: Callable[[float], tuple[float, float, float]], p0: float, p_max: float, *,
    rounds: int, tol: float = 0.02,
) -> Search:
    """measure(p) -> (β_model, low, high) of reads at prefactor p.  -> the Search."""
    p = min(p0, p_max)
    search = Search(p, converged=False, out_of_reach=False)
    lo: tuple[float, float] | None = None  # (log p, log β) with β < 1, largest p
    hi: tuple[float, float] | None = None  # with β > 1, smallest p
    for _ in range(rounds):
        beta, low, high = measure(p)
        search.points.append((p, beta))
        if not beta > 0 or math.isnan(beta):  # no usable reads: stop where we are
            break
        if abs(beta - 1) <= tol or low <= 1 <= high:
            search.prefactor, search.converged = p, True
            return search
        x, y = math.log(p), math.log(beta)  # y = +inf: no excitations, far too cold
        if y < 0:
            lo = (x, y) if lo is None or x > lo[0] else lo
            if p >= p_max * (1 - 1e-9):
                search.prefactor, search.out_of_reach = p_max, True
                return search
        else:
            hi = (x, y) if hi is None or x < hi[0] else hi
        p = _next(search.points, lo, hi, p_max)
        search.prefactor = p
    return search


def _next(points, lo, hi, p_max: float) -> float:
    """The next prefactor to measure."""
    x, y = math.log(points[-1][0]), math.log(points[-1][1])
    if lo is not None and hi is not None and math.isfinite(hi[1]):
        (x0, y0), (x1, y1) = lo, hi
        t = y0 / (y0 - y1)
        return math.exp(x0 + min(max(t, 0.05), 0.95) * (x1 - x0))
    if lo is not None and hi is not None:  # hi read no excitations: bisect in log p
        return math.exp((lo[0] + hi[0]) / 2)
    slope = 1.0
    if len(points) >= 2:
        (xa, ya), (xb, yb) = (math.log(points[-2][0]), math.log(points[-2][1])), (x, y)
        if math.isfinite(ya) and math.isfinite(yb) and xb != xa:
            slope = min(max((yb - ya) / (xb - xa), 0.25), 4.0)
    step = -y / slope if math.isfinite(y) else -math.log(MAX_STEP)
    step = min(max(step, -math.log(MAX_STEP)), math.log(MAX_STEP))
    return min(math.exp(x + step), p_max)
