"""A QPU run's ``info``: its :class:`rbmdiff.records.QPUFacts` (the fields its record keeps,
typed), laid out among the rest of what the run found, in the order the info has always
had (the pipeline's outputs hold it)."""

from __future__ import annotations

from dataclasses import asdict

from rbmdiff.records import VERDICT_FACTS, QPUFacts
from rbmdiff.samplers.qpu.embedded import EmbeddedSolver
from rbmdiff.samplers.qpu.prefactor import Prefactor
from rbmdiff.samplers.qpu.run import Run
from rbmdiff.samplers.qpu.verdict import Judgement


def qpu_facts(solver: EmbeddedSolver, run: Run, chosen: Prefactor, final: dict, p: float,
              j: Judgement, *, qpu_access: float, sweeps: int) -> QPUFacts:
    """The facts of a run whose final reads ``final`` were drawn at prefactor ``p``."""
    device = solver.info()
    return QPUFacts(
        chain_break_fraction=final["chain_break_fraction"],
        beta_eff=final["beta_model"] / p, beta_eff_low=final["low"] / p,
        beta_eff_high=final["high"] / p, beta_model=final["beta_model"], prefactor=p,
        chain_strength=run.scale.chain_strength(p) if run.has_chains else 0.0,
        clipped=final["clipped"], target_reached=j.reached, rounds=len(chosen.history),
        **{k: j.verdict.get(k) for k in VERDICT_FACTS},
        calibration_reused=chosen.cached is not None, postprocess_sweeps=sweeps,
        qpu_access_time=qpu_access, num_qubits=device["num_qubits"], mock=device["mock"],
        mock_kind=device["mock_kind"])


def run_info(facts: QPUFacts, solver: EmbeddedSolver, run: Run, chosen: Prefactor,
             final: dict, j: Judgement) -> dict:
    """The info fields of a QPU run past the common ones (``make_info``): every fact from
    ``facts`` (the verdict's only where a verdict was drawn), each in its place."""
    f = asdict(facts)
    if not j.verdict:
        for k in VERDICT_FACTS:
            del f[k]
    scale = run.scale
    info = {
        **solver.info(), **_take(f, "mock", "mock_kind", "num_qubits"),
        **_take(f, "prefactor"), "prefactor_max": scale.prefactor_max,
        "prefactor_limited_by": scale.limited_by, **_take(f, "chain_strength"),
        "chain_strength_rule": scale.rule, "chain_strength_factor": run.factor,
        **_take(f, "clipped", "chain_break_fraction", "beta_eff", "beta_eff_low",
                "beta_eff_high", "beta_model"),
        "beta_model_low": final["low"], "beta_model_high": final["high"],
        "beta_tolerance": j.tolerance, "beta_reads": final["beta_reads"],
        **_take(f, "target_reached"), "out_of_reach": chosen.search.out_of_reach,
        **_take(f, "rounds", "calibration_reused"),
        "calibration_reads": run.reads - len(final["v"]), "calibration": chosen.history,
        **j.verdict, **_take(f, *(k for k in VERDICT_FACTS if k in f)),
        **{f"raw_{k}": val for k, val in j.raw.items()},
        **_take(f, "postprocess_sweeps", "qpu_access_time"), "qpu_calls": run.calls,
        "reused_calls": run.reused_calls, "timing": dict(run.timing),
        "problem_ids": run.problem_ids, "sampler_seeds": run.seeds,
    }
    if f:
        raise RuntimeError(f"QPU facts left out of the info: {sorted(f)}")
    return info


def _take(facts: dict, *names: str) -> dict:
    """Remove ``names`` from ``facts`` and return them, in that order."""
    return {name: facts.pop(name) for name in names}
