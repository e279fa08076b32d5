"""The ``qpu`` sampler: the RBM's Ising form on a D-Wave QPU, a mock, or any dimod sampler,
calibrated to β = 1 and tested against the model on every run.

A quantum annealer returns reads roughly ∝ exp(−β_dev · E_programmed) with β_dev a property of
the device, not known in advance (≈ 5–6 in programmed units on Advantage). The sampler programs
E_programmed = p · E_Ising (``auto_scale=False``) and finds the prefactor p at which the
logical reads' β in the model's own units (β_model, pseudo-likelihood) is 1:

1. the device (:mod:`.device`): ``sampler=`` any dimod sampler, else the QPU or a mock; a
   structured one is embedded (K_{n,m}, cached; identity for a hardware-native model), an
   unstructured one gets the logical problem;
2. cap p so that every programmed h, J and chain coupling fits the device's ranges
   (:mod:`.scaling`); clipping happens only with ``clip=True`` and is recorded;
3. chain strength p · cs₁ with cs₁ = f · max|J|: with no factor given, f climbs the rungs of
   ``CHAIN_LADDER`` (the last is the strongest chain the solver allows) whenever a
   calibration's or the final reads break ``LADDER_BROKEN`` or more of their chains — weak
   chains freeze later in an anneal, so the weakest that holds is preferred;
4. search p from 1/beta_eff (default ``NOMINAL_QPU_BETA``) by a bracketed search
   (:mod:`.calibration`) on reads as many as the final ones (at least 1,000), until β_model
   is within what those reads resolve of 1; the result is cached beside the embedding
   (keyed by model, embedding, device and settings) and reused by later runs;
5. draw the final reads (majority vote on broken chains), re-estimate β_model on them, and
   test them against the model (:mod:`.check`): every run reports the verdict, and a failed
   test, an unreached β or broken chains is a :class:`QPUWarning` naming what failed;
6. optionally (``postprocess_sweeps=k``) run k block-Gibbs sweeps of the logical RBM from
   the device's reads; both verdicts are reported and the raw reads kept in ``Samples.raw_v``.

``dwave.system`` is imported inside this package only.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rbmdiff.choices import TOPOLOGIES
from rbmdiff.errors import RbmdiffError
from rbmdiff.rbm import RBM
from rbmdiff.samplers.anneal import sampler_seed
from rbmdiff.samplers.base import Samples, Timer, check_request, make_info
from rbmdiff.samplers.qpu import calibration, check, embedding, scaling, solvers
from rbmdiff.samplers.qpu.device import Device, check_sampler, describe
from rbmdiff.samplers.qpu.run import Run

MOCK_SHAPES = {"pegasus": [8], "zephyr": [5, 4]}  # K_{76,76} and K_{72,72}: digits (64) fit
CALIBRATION_READS = 1000  # at least this many reads per calibration round
BROKEN_WARN = 0.01  # warn above 1 % broken chains
POSTPROCESS_SEED = 20_000  # the post-processing chains' seed key


class QPUWarning(UserWarning):
    """The QPU route sampled something other than the model at β = 1 (and says what)."""


class QPUSampler:
    """RBM reads from any dimod sampler, a D-Wave QPU or a mock, calibrated to β = 1 and
    tested against the model (module docstring).

    sampler: a ``dimod.Sampler`` to sample with (structured: embedded on its graph;
    unstructured: the logical problem); None = the QPU or a mock, by ``mock``: "thermal" or
    "annealer" (:mod:`.solvers`); None = the QPU when a token is configured, else "annealer";
    True = "annealer"; False = the QPU only. topology: 'pegasus' or 'zephyr' (the QPU's or
    mock's); mock_shape: the mock's graph (default pegasus P8 / zephyr Z5, t = 4).
    mock_beta: the mock's inverse temperature in programmed units (not told to the route);
    mock_sweeps: its sweeps per read. solver: a QPU solver name. beta_eff: the first guess
    of the device's β (default ``NOMINAL_QPU_BETA``); calibration_rounds: at most this many
    calibration samplings (0: program 1/beta_eff as is) of calibration_reads reads each
    (None: as many as the run draws, at least ``CALIBRATION_READS``); num_bootstrap:
    replicates for β's interval. chain_strength: a number (programmed units) or a rule,
    "relative" (default: chain_strength_factor · p · max|J|) or "utc" (uniform torque
    compensation); chain_strength_factor None = the weakest rung of the ladder that holds.
    clip: cut h and J into the device's ranges instead of capping p.
    layout: a native layout (:func:`rbmdiff.topology.native_layout`), default the model's
    meta["layout"]. num_reads: reads per device call; annealing_time: µs (refused by a
    device that takes none). embedding_dir / embedding_timeout: the embedding cache and the
    minorminer fallback's time. calibration_dir: where calibrations are kept (default
    ``embedding_dir``/calibration); reuse_calibration: False calibrates afresh (and stores
    the new result). postprocess_sweeps: block-Gibbs sweeps of the logical RBM from the
    device's reads (0: the reads as they are). verdict: test the reads against the model
    (False only where something else judges them, e.g. a training run's negative phase);
    alpha: the verdict's false-alarm rate.
    read_store: a folder keeping every paid call's reads; retries / retry_backoff: a transient
    cloud fault of a device call (or of opening the QPU) is retried up to ``retries`` times,
    after retry_backoff·2^k s, then raised as a TransientError.
    budget: None, or an object whose ``wrap(child)`` returns the sampler every call goes
    through (``flows.budget.RunBudget`` estimates each call and refuses an overrun).
    """

    name = "qpu"

    def __init__(
        self,
        *,
        sampler: Any = None,
        topology: str = "pegasus",
        mock: bool | str | None = None,
        mock_shape: list[int] | None = None,
        mock_beta: float = 5.0,
        mock_sweeps: int = 1000,
        solver: str | None = None,
        beta_eff: float | None = None,
        calibration_rounds: int = 4,
        calibration_reads: int | None = None,
        num_bootstrap: int = 100,
        chain_strength: float | str | None = None,
        chain_strength_factor: float | None = None,
        clip: bool = False,
        layout: dict | None = None,
        num_reads: int | None = None,
        annealing_time: float | None = None,
        embedding_dir: str | os.PathLike | None = None,
        embedding_timeout: float = 60.0,
        calibration_dir: str | os.PathLike | None = None,
        reuse_calibration: bool = True,
        postprocess_sweeps: int = 0,
        verdict: bool = True,
        alpha: float = check.ALPHA,
        read_store: str | os.PathLike | None = None,
        retries: int = 3,
        retry_backoff: float = 2.0,
        budget: Any = None,
    ) -> None:
        if sampler is not None:
            check_sampler(sampler)
        if topology not in TOPOLOGIES:
            raise RbmdiffError(f"unknown topology {topology!r}; choose one of {TOPOLOGIES}")
        if not (mock is None or isinstance(mock, bool) or mock in solvers.MOCK_KINDS):
            raise RbmdiffError(f"mock must be None, True, False or one of "
                               f"{solvers.MOCK_KINDS}, got {mock!r}")
        for label, x in (("mock_beta", mock_beta), ("beta_eff", beta_eff),
                         ("embedding_timeout", embedding_timeout),
                         ("chain_strength_factor", chain_strength_factor),
                         ("annealing_time", annealing_time)):
            if x is not None and not (_number(x) and math.isfinite(x) and x > 0):
                raise RbmdiffError(f"{label} must be a positive number, got {x!r}")
        if not (_number(alpha) and 0 < alpha < 1):
            raise RbmdiffError(f"alpha must lie in (0, 1), got {alpha!r}")
        for label, k, low in (("mock_sweeps", mock_sweeps, 1), ("calibration_rounds",
                              calibration_rounds, 0), ("num_bootstrap", num_bootstrap, 0),
                              ("postprocess_sweeps", postprocess_sweeps, 0),
                              ("retries", retries, 0)):
            if not _integer(k) or k < low:
                raise RbmdiffError(f"{label} must be an integer ≥ {low}, got {k!r}")
        for label, k in (("num_reads", num_reads), ("calibration_reads", calibration_reads)):
            if k is not None and (not _integer(k) or k < 1):
                raise RbmdiffError(f"{label} must be a positive integer or None, got {k!r}")
        if mock_shape is not None and not _shape_ok(topology, mock_shape):
            raise RbmdiffError(
                f"mock_shape {mock_shape!r} is no {topology} shape: give [M] with M ≥ 2 for "
                "pegasus (e.g. [8]), [m, t] with m, t ≥ 1 for zephyr (e.g. [5, 4])")
        chain_strength = "relative" if chain_strength is None else chain_strength
        if isinstance(chain_strength, str):
            if chain_strength not in scaling.CHAIN_RULES:
                raise RbmdiffError(f"unknown chain_strength rule {chain_strength!r}; give a "
                                   f"number or one of {scaling.CHAIN_RULES}")
        elif not (_number(chain_strength) and math.isfinite(chain_strength)
                  and chain_strength > 0):
            raise RbmdiffError(f"chain_strength must be positive, got {chain_strength!r}")
        if not (_number(retry_backoff) and retry_backoff >= 0):
            raise RbmdiffError(f"retry_backoff must be ≥ 0 s, got {retry_backoff!r}")
        self.sampler, self.topology, self.mock, self.solver = sampler, topology, mock, solver
        self.mock_shape = list(mock_shape or MOCK_SHAPES[topology])
        self.mock_beta, self.mock_sweeps = float(mock_beta), mock_sweeps
        self.beta_eff, self.calibration_rounds = beta_eff, calibration_rounds
        self.calibration_reads, self.num_bootstrap = calibration_reads, num_bootstrap
        self.chain_strength, self.chain_strength_factor = chain_strength, chain_strength_factor
        self.clip, self.layout = bool(clip), layout
        self.num_reads, self.annealing_time = num_reads, annealing_time
        self.embedding_dir = (Path(embedding_dir) if embedding_dir
                              else embedding.default_embedding_dir())
        self.embedding_timeout = embedding_timeout
        self.calibration_dir = (Path(calibration_dir) if calibration_dir
                                else self.embedding_dir / "calibration")
        self.reuse_calibration = bool(reuse_calibration)
        self.postprocess_sweeps, self.alpha = postprocess_sweeps, float(alpha)
        self.verdict = bool(verdict)
        self.read_store = Path(read_store) if read_store else None
        self.retries, self.retry_backoff = retries, retry_backoff
        self.budget = budget
        self._solvers: dict[tuple, EmbeddedSolver] = {}

    def params(self) -> dict:
        return {
            "sampler": describe(self.sampler) if self.sampler is not None else None,
            "topology": self.topology, "mock": self.mock, "mock_shape": self.mock_shape,
            "mock_beta": self.mock_beta, "mock_sweeps": self.mock_sweeps, "solver": self.solver,
            "beta_eff": self.beta_eff, "calibration_rounds": self.calibration_rounds,
            "calibration_reads": self.calibration_reads, "num_bootstrap": self.num_bootstrap,
            "chain_strength": self.chain_strength,
            "chain_strength_factor": self.chain_strength_factor, "clip": self.clip,
            "num_reads": self.num_reads, "annealing_time": self.annealing_time,
            "postprocess_sweeps": self.postprocess_sweeps, "verdict": self.verdict,
            "alpha": self.alpha,
            "retries": self.retries,
        }

    def mock_kind(self) -> tuple[str | None, str]:
        """-> (the mock to use, or None for the QPU; why)."""
        if isinstance(self.mock, str):
            return self.mock, f"mock={self.mock!r} requested"
        if self.mock is True:
            return "annealer", "mock=True requested (the annealer mock)"
        if solvers.has_token():
            return None, "D-Wave token configured"
        if self.mock is False:
            raise RbmdiffError(
                "mock=False needs a D-Wave token: set DWAVE_API_TOKEN or run `dwave config "
                "create`; or pass mock='annealer' (or 'thermal') to sample offline")
        return "annealer", ("no D-Wave token configured (DWAVE_API_TOKEN unset, no dwave config "
                            "file): the annealer mock")

    def device(self, n_visible: int, n_hidden: int, *, layout: dict | None = None) -> Device:
        """The device to sample: ``sampler=`` as given, else a mock (on a native model's
        graph; an oversized K_{n,m} refused before it is built) or the QPU."""
        if self.sampler is not None:
            return Device(self.sampler, describe(self.sampler), None, "sampler= given")
        kind, reason = self.mock_kind()
        if kind is None:
            child = solvers.open_qpu(self.topology, self.solver, retries=self.retries,
                                     backoff=self.retry_backoff)
            return Device(child, describe(child), None, reason)
        topology, shape = self.topology, self.mock_shape
        if layout is not None:
            topology, shape = layout["topology"], list(layout["shape"])
        else:
            embedding.check_embeddable(n_visible, n_hidden, topology, shape)
        child = solvers.mock_solver(kind, topology, shape, beta=self.mock_beta,
                                    sweeps=self.mock_sweeps)
        name = f"{describe(child)}({kind} mock, {topology} {shape})"
        return Device(child, name, kind, reason)

    def embed(self, n_visible: int, n_hidden: int, *, seed: int = 0, layout: dict | None = None,
              weights: torch.Tensor | None = None) -> EmbeddedSolver:
        """Open the device, refuse K_{n,m} beyond its biclique limit before any search, and
        load or find the embedding (saved in ``embedding_dir``); with a native ``layout`` the
        identity embedding on the layout's graph (``weights`` checked); an unstructured
        device takes the logical problem (no embedding)."""
        n, m = n_visible, n_hidden
        if layout is not None:
            embedding.check_layout(layout, n, m)
        dev = self.device(n, m, layout=layout)
        if self.annealing_time is not None and not dev.accepts("annealing_time"):
            raise RbmdiffError(f"the device {dev.name} takes no annealing_time: drop "
                               f"annealing_time={self.annealing_time}")
        if not dev.accepts("num_reads"):
            raise RbmdiffError(f"the device {dev.name} takes no num_reads: the QPU route needs "
                               "a sampler that draws a given number of reads")
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
                folder=self.embedding_dir, timeout=self.embedding_timeout,
                seed=sampler_seed(seed))
        if dev.mock_kind == "thermal":  # the thermal mock draws chains layer by layer
            dev.sampler.substitute_kwargs["layers"] = [
                [emb[f"v{i}"] for i in range(n)], [emb[f"h{j}"] for j in range(m)]]
        return EmbeddedSolver(dev, topology, shape, emb, method, path, graph)

    def sample(self, rbm: RBM, num_samples: int, *, seed: int) -> Samples:
        """Draw ``num_samples`` visible states.  -> Samples with v: (num_samples, n) of 0/1
        and raw_v, the device's own reads when post-processed."""
        check_request(rbm, num_samples, seed)
        if not all(bool(torch.isfinite(p).all()) for p in rbm.parameters()):
            raise RbmdiffError("the model's W, b or c hold NaN or inf: nothing to sample; "
                               "retrain or reload the model")
        timer = Timer()
        layout = self.layout if self.layout is not None else rbm.meta.get("layout")
        shape = (rbm.n_visible, rbm.n_hidden, repr(layout))
        if shape not in self._solvers:  # open the device and embed once per model shape
            self._solvers[shape] = self.embed(rbm.n_visible, rbm.n_hidden, seed=seed,
                                              layout=layout, weights=rbm.W)
        solver = self._solvers[shape]
        if layout is not None:  # this model's weights on the layout's couplers
            embedding.native_embedding(layout, solver.graph, rbm.W)
        run = Run(self, solver, rbm, seed)
        reads = self.calibration_reads or max(CALIBRATION_READS, num_samples)
        key = self._calibration_key(rbm, solver)
        cached = (calibration.load(self.calibration_dir, key)
                  if self.reuse_calibration and self.calibration_rounds > 0 else None)
        calibrating = cached is None and self.calibration_rounds > 0
        ref = check.reference(rbm, seed=seed) if self.verdict or calibrating else None
        calib: list[dict] = list(cached.get("history", [])) if cached else []
        p, search = self._calibrate(run, cached, reads, ref, calib)
        # what the calibration in use cost (its reads' QPU access), paid now or by the run
        # that cached it: the result's cost is the same either way
        calib_access = (float(cached.get("qpu_access_time", 0.0)) if cached
                        else run.timing.get("qpu_access_time", 0.0))
        run.start_final()
        final = run.sample_and_estimate(p, num_samples)
        while final["chain_break_fraction"] > BROKEN_WARN and run.climb():
            calib.append({**final["summary"], "final": True})  # re-checked at the final p
            p = min(p, run.scale.prefactor_max)
            final = run.sample_and_estimate(p, num_samples)
        tol = check.beta_tolerance(ref, num_samples) if ref is not None else 0.0
        reached = abs(final["beta_model"] - 1) <= tol or final["low"] <= 1 <= final["high"]
        if calibrating and (reached or search.out_of_reach):  # a conclusive search: keep it
            calibration.save(self.calibration_dir, key, {
                "prefactor": p, "rung": run.rung, "beta_model": final["beta_model"],
                "out_of_reach": search.out_of_reach, "reads": run.reads - num_samples,
                "history": calib, "qpu_access_time": calib_access})
        v, h = final["v"], final["h"]
        if self.postprocess_sweeps:
            v, h = _postprocess(rbm, final["v"], self.postprocess_sweeps, seed)
        raw, verdict = {}, {}
        if self.verdict:
            raw = check.fidelity(rbm, final["v"], final["h"], ref, seed=seed, alpha=self.alpha)
            verdict = (check.fidelity(rbm, v, h, ref, seed=seed, alpha=self.alpha)
                       if self.postprocess_sweeps else raw)
        _warn(run, search, final, reached, tol, verdict, self.postprocess_sweeps)
        # the result's QPU access: its calibration's and its final reads' (from the read
        # store or paid now); what this run paid is the campaign ledger's business
        qpu_access = run.timing.get("qpu_access_time", 0.0) + (calib_access if cached else 0.0)
        info = make_info(
            self, seed=seed, num_samples=num_samples, wall_s=timer.elapsed,
            cost_units=qpu_access, cost_unit="qpu_access_us", **solver.info(),
            prefactor=p, prefactor_max=run.scale.prefactor_max,
            prefactor_limited_by=run.scale.limited_by,
            chain_strength=run.scale.chain_strength(p) if run.has_chains else 0.0,
            chain_strength_rule=run.scale.rule, chain_strength_factor=run.factor,
            clipped=final["clipped"], chain_break_fraction=final["chain_break_fraction"],
            beta_eff=final["beta_model"] / p, beta_eff_low=final["low"] / p,
            beta_eff_high=final["high"] / p, beta_model=final["beta_model"],
            beta_model_low=final["low"], beta_model_high=final["high"], beta_tolerance=tol,
            beta_reads=final["beta_reads"], target_reached=bool(reached),
            out_of_reach=search.out_of_reach, rounds=len(calib),
            calibration_reused=cached is not None, calibration_reads=run.reads - num_samples,
            calibration=calib, **verdict,
            **{f"raw_{k}": val for k, val in raw.items()},
            postprocess_sweeps=self.postprocess_sweeps,
            qpu_access_time=qpu_access, qpu_calls=run.calls, reused_calls=run.reused_calls,
            timing=dict(run.timing), problem_ids=run.problem_ids, sampler_seeds=run.seeds,
        )
        if solver.topology is not None:  # a native model runs on its layout's topology
            info["params"] = {**info["params"], "topology": solver.topology}
        return Samples(v=v.to(torch.float32), info=info,
                       raw_v=final["v"].to(torch.float32) if self.postprocess_sweeps else None)

    def _calibrate(self, run: Run, cached: dict | None, reads: int, ref: check.Reference,
                   calib: list) -> tuple[float, calibration.Search]:
        """The prefactor: the cached one, 1/beta_eff with calibration off, or the search's,
        climbing a chain rung whenever a calibration's reads break too many chains."""
        nominal = self.beta_eff or solvers.NOMINAL_QPU_BETA
        if cached is not None:
            run.rung = min(int(cached.get("rung", 0)), len(run.ladder) - 1)
            run.replan()
            p = min(float(cached["prefactor"]), run.scale.prefactor_max)
            out = bool(cached.get("out_of_reach", False))
            return p, calibration.Search(p, converged=not out, out_of_reach=out)
        if self.calibration_rounds == 0:
            p = min(1 / nominal, run.scale.prefactor_max)
            return p, calibration.Search(p, converged=False, out_of_reach=False)

        def measure(p: float) -> tuple[float, float, float]:
            """β_model at p on the weakest rung from here whose chains hold."""
            while True:
                est = run.sample_and_estimate(min(p, run.scale.prefactor_max), reads)
                calib.append(est["summary"])
                if est["chain_break_fraction"] < scaling.LADDER_BROKEN or not run.climb():
                    return est["beta_model"], est["low"], est["high"]

        search = calibration.solve_prefactor(
            measure, 1 / nominal, lambda: run.scale.prefactor_max,
            rounds=self.calibration_rounds, tol=check.beta_tolerance(ref, reads, z=1.0))
        return min(search.prefactor, run.scale.prefactor_max), search

    def _calibration_key(self, rbm: RBM, solver: EmbeddedSolver) -> str:
        """What determines this run's calibration (:func:`calibration.cache_key`)."""
        W, b, c = (p.detach().to(torch.float64).cpu().numpy() for p in rbm.parameters())
        settings = {"annealing_time": self.annealing_time, "clip": self.clip,
                    "chain_strength": self.chain_strength,
                    "chain_strength_factor": self.chain_strength_factor}
        if solver.device.mock_kind is not None:
            settings.update(mock_beta=self.mock_beta, mock_sweeps=self.mock_sweeps)
        return calibration.cache_key(W=W, b=b, c=c, embedding=solver.embedding,
                                     device=solver.device.name, settings=settings)


def _postprocess(rbm: RBM, v: torch.Tensor, sweeps: int, seed: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """``sweeps`` block-Gibbs sweeps of the logical RBM from the reads v, then h ~ p(h | v).
    -> (v, h), float64."""
    g = torch.Generator().manual_seed(sampler_seed(seed, POSTPROCESS_SEED))
    model = rbm.detach().to(torch.float64)
    v = model.gibbs(v.to(torch.float64), sweeps, generator=g)
    return v, model.sample_hidden(v, generator=g)


def _warn(run: Run, search: calibration.Search, final: dict, reached: bool, tol: float,
          verdict: dict, sweeps: int) -> None:
    """Say, as QPUWarning, how the reads fall short of the model at β = 1."""
    b, low, high = final["beta_model"], final["low"], final["high"]
    what = f"{sweeps} Gibbs sweeps from the device's reads" if sweeps else "the reads"
    if not verdict.get("fidelity_ok", True):
        warnings.warn(
            f"{what} fail the test against the model: {verdict['fidelity_worst']} is off by "
            f"z = {verdict['fidelity_z']:.1f} (adjusted p = {verdict['fidelity_p']:.2g} over "
            f"{verdict['fidelity_stats']} statistics): they are not the model's law; try "
            "postprocess_sweeps=10 or more", QPUWarning, stacklevel=3)
    if not reached and verdict:  # no verdict asked: the caller judges the reads
        if search.out_of_reach or (b < 1 and search.prefactor >= run.scale.prefactor_max):
            warnings.warn(
                f"β = 1 is out of reach: the largest prefactor {run.scale.prefactor_max:.4g} "
                f"(set by {run.scale.limited_by}) gives reads of logical β_model = {b:.3f} "
                f"[{low:.3f}, {high:.3f}] (pseudo-likelihood): hotter than the model"
                + ("; clip=True would cut h, J instead" if run.scale.limited_by != "chain"
                   else ""), QPUWarning, stacklevel=3)
        else:
            warnings.warn(
                f"β_model = {b:.3f} [{low:.3f}, {high:.3f}] of the reads is not 1 within what "
                f"they resolve (±{tol:.3f}) after {len(search.points)} calibration rounds; "
                "raise calibration_rounds", QPUWarning, stacklevel=3)
    if final["chain_break_fraction"] > BROKEN_WARN:
        warnings.warn(f"{100 * final['chain_break_fraction']:.1f} % of chains broke even on "
                      "the strongest chain tried (majority vote); pass a larger "
                      "chain_strength_factor", QPUWarning, stacklevel=3)


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
