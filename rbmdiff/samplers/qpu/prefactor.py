"""The prefactor p a run programs (E_programmed = p · E_Ising): a cached calibration's,
1/beta_eff with calibration off, or the bracketed search's (:mod:`.calibration`) for
β_model(p) = 1, climbing a chain rung whenever a calibration's reads break too many chains;
a conclusive search is cached for later runs."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rbmdiff.rbm import RBM
from rbmdiff.samplers.qpu import calibration, check, scaling, solvers
from rbmdiff.samplers.qpu.embedded import EmbeddedSolver
from rbmdiff.samplers.qpu.run import Run
from rbmdiff.samplers.qpu.settings import QPUSettings

CALIBRATION_READS = 1000  # at least this many reads per calibration round


@dataclass
class Prefactor:
    """The prefactor chosen for a run and how: ``cached`` the calibration reused (None:
    searched now or not calibrated), ``history`` each calibration sampling's summary,
    ``access`` the QPU access (µs) the calibration in use cost, paid now or by the run that
    cached it; ``searched`` whether this run searched (and may cache its result under
    ``key``)."""

    value: float
    search: calibration.Search
    history: list[dict]
    cached: dict | None
    key: str
    ref: check.Reference | None
    access: float
    searched: bool


def choose(run: Run, s: QPUSettings, rbm: RBM, solver: EmbeddedSolver, num_samples: int,
           seed: int) -> Prefactor:
    """The run's prefactor (module docstring); the reference for the verdict drawn when a
    verdict or a search needs it."""
    reads = s.calibration_reads or max(CALIBRATION_READS, num_samples)
    key = cache_key(s, rbm, solver)
    cached = (calibration.load(s.calibration_dir, key)
              if s.reuse_calibration and s.calibration_rounds > 0 else None)
    searching = cached is None and s.calibration_rounds > 0
    ref = check.reference(rbm, seed=seed) if s.verdict or searching else None
    history: list[dict] = list(cached.get("history", [])) if cached else []
    p, search = _prefactor(run, s, cached, reads, ref, history)
    access = (float(cached.get("qpu_access_time", 0.0)) if cached
              else run.timing.get("qpu_access_time", 0.0))
    return Prefactor(p, search, history, cached, key, ref, access, searching)


def _prefactor(run: Run, s: QPUSettings, cached: dict | None, reads: int,
               ref: check.Reference | None, history: list) -> tuple[float, calibration.Search]:
    """The prefactor: the cached one, 1/beta_eff with calibration off, or the search's,
    climbing a chain rung whenever a calibration's reads break too many chains."""
    nominal = s.beta_eff or solvers.NOMINAL_QPU_BETA
    if cached is not None:
        run.rung = min(int(cached.get("rung", 0)), len(run.ladder) - 1)
        run.replan()
        p = min(float(cached["prefactor"]), run.scale.prefactor_max)
        out = bool(cached.get("out_of_reach", False))
        return p, calibration.Search(p, converged=not out, out_of_reach=out)
    if s.calibration_rounds == 0:
        p = min(1 / nominal, run.scale.prefactor_max)
        return p, calibration.Search(p, converged=False, out_of_reach=False)

    def measure(p: float) -> tuple[float, float, float]:
        """β_model at p on the weakest rung from here whose chains hold."""
        while True:
            est = run.sample_and_estimate(min(p, run.scale.prefactor_max), reads)
            history.append(est["summary"])
            if est["chain_break_fraction"] < scaling.LADDER_BROKEN or not run.climb():
                return est["beta_model"], est["low"], est["high"]

    search = calibration.solve_prefactor(
        measure, 1 / nominal, lambda: run.scale.prefactor_max,
        rounds=s.calibration_rounds, tol=check.beta_tolerance(ref, reads, z=1.0))
    return min(search.prefactor, run.scale.prefactor_max), search


def keep(chosen: Prefactor, s: QPUSettings, run: Run, final: dict, p: float,
         num_samples: int, reached: bool) -> None:
    """Cache a search's result once it is conclusive (β = 1 reached, or out of reach)."""
    if chosen.searched and (reached or chosen.search.out_of_reach):
        calibration.save(s.calibration_dir, chosen.key, {
            "prefactor": p, "rung": run.rung, "beta_model": final["beta_model"],
            "out_of_reach": chosen.search.out_of_reach, "reads": run.reads - num_samples,
            "history": chosen.history, "qpu_access_time": chosen.access})


def cache_key(s: QPUSettings, rbm: RBM, solver: EmbeddedSolver) -> str:
    """What determines this run's calibration (:func:`calibration.cache_key`)."""
    W, b, c = (p.detach().to(torch.float64).cpu().numpy() for p in rbm.parameters())
    settings = {"annealing_time": s.annealing_time, "clip": s.clip,
                "chain_strength": s.chain_strength,
                "chain_strength_factor": s.chain_strength_factor}
    if solver.device.mock_kind is not None:
        settings.update(mock_beta=s.mock_beta, mock_sweeps=s.mock_sweeps)
    return calibration.cache_key(W=W, b=b, c=c, embedding=solver.embedding,
                                 device=solver.device.name, settings=settings)
