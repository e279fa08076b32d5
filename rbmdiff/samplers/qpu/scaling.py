"""Scaling the RBM's Ising form onto a solver: the largest prefactor whose programmed h, J and
chain couplings fit the solver's ranges, and the chain strength relative to the scaled problem.

The embedded problem is linear in the prefactor p: each logical bias is spread over its chain's
qubits and each logical coupling over the couplers between two chains (dwave.embedding), and
the chain coupling is −p·cs₁ under a relative rule. So one embedding at p = 1 gives every
limit on p in closed form.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import dimod
import numpy as np

from rbmdiff.choices import CHAIN_RULES
from rbmdiff.errors import RbmdiffError

SOLVER_CAP = "solver cap"  # the strongest chain the solver allows, fixed (the thermal mock's)
DEFAULT_CHAIN_FACTOR = 2.2  # chain coupling = 2.2 · p · max|J|: < 1 % broken chains (tests)
# Rungs tried weakest first when no factor is given: chain_strength_factor values, then the
# strongest chain the solver allows. A rung is left for the next when LADDER_BROKEN or more
# of the chains of a calibration's (or the final) reads break.
CHAIN_LADDER = (1.5, 1.8, 2.2, 3.0, 4.0, SOLVER_CAP)
LADDER_BROKEN = 0.005


@dataclass
class Scaling:
    """The prefactor's cap and what sets it, and the chain strength per unit prefactor."""

    prefactor_max: float  # inf when nothing limits it (clip=True with a fixed chain strength)
    limited_by: str  # "h_range", "j_range", "chain" or "none"
    chain_per_prefactor: float  # cs₁: chain strength = p · cs₁ (0 under a fixed value)
    chain_fixed: float | None  # a user value, in programmed units
    chain_cap: float  # the strongest ferromagnetic chain coupling allowed
    rule: str

    def chain_strength(self, prefactor: float) -> float:
        """The chain strength used at ``prefactor`` (programmed units)."""
        if self.chain_fixed is not None:
            return self.chain_fixed
        return min(prefactor * self.chain_per_prefactor, self.chain_cap)


def chain_cap(properties: dict) -> float:
    """|strongest ferromagnetic coupling| for chains: −extended_j_range[0] when the solver has
    one (each qubit's total coupling is then checked against per_qubit_coupling_range by the
    solver), else −j_range[0]."""
    ext = properties.get("extended_j_range")
    return float(-(ext or properties["j_range"])[0])


def rule_strength(h: dict, J: dict, embedding: dict, rule: str, factor: float) -> float:
    """cs₁: the chain strength of the unscaled logical problem under ``rule``:
    'relative' = factor · max|J| (max|h| when there is no coupling), 'utc' = dwave-system's
    uniform torque compensation (times factor / 2.2, so 2.2 keeps its own prefactor 1.414)."""
    if rule == "relative":
        big = max((abs(v) for v in J.values()), default=0.0) or max(
            (abs(v) for v in h.values()), default=1.0)
        return factor * big
    if rule == "utc":
        from dwave.embedding.chain_strength import uniform_torque_compensation

        bqm = dimod.BinaryQuadraticModel.from_ising(h, J)
        return float(uniform_torque_compensation(bqm, embedding)) * factor / DEFAULT_CHAIN_FACTOR
    raise RbmdiffError(f"unknown chain-strength rule {rule!r}; choose one of {CHAIN_RULES}")


def plan(h: dict, J: dict, embedding: dict, adjacency, properties: dict, *,
         chain_strength: float | str, factor: float, clip: bool) -> Scaling:
    """The prefactor cap for logical (h, J) on a solver with ``properties``; ``chain_strength``
    is a rule of ``CHAIN_RULES``, ``SOLVER_CAP`` or a number (programmed units).

    Without ``clip`` the embedded biases must fit h_range, couplings j_range and the chain
    coupling the chain cap; with ``clip`` only the chain coupling limits p (biases and
    couplings beyond range are cut, and recorded).
    """
    from dwave.embedding import embed_bqm

    cap = chain_cap(properties)
    if chain_strength == SOLVER_CAP:
        fixed = cap
    else:
        fixed = None if isinstance(chain_strength, str) else float(chain_strength)
    if fixed is not None and not 0 < fixed <= cap:
        raise RbmdiffError(
            f"chain_strength {fixed} must lie in (0, {cap}]: the solver's strongest chain "
            f"coupling (j_range {list(properties['j_range'])}, extended_j_range "
            f"{properties.get('extended_j_range')}); with auto_scale=False use at most that")
    rule = chain_strength if chain_strength == SOLVER_CAP else (
        "fixed" if fixed is not None else chain_strength)
    cs1 = 0.0 if fixed is not None else rule_strength(h, J, embedding, rule, factor)
    limits = {"none": math.inf}
    if cs1 > 0 and any(len(c) > 1 for c in embedding.values()):
        limits["chain"] = cap / cs1
    if not clip:
        target = embed_bqm(dimod.BinaryQuadraticModel.from_ising(h, J), embedding, adjacency,
                           chain_strength=0.0)
        lin = np.array(list(target.linear.values()) or [0.0])
        owner = {q: label for label, chain in embedding.items() for q in chain}
        quad = np.array([v for (a, b), v in target.quadratic.items()
                         if owner[a] != owner[b]] or [0.0])
        limits["h_range"] = _fit(lin, properties["h_range"])
        limits["j_range"] = _fit(quad, properties["j_range"])
    which = min(limits, key=limits.get)
    return Scaling(limits[which], which, cs1, fixed, cap, rule)


def plan_logical(h: dict, J: dict, properties: dict, *, clip: bool) -> Scaling:
    """The prefactor cap of an unembedded problem (an unstructured device): its h and J must
    fit the ranges the device declares, if any."""
    limits = {"none": math.inf}
    if not clip:
        for key, values in (("h_range", list(h.values())), ("j_range", list(J.values()))):
            if key in properties:
                limits[key] = _fit(np.array(values or [0.0]), properties[key])
    which = min(limits, key=limits.get)
    return Scaling(limits[which], which, 0.0, None, math.inf, "no chains")


def _fit(values: np.ndarray, rng) -> float:
    """The largest p with p · values inside [rng[0], rng[1]]."""
    lo, hi = float(rng[0]), float(rng[1])
    top, bottom = float(values.max(initial=0.0)), float(values.min(initial=0.0))
    return min(hi / top if top > 0 else math.inf, lo / bottom if bottom < 0 else math.inf)
