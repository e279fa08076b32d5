"""How a run's final reads compare with the model at β = 1: β_model within what the reads
resolve, the test against the model (:mod:`.check`) of the reads returned and of the
device's own, and the :class:`QPUWarning` that says what fell short."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from rbmdiff.rbm import RBM
from rbmdiff.samplers.qpu import calibration, check
from rbmdiff.samplers.qpu.run import BROKEN_WARN, Run


class QPUWarning(UserWarning):
    """The QPU route sampled something other than the model at β = 1 (and says what)."""


@dataclass
class Judgement:
    """``tolerance``: the |β_model − 1| the reads resolve; ``reached``: β_model is 1 within
    it (or within its interval); ``verdict``: :func:`check.fidelity` of the reads returned,
    ``raw``: of the device's own reads (both {} when no verdict is asked)."""

    tolerance: float
    reached: bool
    verdict: dict
    raw: dict


def judge(rbm: RBM, final: dict, v: torch.Tensor, h: torch.Tensor, ref: check.Reference | None,
          *, num_samples: int, seed: int, alpha: float, asked: bool, sweeps: int) -> Judgement:
    """Judge the returned reads (v, h) and the device's (``final``'s) against ``ref``; the
    test only when ``asked``, the returned reads apart only when post-processed (``sweeps``)."""
    tol = check.beta_tolerance(ref, num_samples) if ref is not None else 0.0
    reached = abs(final["beta_model"] - 1) <= tol or final["low"] <= 1 <= final["high"]
    raw, verdict = {}, {}
    if asked:
        raw = check.fidelity(rbm, final["v"], final["h"], ref, seed=seed, alpha=alpha)
        verdict = (check.fidelity(rbm, v, h, ref, seed=seed, alpha=alpha)
                   if sweeps else raw)
    return Judgement(tol, bool(reached), verdict, raw)


def warn(run: Run, search: calibration.Search, final: dict, j: Judgement, sweeps: int
         ) -> None:
    """Say, as QPUWarning, how the reads fall short of the model at β = 1."""
    what = f"{sweeps} Gibbs sweeps from the device's reads" if sweeps else "the reads"
    verdict = j.verdict
    if not verdict.get("fidelity_ok", True):
        _warn(f"{what} fail the test against the model: {verdict['fidelity_worst']} is off by "
              f"z = {verdict['fidelity_z']:.1f} (adjusted p = {verdict['fidelity_p']:.2g} over "
              f"{verdict['fidelity_stats']} statistics): they are not the model's law; try "
              "postprocess_sweeps=10 or more")
    if not j.reached and verdict:  # no verdict asked: the caller judges the reads
        _warn(_beta_shortfall(run, search, final, j.tolerance))
    if final["chain_break_fraction"] > BROKEN_WARN:
        _warn(f"{100 * final['chain_break_fraction']:.1f} % of chains broke even on "
              "the strongest chain tried (majority vote); pass a larger "
              "chain_strength_factor")


def _beta_shortfall(run: Run, search: calibration.Search, final: dict, tol: float) -> str:
    """Why β_model is not 1: out of the device's reach, or not found in the rounds given."""
    b, low, high = final["beta_model"], final["low"], final["high"]
    if search.out_of_reach or (b < 1 and search.prefactor >= run.scale.prefactor_max):
        return (f"β = 1 is out of reach: the largest prefactor {run.scale.prefactor_max:.4g} "
                f"(set by {run.scale.limited_by}) gives reads of logical β_model = {b:.3f} "
                f"[{low:.3f}, {high:.3f}] (pseudo-likelihood): hotter than the model"
                + ("; clip=True would cut h, J instead" if run.scale.limited_by != "chain"
                   else ""))
    return (f"β_model = {b:.3f} [{low:.3f}, {high:.3f}] of the reads is not 1 within what "
            f"they resolve (±{tol:.3f}) after {len(search.points)} calibration rounds; "
            "raise calibration_rounds")


def _warn(message: str) -> None:
    """A QPUWarning pointing at the caller of ``QPUSampler.sample`` (this, :func:`warn`,
    ``QPUSampler._draw``, ``QPUSampler.sample``, its caller)."""
    warnings.warn(message, QPUWarning, stacklevel=5)
