"""The ``qpu`` sampler: the RBM's Ising form on a D-Wave QPU (or a mock), calibrated to β = 1.

A quantum annealer returns reads roughly ∝ exp(−β_dev · E_programmed) with β_dev a property of
the device (≈ 5–6 in programmed units on Advantage). The sampler programs
E_programmed = p · E_Ising (``auto_scale=False``) and finds the prefactor p at which the
logical reads' β in the model's own units (β_model, pseudo-likelihood) is 1:

1. embed K_{n,m} (cached; identity embedding for a hardware-native model, one qubit per unit);
2. cap p so that every programmed h, J and chain coupling fits the solver's ranges
   (:mod:`.scaling`); clipping happens only with ``clip=True`` and is recorded;
3. chain strength p · cs₁ under a rule relative to the problem, capped by the solver; a user
   value wins. By default, on an annealing device (QPU, annealer mock), cs₁ = f · max|J| with
   f the weakest rung of ``CHAIN_LADDER`` whose calibration reads break fewer than
   ``LADDER_BROKEN`` of the chains (weak chains freeze later in an anneal, so the logical
   reads are colder and closer to thermal); on the thermal mock, which has no freeze-out to
   offset, the chain is the strongest coupling the solver allows, whatever the prefactor;
4. search p from 1/β_nominal (the mock's mock_beta, a QPU's ``NOMINAL_QPU_BETA``) by a
   bracketed search (:mod:`.calibration`), β estimated from the reads whose chains all hold
   (all reads, majority-voted, when fewer than ``MIN_UNBROKEN`` hold);
5. draw the final reads at that p (majority vote on broken chains), report β_model, the chain
   breaks and a global check (mean energy against the model's, :mod:`.check`), and warn when
   the target is out of reach, chains break (> 1 %) or the global check disagrees.

``dwave.system`` is imported inside this package only.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dimod
import numpy as np
import torch

from rbmdiff.errors import RbmdiffError
from rbmdiff.ising import split_samples, to_ising
from rbmdiff.rbm import RBM
from rbmdiff.samplers.anneal import sampler_seed
from rbmdiff.samplers.base import Samples, Timer, check_request, make_info
from rbmdiff.samplers.qpu import calibration, check, embedding, scaling, solvers, store
from rbmdiff.samplers.qpu.temperature import estimate_beta

TOPOLOGIES = ("pegasus", "zephyr")
MOCK_SHAPES = {"pegasus": [8], "zephyr": [5, 4]}  # K_{76,76} and K_{72,72}: digits (64) fit
MIN_UNBROKEN = 50  # fewer unbroken reads than this: β from all reads (majority vote)
TARGET_TOL = 0.1  # |β_model − 1| within this: the target is reached
BROKEN_WARN = 0.01  # warn above 1 % broken chains


class QPUWarning(UserWarning):
    """The QPU route sampled something other than the model at β = 1 (and says what)."""


class QPUSampler:
    """RBM reads from a D-Wave QPU or a mock, calibrated to β = 1 (module docstring).

    mock: "thermal" or "annealer" (:mod:`.solvers`); None = the QPU when a token is
    configured, else "annealer"; True = "annealer"; False = the QPU only. topology: 'pegasus'
    or 'zephyr'; mock_shape: the mock's graph (default pegasus P8 / zephyr Z5, t = 4).
    mock_beta: the mock's inverse temperature in programmed units; mock_sweeps: its sweeps per
    read. solver: a QPU solver name. beta_eff: the first guess of the device's β (default
    mock_beta on a mock, ``NOMINAL_QPU_BETA`` on a QPU); calibration_rounds: at most this many
    calibration samplings of calibration_reads reads (0: program 1/beta_eff as is);
    num_bootstrap: replicates for β's interval. chain_strength: a number (programmed units)
    or a rule, "relative" (default: chain_strength_factor · p · max|J|) or "utc" (uniform
    torque compensation); chain_strength_factor None = on an annealing device the weakest
    rung of the ladder that holds the chains at calibration (2.2 without calibration), on the
    thermal mock the solver's strongest chain (module docstring).
    clip: cut h and J into the solver's ranges instead of capping p.
    layout: a native layout (:func:`rbmdiff.topology.native_layout`), default the model's
    meta["layout"]. num_reads: reads per solver call; annealing_time: µs. embedding_dir /
    embedding_timeout: the embedding cache and the minorminer fallback's time. read_store:
    a folder keeping every paid call's reads; retries / retry_backoff: transient faults.
    budget: None, or an object whose ``wrap(child)`` returns the solver every call goes through
    (``flows.budget.RunBudget`` estimates each call and refuses one that would overrun).
    """

    name = "qpu"

    def __init__(
        self,
        *,
        topology: str = "pegasus",
        mock: bool | str | None = None,
        mock_shape: list[int] | None = None,
        mock_beta: float = 5.0,
        mock_sweeps: int = 1000,
        solver: str | None = None,
        beta_eff: float | None = None,
        calibration_rounds: int = 4,
        calibration_reads: int = 1000,
        num_bootstrap: int = 100,
        chain_strength: float | str | None = None,
        chain_strength_factor: float | None = None,
        clip: bool = False,
        layout: dict | None = None,
        num_reads: int | None = None,
        annealing_time: float | None = None,
        embedding_dir: str | os.PathLike | None = None,
        embedding_timeout: float = 60.0,
        read_store: str | os.PathLike | None = None,
        retries: int = 3,
        retry_backoff: float = 2.0,
        budget: Any = None,
    ) -> None:
        if topology not in TOPOLOGIES:
            raise RbmdiffError(f"unknown topology {topology!r}; choose one of {TOPOLOGIES}")
        if not (mock is None or isinstance(mock, bool) or mock in solvers.MOCK_KINDS):
            raise RbmdiffError(f"mock must be None, True, False or one of "
                               f"{solvers.MOCK_KINDS}, got {mock!r}")
        for label, x in (("mock_beta", mock_beta), ("beta_eff", beta_eff or 1.0),
                         ("embedding_timeout", embedding_timeout),
                         ("chain_strength_factor", chain_strength_factor or 1.0)):
            if not (isinstance(x, int | float) and math.isfinite(x) and x > 0):
                raise RbmdiffError(f"{label} must be a positive number, got {x}")
        for label, k, low in (("mock_sweeps", mock_sweeps, 1), ("calibration_rounds",
                              calibration_rounds, 0), ("calibration_reads", calibration_reads, 1),
                              ("num_bootstrap", num_bootstrap, 0)):
            if not isinstance(k, int) or k < low:
                raise RbmdiffError(f"{label} must be an integer ≥ {low}, got {k!r}")
        if num_reads is not None and (not isinstance(num_reads, int) or num_reads < 1):
            raise RbmdiffError(f"num_reads must be a positive integer or None, got {num_reads!r}")
        chain_strength = "relative" if chain_strength is None else chain_strength
        if isinstance(chain_strength, str):
            if chain_strength not in scaling.CHAIN_RULES:
                raise RbmdiffError(f"unknown chain_strength rule {chain_strength!r}; give a "
                                   f"number or one of {scaling.CHAIN_RULES}")
        elif not chain_strength > 0:
            raise RbmdiffError(f"chain_strength must be positive, got {chain_strength}")
        if annealing_time is not None and not annealing_time > 0:
            raise RbmdiffError(f"annealing_time must be positive µs, got {annealing_time}")
        if not isinstance(retries, int) or retries < 0 or not retry_backoff >= 0:
            raise RbmdiffError(
                f"need retries ≥ 0 and retry_backoff ≥ 0 s, got {retries}, {retry_backoff}")
        self.topology, self.mock, self.solver = topology, mock, solver
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
        self.read_store = Path(read_store) if read_store else None
        self.retries, self.retry_backoff = retries, retry_backoff
        self.budget = budget

    def params(self) -> dict:
        return {
            "topology": self.topology, "mock": self.mock, "mock_shape": self.mock_shape,
            "mock_beta": self.mock_beta, "mock_sweeps": self.mock_sweeps, "solver": self.solver,
            "beta_eff": self.beta_eff, "calibration_rounds": self.calibration_rounds,
            "calibration_reads": self.calibration_reads, "num_bootstrap": self.num_bootstrap,
            "chain_strength": self.chain_strength,
            "chain_strength_factor": self.chain_strength_factor, "clip": self.clip,
            "num_reads": self.num_reads, "annealing_time": self.annealing_time,
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

    def embed(self, n_visible: int, n_hidden: int, *, seed: int = 0, layout: dict | None = None,
              weights: torch.Tensor | None = None) -> EmbeddedSolver:
        """Open the solver (QPU or mock), refuse K_{n,m} beyond its biclique limit before any
        search, and load or find the embedding (saved in ``embedding_dir``); with a native
        ``layout`` the identity embedding on the layout's graph (``weights`` checked)."""
        n, m = n_visible, n_hidden
        kind, reason = self.mock_kind()
        topology, shape = self.topology, self.mock_shape
        if layout is not None:
            embedding.check_layout(layout, n, m)
            topology, shape = layout["topology"], list(layout["shape"])
        elif kind is not None:  # refuse an oversized RBM before building anything
            embedding.check_embeddable(n, m, topology, shape)
        child = (solvers.mock_solver(kind, topology, shape, beta=self.mock_beta,
                                     sweeps=self.mock_sweeps) if kind is not None
                 else solvers.open_qpu(topology, self.solver))
        topo = child.properties["topology"]
        topology, shape = topo["type"], list(topo["shape"])
        graph = child.to_networkx_graph()
        if layout is not None:
            if (layout["topology"], list(layout["shape"])) != (topology, shape):
                raise RbmdiffError(
                    f"the model is native to {layout['topology']} {layout['shape']}, the solver "
                    f"is {topology} {shape}: retrain on this solver's graph")
            w = weights if weights is not None else torch.ones(n, m)
            emb, method, path = embedding.native_embedding(layout, graph, w), "native", None
        else:
            embedding.check_embeddable(n, m, topology, shape)
            emb, method, path = embedding.load_or_find_embedding(
                graph, n, m, topology=topology, shape=shape, folder=self.embedding_dir,
                timeout=self.embedding_timeout, seed=sampler_seed(seed))
        if kind == "thermal":  # the thermal mock draws chains layer by layer
            child.substitute_kwargs["layers"] = [
                [emb[f"v{i}"] for i in range(n)], [emb[f"h{j}"] for j in range(m)]]
        return EmbeddedSolver(child, kind, reason, topology, shape, emb, method, path)

    def sample(self, rbm: RBM, num_samples: int, *, seed: int) -> Samples:
        """Draw ``num_samples`` visible states.  -> Samples with v: (num_samples, n) of 0/1."""
        check_request(rbm, num_samples, seed)
        timer = Timer()
        layout = self.layout if self.layout is not None else rbm.meta.get("layout")
        solver = self.embed(rbm.n_visible, rbm.n_hidden, seed=seed, layout=layout,
                            weights=rbm.W)
        run = _Run(self, solver, rbm, seed)
        nominal = self.beta_eff or (self.mock_beta if solver.mock_kind
                                    else solvers.NOMINAL_QPU_BETA)
        calib: list[dict] = []

        def measure(p: float) -> tuple[float, float, float]:
            est = run.sample_and_estimate(p, self.calibration_reads)
            calib.append(est["summary"])
            return est["beta_model"], est["low"], est["high"]

        probes = self._climb_ladder(run, 1 / nominal, calib)
        first = dict(probes[-1:])

        def measure_once(p: float) -> tuple[float, float, float]:
            est = first.pop(p, None)  # the ladder's last probe is the search's first point
            return (est["beta_model"], est["low"], est["high"]) if est else measure(p)

        rounds = max(self.calibration_rounds - len(probes) + 1, 1) if probes else (
            self.calibration_rounds)
        search = calibration.solve_prefactor(measure_once, 1 / nominal,
                                             run.scale.prefactor_max, rounds=rounds)
        p = search.prefactor
        final = run.sample_and_estimate(p, num_samples)
        global_check = check.energy_check(rbm, final["v"], final["h"], seed=seed)
        reached = abs(final["beta_model"] - 1) <= TARGET_TOL or (
            final["low"] <= 1 <= final["high"])
        _warn(run, search, final, reached, global_check)
        qpu_access = run.timing.get("qpu_access_time", 0.0)
        info = make_info(
            self, seed=seed, num_samples=num_samples, wall_s=timer.elapsed,
            cost_units=qpu_access, cost_unit="qpu_access_us", **solver.info(),
            prefactor=p, prefactor_max=run.scale.prefactor_max,
            prefactor_limited_by=run.scale.limited_by,
            chain_strength=run.scale.chain_strength(p), chain_strength_rule=run.scale.rule,
            clipped=final["clipped"], chain_break_fraction=final["chain_break_fraction"],
            beta_eff=final["beta_model"] / p, beta_eff_low=final["low"] / p,
            beta_eff_high=final["high"] / p, beta_model=final["beta_model"],
            beta_model_low=final["low"], beta_model_high=final["high"],
            beta_reads=final["beta_reads"], target_reached=bool(reached),
            out_of_reach=search.out_of_reach,
            rounds=len(search.points) + max(len(probes) - 1, 0),
            chain_strength_factor=run.factor,
            calibration=calib, **global_check,
            qpu_access_time=qpu_access, qpu_calls=run.calls, reused_calls=run.reused_calls,
            timing=dict(run.timing), problem_ids=run.problem_ids, sampler_seeds=run.seeds,
        )
        return Samples(v=final["v"].to(torch.float32), info=info)


    def _climb_ladder(self, run: _Run, p0: float, calib: list) -> list[tuple[float, dict]]:
        """Pick the chain strength when no chain_strength_factor is given (rule "relative",
        chains longer than one qubit). On an annealing device (the QPU, the annealer mock)
        with calibration on: measure at p0 on each rung of ``CHAIN_LADDER`` from the weakest
        until fewer than ``LADDER_BROKEN`` of the chains break, and keep that rung (else the
        strongest). On the thermal mock, an ideal device with no freeze-out for weak chains
        to offset: the solver's strongest chain coupling, fixed, with no probe (p is then
        limited by h_range and j_range only). -> the probes [(p, estimate)]; [] when none
        were made."""
        if (self.chain_strength_factor is not None or self.chain_strength != "relative"
                or not run.has_chains):
            return []
        if run.mock_kind == "thermal":
            run.replan(None, chain_strength=scaling.SOLVER_CAP)
            return []
        if self.calibration_rounds == 0:
            return []
        probes = []
        for factor in scaling.CHAIN_LADDER:
            run.replan(factor)
            p = min(p0, run.scale.prefactor_max)
            est = run.sample_and_estimate(p, self.calibration_reads)
            calib.append({**est["summary"], "chain_strength_factor": factor})
            probes.append((p, est))
            if est["chain_break_fraction"] < scaling.LADDER_BROKEN:
                break
        return probes


def _warn(run: _Run, search: calibration.Search, final: dict, reached: bool,
          global_check: dict) -> None:
    """Say, as QPUWarning, how the reads fall short of the model at β = 1."""
    b = final["beta_model"]
    if not reached:
        if search.out_of_reach or (b < 1 and search.prefactor >= run.scale.prefactor_max):
            warnings.warn(
                f"target β = 1 is out of reach: the largest prefactor "
                f"{run.scale.prefactor_max:.4g} (set by {run.scale.limited_by}) gives logical "
                f"β_model = {b:.3f}; the reads are the model at that β (clip=True would cut h, "
                "J instead)", QPUWarning, stacklevel=3)
        else:
            warnings.warn(f"calibration did not reach β_model = 1 in {len(search.points)} "
                          f"rounds: the reads have β_model = {b:.3f}; raise calibration_rounds",
                          QPUWarning, stacklevel=3)
    if final["chain_break_fraction"] > BROKEN_WARN:
        warnings.warn(f"{100 * final['chain_break_fraction']:.1f} % of chains broke (majority "
                      "vote); raise chain_strength_factor", QPUWarning, stacklevel=3)
    if not global_check["energy_check_ok"]:
        warnings.warn(
            f"global check disagrees: the reads' mean energy "
            f"{global_check['energy_mean_reads']:.4g} vs the model's "
            f"{global_check['energy_mean_model']:.4g} ({global_check['energy_reference']}), "
            f"z = {global_check['energy_z']:.1f}: the reads are not the model's law even if "
            f"β_model = {b:.3f}", QPUWarning, stacklevel=3)


@dataclass
class EmbeddedSolver:
    """A solver (``child``: DWaveSampler or MockDWaveSampler) with the K_{n,m} embedding."""

    child: Any
    mock_kind: str | None  # "thermal", "annealer" or None (the QPU)
    mock_reason: str
    topology: str
    shape: list[int]
    embedding: dict[str, list[int]]
    method: str  # "busclique", "minorminer", "cache" or "native"
    path: Path | None  # the cached embedding file; None for a native model

    @property
    def mock(self) -> bool:
        return self.mock_kind is not None

    def info(self) -> dict:
        """Solver and embedding facts for a sampler's ``info``."""
        chains = [len(c) for c in self.embedding.values()]
        return {
            "solver": "mock" if self.mock else self.child.solver.name, "mock": self.mock,
            "mock_kind": self.mock_kind, "mock_reason": self.mock_reason,
            "topology": self.topology, "topology_shape": self.shape,
            "embedding_method": self.method,
            "embedding_path": str(self.path) if self.path else None,
            "chain_length_max": max(chains), "chain_length_mean": float(np.mean(chains)),
            "num_qubits": int(sum(chains)),
        }


class _Run:
    """One sampling run's solver calls: the logical problem, its scaling, seeds, timing."""

    def __init__(self, sampler: QPUSampler, solver: EmbeddedSolver, rbm: RBM,
                 seed: int) -> None:
        from dwave.system import FixedEmbeddingComposite

        self.sampler, self.rbm, self.seed = sampler, rbm, seed
        self.child, self.use_mock = solver.child, solver.mock
        self.mock_kind = solver.mock_kind
        budget = sampler.budget
        child = budget.wrap(solver.child) if budget is not None else solver.child
        self.composite = FixedEmbeddingComposite(child, solver.embedding)
        props = solver.child.properties
        self.h_range, self.j_range = tuple(props["h_range"]), tuple(props["j_range"])
        self.max_reads = int(props.get("num_reads_range", [1, 10_000])[1])
        self.logical = to_ising(rbm)  # prefactor 1, unclipped: the model's own units
        self.props, self.embedding = props, solver.embedding
        self.has_chains = any(len(c) > 1 for c in solver.embedding.values())
        self.replan(sampler.chain_strength_factor or scaling.DEFAULT_CHAIN_FACTOR)
        self.calls, self.seeds, self.timing, self.problem_ids = 0, [], {}, []
        self.reused_calls = 0

    def replan(self, factor: float | None, chain_strength: float | str | None = None) -> None:
        """The prefactor cap and chain strength with chain-strength factor ``factor`` under the
        sampler's rule, or with ``chain_strength`` (programmed units) fixed."""
        self.factor = factor
        self.scale = scaling.plan(
            self.logical.h, self.logical.J, self.embedding, self.composite.target_structure
            .adjacency, self.props, chain_strength=chain_strength or self.sampler.chain_strength,
            factor=factor or scaling.DEFAULT_CHAIN_FACTOR, clip=self.sampler.clip)

    def _call(self, h: dict, J: dict, num_reads: int, chain_strength: float) -> dimod.SampleSet:
        """One solver call, answered from the read store when this exact call (problem,
        parameters, run seed, call index) was paid for before; transient cloud faults are
        retried with exponential backoff, a permanent one is a one-line error."""
        from dwave.embedding import majority_vote

        kwargs: dict[str, Any] = {"num_reads": num_reads, "auto_scale": False,
                                  "answer_mode": "raw"}
        if self.sampler.annealing_time is not None:
            kwargs["annealing_time"] = self.sampler.annealing_time
        if self.use_mock:  # the mock's substitute sampler is seeded; the QPU is not
            self.seeds.append(sampler_seed(self.seed, self.calls))
            self.child.substitute_kwargs["seed"] = self.seeds[-1]
        key = store.call_key(h, J, kwargs, chain_strength=chain_strength,
                             embedding=self.composite.embedding, seed=self.seed,
                             call=self.calls)
        folder = self.sampler.read_store
        stored = store.load_reads(folder, key)
        self.calls += 1
        if stored is not None:
            self.reused_calls += 1
            return stored

        def attempt() -> dimod.SampleSet:
            ss = self.composite.sample_ising(
                h, J, chain_strength=chain_strength, chain_break_method=majority_vote,
                chain_break_fraction=True, return_embedding=True, **kwargs,
            )
            ss.resolve()
            return ss

        ss = store.with_retries(attempt, retries=self.sampler.retries,
                                backoff=self.sampler.retry_backoff, store=folder)
        store.save_reads(folder, key, ss)
        for name, val in ss.info.get("timing", {}).items():  # µs; totals add up over calls
            if isinstance(val, int | float):
                total = not name.endswith("_per_sample")
                self.timing[name] = self.timing.get(name, 0.0) * total + float(val)
        if "problem_id" in ss.info:
            self.problem_ids.append(ss.info["problem_id"])
        return ss

    def program(self, prefactor: float) -> tuple[dict, dict, bool]:
        """prefactor · (h, J), clipped into the solver's ranges only when clip=True.
        -> (h, J, clipped)."""
        if self.sampler.clip:
            form = to_ising(self.rbm, prefactor=prefactor, h_range=self.h_range,
                            j_range=self.j_range)
            return form.h, form.J, form.clipped
        h = {k: prefactor * v for k, v in self.logical.h.items()}
        J = {k: prefactor * v for k, v in self.logical.J.items()}
        return h, J, False

    def sample_and_estimate(self, prefactor: float, num_reads: int) -> dict:
        """Reads of the programmed problem at ``prefactor``: logical v, h, the chain breaks and
        β_model (pseudo-likelihood of the model's own h, J) with its interval."""
        h, J, clipped = self.program(prefactor)
        cs = self.scale.chain_strength(prefactor)
        per_call = min(self.sampler.num_reads or num_reads, self.max_reads)
        parts = [self._call(h, J, min(per_call, num_reads - start), cs)
                 for start in range(0, num_reads, per_call)]
        ss = dimod.concatenate(parts) if len(parts) > 1 else parts[0]
        v, hid = split_samples(ss, self.rbm.n_visible, self.rbm.n_hidden,
                               dtype=torch.float64)
        broken = np.repeat(ss.record.chain_break_fraction, ss.record.num_occurrences)
        whole = ss.record.chain_break_fraction == 0
        used = ss if whole.sum() < MIN_UNBROKEN else dimod.SampleSet(
            ss.record[whole], ss.variables, {}, ss.vartype)
        beta, low, high = estimate_beta(
            self.logical.h, self.logical.J, used, num_bootstrap=self.sampler.num_bootstrap,
            seed=sampler_seed(self.seed, 10_000 + self.calls))
        how = ("unbroken" if used is not ss else "all (majority vote)")
        cbf = float(np.mean(broken))
        summary = {"prefactor": prefactor, "reads": num_reads, "beta_model": beta,
                   "beta_model_low": low, "beta_model_high": high,
                   "beta_eff": beta / prefactor, "chain_strength": cs,
                   "chain_break_fraction": cbf, "clipped": clipped}
        return {"v": v, "h": hid, "beta_model": beta, "low": low, "high": high,
                "clipped": clipped, "chain_break_fraction": cbf, "summary": summary,
                "beta_reads": f"{how}: {int(whole.sum() if used is not ss else len(v))} reads"}
