"""One QPU run's device calls: the logical problem, its scaling and chain rung, the calls
(kept in the read store, retried on transient faults), and β_model of each batch of reads."""

from __future__ import annotations

from typing import Any

import dimod
import numpy as np
import torch

from rbmdiff.errors import RbmdiffError
from rbmdiff.ising import split_samples, to_ising
from rbmdiff.rbm import RBM
from rbmdiff.samplers.qpu import scaling, store
from rbmdiff.samplers.qpu.temperature import estimate_beta
from rbmdiff.seeds import sampler_seed

MIN_UNBROKEN = 50  # fewer unbroken reads than this: β from all reads (majority vote)
FINAL_KEY = 1_000  # the final reads' calls are keyed from here, calibration's from 0, so the
# final reads do not depend on how many calibration calls came before (or were cached)
ESTIMATE_SEED = 10_000  # β's bootstrap seeds are derived from keys above the call keys
BROKEN_WARN = 0.01  # final reads with more broken chains: a stronger rung, else a warning


class Run:
    """The device calls of one ``QPUSampler.sample`` (``solver``: an :class:`EmbeddedSolver`,
    ``settings``: the run's :class:`QPUSettings`; ``budget``: see ``QPUSampler``)."""

    def __init__(self, settings, solver, rbm: RBM, seed: int, *, budget: Any = None) -> None:
        self.settings, self.rbm, self.seed, self.solver = settings, rbm, seed, solver
        self.device = solver.device
        child = budget.wrap(self.device.sampler) if budget is not None else self.device.sampler
        if solver.embedding is not None:
            from dwave.system import FixedEmbeddingComposite

            self.composite = FixedEmbeddingComposite(child, solver.embedding)
        else:
            self.composite = child
        self.props = self.device.properties
        self.h_range = tuple(self.props["h_range"]) if "h_range" in self.props else None
        self.j_range = tuple(self.props["j_range"]) if "j_range" in self.props else None
        self.max_reads = int(self.props.get("num_reads_range", [1, 10_000])[1])
        self.logical = to_ising(rbm)  # prefactor 1, unclipped: the model's own units
        self.has_chains = solver.embedding is not None and any(
            len(c) > 1 for c in solver.embedding.values())
        self.ladder = self._ladder()
        self.rung = 0
        self.replan()
        self.calls, self.seeds, self.timing, self.problem_ids = 0, [], {}, []
        self.key = 0  # the next call's key: its seed and its read-store entry
        self.reused_calls, self.reads = 0, 0

    def _ladder(self) -> list[float | str]:
        """The chain rungs this run may climb: the ladder when the rule is "relative" with no
        factor given and there are chains; else the one rung the settings fix. The thermal
        mock, an ideal device in equilibrium, gets the strongest chain the solver allows:
        any weaker chain changes the logical law there, with no freeze-out to offset."""
        s = self.settings
        if s.chain_strength_factor is not None or s.chain_strength != "relative":
            return [s.chain_strength_factor or scaling.DEFAULT_CHAIN_FACTOR]
        if not self.has_chains or s.calibration_rounds == 0:
            return [scaling.DEFAULT_CHAIN_FACTOR]
        if self.device.mock_kind == "thermal":  # at equilibrium: no freeze-out to offset
            return [scaling.SOLVER_CAP]
        return list(scaling.CHAIN_LADDER)

    @property
    def factor(self) -> float | None:
        """The chain-strength factor in use (None on the solver-cap rung)."""
        rung = self.ladder[self.rung]
        return None if rung == scaling.SOLVER_CAP else float(rung)

    def replan(self) -> None:
        """The prefactor cap and chain strength on the current rung."""
        if self.solver.embedding is None:
            self.scale = scaling.plan_logical(self.logical.h, self.logical.J, self.props,
                                              clip=self.settings.clip)
            return
        rung = self.ladder[self.rung]
        fixed = rung == scaling.SOLVER_CAP
        self.scale = scaling.plan(
            self.logical.h, self.logical.J, self.solver.embedding,
            self.composite.target_structure.adjacency, self.props,
            chain_strength=scaling.SOLVER_CAP if fixed else self.settings.chain_strength,
            factor=scaling.DEFAULT_CHAIN_FACTOR if fixed else float(rung),
            clip=self.settings.clip)

    def climb(self) -> bool:
        """Move to the next stronger chain rung; False when there is none."""
        if self.rung + 1 >= len(self.ladder):
            return False
        self.rung += 1
        self.replan()
        return True

    def kwargs(self, num_reads: int, seed: int) -> dict[str, Any]:
        """The parameters of one call, those the device declares (the mocks declare no seed:
        their substitute sampler is seeded in :meth:`_call`)."""
        want: dict[str, Any] = {"num_reads": num_reads, "auto_scale": False,
                                "answer_mode": "raw", "seed": seed}
        if self.settings.annealing_time is not None:
            want["annealing_time"] = self.settings.annealing_time
        return {k: v for k, v in want.items() if self.device.accepts(k)}

    def _call(self, h: dict, J: dict, num_reads: int, chain_strength: float) -> dimod.SampleSet:
        """One device call, answered from the read store when this exact call (problem,
        parameters, device, run seed, call index) was paid for before; transient cloud faults
        are retried with exponential backoff (then a TransientError), a permanent one is a
        one-line RbmdiffError."""
        seed = sampler_seed(self.seed, self.key)
        kwargs = self.kwargs(num_reads, seed)
        substitute = getattr(self.device.sampler, "substitute_kwargs", None)
        if substitute is not None:  # the mocks: seeded substitutes
            substitute["seed"] = seed
        if substitute is not None or "seed" in kwargs:
            self.seeds.append(seed)
        key = store.call_key(h, J, {**kwargs, "device": self.device.name},
                             chain_strength=chain_strength, embedding=self.solver.embedding or {},
                             seed=self.seed, call=self.key)
        folder = self.settings.read_store
        stored = store.load_reads(folder, key)
        self.calls += 1
        self.key += 1
        if stored is not None:
            self.reused_calls += 1
            self._add_timing(stored)  # the reads' cost, paid by the run that stored them
            return stored

        kept = f"; reads already returned are kept in {folder}" if folder else ""
        ss = store.with_retries(lambda: self._ask(h, J, kwargs, chain_strength),
                                retries=self.settings.retries,
                                backoff=self.settings.retry_backoff, hint=kept)
        store.save_reads(folder, key, ss)
        self._add_timing(ss)
        if "problem_id" in ss.info:
            self.problem_ids.append(ss.info["problem_id"])
        return ss

    def _ask(self, h: dict, J: dict, kwargs: dict, chain_strength: float) -> dimod.SampleSet:
        """One attempt at a device call: the logical problem, or the embedded one with
        chains (broken chains resolved by majority vote)."""
        if self.solver.embedding is None:
            ss = self.composite.sample_ising(h, J, **kwargs)
        else:
            from dwave.embedding import majority_vote

            ss = self.composite.sample_ising(
                h, J, chain_strength=chain_strength, chain_break_method=majority_vote,
                chain_break_fraction=True, return_embedding=True, **kwargs)
        ss.resolve()
        return ss

    def _add_timing(self, ss: dimod.SampleSet) -> None:
        """Add a call's solver timing (µs) to the run's: totals add up over calls."""
        for name, val in ss.info.get("timing", {}).items():
            if isinstance(val, int | float):
                total = not name.endswith("_per_sample")
                self.timing[name] = self.timing.get(name, 0.0) * total + float(val)

    def start_final(self) -> None:
        """Key the following calls as the final reads' (``FINAL_KEY`` onwards)."""
        self.key = max(self.key, FINAL_KEY)

    def final_reads(self, prefactor: float, num_reads: int, history: list[dict]
                    ) -> tuple[dict, float]:
        """The final reads at ``prefactor``, drawn again on each stronger chain rung while
        more than ``BROKEN_WARN`` of their chains break (each try kept in ``history``).
        -> (:meth:`sample_and_estimate`'s result, the prefactor it used)."""
        self.start_final()
        final = self.sample_and_estimate(prefactor, num_reads)
        while final["chain_break_fraction"] > BROKEN_WARN and self.climb():
            history.append({**final["summary"], "final": True})  # re-checked at the final p
            prefactor = min(prefactor, self.scale.prefactor_max)
            final = self.sample_and_estimate(prefactor, num_reads)
        return final, prefactor

    def program(self, prefactor: float) -> tuple[dict, dict, bool]:
        """prefactor · (h, J), clipped into the device's ranges only when clip=True.
        -> (h, J, clipped)."""
        if self.settings.clip:
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
        cs = self.scale.chain_strength(prefactor) if self.has_chains else 0.0
        per_call = min(self.settings.num_reads or num_reads, self.max_reads)
        parts = [self._call(h, J, min(per_call, num_reads - start), cs)
                 for start in range(0, num_reads, per_call)]
        self.reads += num_reads
        ss = dimod.concatenate(parts) if len(parts) > 1 else parts[0]
        v, hid = split_samples(ss, self.rbm.n_visible, self.rbm.n_hidden, dtype=torch.float64)
        if len(v) != num_reads:
            raise RbmdiffError(f"the device {self.device.name} returned {len(v)} reads for "
                               f"{num_reads} asked: pass a sampler that honours num_reads")
        cbf = (ss.record.chain_break_fraction if "chain_break_fraction" in ss.record.dtype.names
               else np.zeros(len(ss.record)))
        broken = np.repeat(cbf, ss.record.num_occurrences)
        whole = cbf == 0
        used = ss if whole.sum() < MIN_UNBROKEN else dimod.SampleSet(
            ss.record[whole], ss.variables, {}, ss.vartype)
        beta, low, high = estimate_beta(
            self.logical.h, self.logical.J, used, num_bootstrap=self.settings.num_bootstrap,
            seed=sampler_seed(self.seed, ESTIMATE_SEED + self.key))
        how = "unbroken" if used is not ss else "all (majority vote)"
        counted = len(v) if used is ss else int(np.repeat(whole, ss.record.num_occurrences).sum())
        frac = float(np.mean(broken))
        summary = {"prefactor": prefactor, "reads": num_reads, "beta_model": beta,
                   "beta_model_low": low, "beta_model_high": high,
                   "beta_eff": beta / prefactor, "chain_strength": cs,
                   "chain_strength_factor": self.factor, "chain_break_fraction": frac,
                   "clipped": clipped}
        return {"v": v, "h": hid, "beta_model": beta, "low": low, "high": high,
                "clipped": clipped, "chain_break_fraction": frac, "summary": summary,
                "beta_reads": f"{how}: {counted} reads"}
