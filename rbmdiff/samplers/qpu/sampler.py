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

Per-run settings (``settings.PER_RUN``: annealing, chain strength, calibration effort,
post-processing, verdict) may also be passed to :meth:`QPUSampler.sample`, as a dimod
sampler takes its parameters per call; the concerns live in their own modules (:mod:`.settings`,
:mod:`.device`, :mod:`.embedded`, :mod:`.prefactor`, :mod:`.run`, :mod:`.verdict`,
:mod:`.facts`). ``dwave.system`` is imported inside this package only.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from rbmdiff.errors import RbmdiffError
from rbmdiff.rbm import RBM
from rbmdiff.samplers.base import Samples, Timer, check_request, make_info
from rbmdiff.samplers.qpu import check, embedding, prefactor
from rbmdiff.samplers.qpu.device import Device, check_sampler, describe, open_device
from rbmdiff.samplers.qpu.device import mock_kind as choose_mock
from rbmdiff.samplers.qpu.embedded import EmbeddedSolver, check_accepts, embed_on
from rbmdiff.samplers.qpu.facts import qpu_facts, run_info
from rbmdiff.samplers.qpu.prefactor import CALIBRATION_READS
from rbmdiff.samplers.qpu.run import BROKEN_WARN, Run
from rbmdiff.samplers.qpu.settings import MOCK_SHAPES, PER_RUN, QPUSettings
from rbmdiff.samplers.qpu.verdict import QPUWarning, judge, warn
from rbmdiff.seeds import sampler_seed

__all__ = ["BROKEN_WARN", "CALIBRATION_READS", "MOCK_SHAPES", "PER_RUN", "POSTPROCESS_SEED",
           "EmbeddedSolver", "QPUSampler", "QPUSettings", "QPUWarning"]

POSTPROCESS_SEED = 20_000  # the post-processing chains' seed key


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
    The settings but ``sampler`` and ``budget`` are held, validated, in ``self.settings``
    (:class:`.settings.QPUSettings`).
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
        settings = dict(locals())  # the arguments, nothing else yet: all but these are settings
        for name in ("self", "sampler", "budget"):
            del settings[name]
        self.settings = QPUSettings(**settings)
        self.sampler, self.budget = sampler, budget
        self._solvers: dict[tuple, EmbeddedSolver] = {}

    def params(self, **overrides: Any) -> dict:
        """The settings of a run (given ``overrides``, as ``sample()`` takes them)."""
        return self._params(self.settings.replace(**overrides) if overrides else self.settings)

    def _params(self, s: QPUSettings) -> dict:
        return {"sampler": describe(self.sampler) if self.sampler is not None else None,
                **s.params()}

    def mock_kind(self) -> tuple[str | None, str]:
        """-> (the mock to use, or None for the QPU; why)."""
        return choose_mock(self.settings)

    def device(self, n_visible: int, n_hidden: int, *, layout: dict | None = None) -> Device:
        """The device to sample: ``sampler=`` as given, else a mock (on a native model's
        graph; an oversized K_{n,m} refused before it is built) or the QPU."""
        return open_device(self.sampler, self.settings, n_visible, n_hidden, layout=layout)

    def embed(self, n_visible: int, n_hidden: int, *, seed: int = 0, layout: dict | None = None,
              weights: torch.Tensor | None = None) -> EmbeddedSolver:
        """Open the device, refuse K_{n,m} beyond its biclique limit before any search, and
        load or find the embedding (saved in ``embedding_dir``); with a native ``layout`` the
        identity embedding on the layout's graph (``weights`` checked); an unstructured
        device takes the logical problem (no embedding)."""
        return self._embed(self.settings, n_visible, n_hidden, seed=seed, layout=layout,
                           weights=weights)

    def _embed(self, s: QPUSettings, n_visible: int, n_hidden: int, *, seed: int,
               layout: dict | None, weights: torch.Tensor | None) -> EmbeddedSolver:
        """:meth:`embed` for a run of settings ``s`` (the device checked against them)."""
        if layout is not None:
            embedding.check_layout(layout, n_visible, n_hidden)
        dev = self.device(n_visible, n_hidden, layout=layout)
        check_accepts(dev, s)
        return embed_on(dev, s, n_visible, n_hidden, seed=seed, layout=layout,
                        weights=weights)

    def sample(self, rbm: RBM, num_samples: int, *, seed: int, **overrides: Any) -> Samples:
        """Draw ``num_samples`` visible states.  -> Samples with v: (num_samples, n) of 0/1
        and raw_v, the device's own reads when post-processed.  ``overrides``: per-run
        settings (``PER_RUN``), for this call only, as if given to the constructor."""
        settings = self.settings.replace(**overrides) if overrides else self.settings
        check_request(rbm, num_samples, seed)
        if not all(bool(torch.isfinite(p).all()) for p in rbm.parameters()):
            raise RbmdiffError("the model's W, b or c hold NaN or inf: nothing to sample; "
                               "retrain or reload the model")
        return self._draw(settings, rbm, num_samples, seed)

    def _draw(self, s: QPUSettings, rbm: RBM, num_samples: int, seed: int) -> Samples:
        """Calibrate, draw the final reads, judge them and report (module docstring)."""
        timer = Timer()
        solver = self._solver(s, rbm, seed)
        run = Run(s, solver, rbm, seed, budget=self.budget)
        chosen = prefactor.choose(run, s, rbm, solver, num_samples, seed)
        final, p = run.final_reads(chosen.value, num_samples, chosen.history)
        v, h = final["v"], final["h"]
        if s.postprocess_sweeps:
            v, h = _postprocess(rbm, final["v"], s.postprocess_sweeps, seed)
        j = judge(rbm, final, v, h, chosen.ref, num_samples=num_samples, seed=seed,
                  alpha=s.alpha, asked=s.verdict, sweeps=s.postprocess_sweeps)
        prefactor.keep(chosen, s, run, final, p, num_samples, j.reached)
        warn(run, chosen.search, final, j, s.postprocess_sweeps)
        # the result's QPU access: its calibration's and its final reads' (from the read
        # store or paid now); what this run paid is the campaign ledger's business
        access = run.timing.get("qpu_access_time", 0.0) + (chosen.access if chosen.cached
                                                           else 0.0)
        facts = qpu_facts(solver, run, chosen, final, p, j, qpu_access=access,
                          sweeps=s.postprocess_sweeps)
        params = self._params(s)
        if solver.topology is not None:  # a native model runs on its layout's topology
            params["topology"] = solver.topology
        info = make_info(self, seed=seed, num_samples=num_samples, wall_s=timer.elapsed,
                         cost_units=access, cost_unit="qpu_access_us", params=params,
                         **run_info(facts, solver, run, chosen, final, j))
        return Samples(v=v.to(torch.float32), info=info,
                       raw_v=final["v"].to(torch.float32) if s.postprocess_sweeps else None)

    def _solver(self, s: QPUSettings, rbm: RBM, seed: int) -> EmbeddedSolver:
        """The device with this model's embedding: opened and embedded once per model shape
        (and layout), the layout's couplers checked against this model's weights."""
        layout = s.layout if s.layout is not None else rbm.meta.get("layout")
        shape = (rbm.n_visible, rbm.n_hidden, repr(layout))
        solver = self._solvers.get(shape)
        if solver is None:  # open the device and embed once per model shape
            solver = self._solvers[shape] = self._embed(
                s, rbm.n_visible, rbm.n_hidden, seed=seed, layout=layout, weights=rbm.W)
        else:  # a device opened for an earlier run: checked against this run's settings
            check_accepts(solver.device, s)  # (a new one was checked by _embed, weights too)
            if layout is not None:  # this model's weights on the layout's couplers
                embedding.native_embedding(layout, solver.graph, rbm.W)
        return solver


def _postprocess(rbm: RBM, v: torch.Tensor, sweeps: int, seed: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """``sweeps`` block-Gibbs sweeps of the logical RBM from the reads v, then h ~ p(h | v).
    -> (v, h), float64."""
    g = torch.Generator().manual_seed(sampler_seed(seed, POSTPROCESS_SEED))
    model = rbm.detach().to(torch.float64)
    v = model.gibbs(v.to(torch.float64), sweeps, generator=g)
    return v, model.sample_hidden(v, generator=g)
