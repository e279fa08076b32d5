"""Simulated annealing on the RBM's BQM, ending at β (default 1): Boltzmann sampling of p^β.

Each read runs ``num_sweeps`` Metropolis sweeps of dwave-samplers' SimulatedAnnealingSampler
(Kirkpatrick et al. 1983) over all n + m units with the inverse temperature raised from
``beta_start`` to ``beta`` (geometric or linear). The last sweeps run at β, so each read is
a (slightly non-equilibrium) draw from p_β(v, h) ∝ exp(−β E(v, h)); its v part is a draw from
p_β(v) ∝ exp(−β F_β(v)), the law of the tempered RBM (βW, βb, βc). β = 1 samples the model
itself; a schedule ending at large β would find ground states instead, which is not the aim.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from dwave.samplers import SimulatedAnnealingSampler

from rbmdiff.errors import RbmdiffError
from rbmdiff.ising import split_samples, to_bqm
from rbmdiff.rbm import RBM
from rbmdiff.samplers.base import Samples, Timer, check_request, make_info
from rbmdiff.seeds import sampler_seed


class AnnealSampler:
    """``num_reads`` reads per call (default: all ``num_samples`` in one call), each a
    ``num_sweeps``-sweep anneal from ``beta_start`` up to ``beta``.

    beta_schedule: an explicit increasing sequence of inverse temperatures (one per sweep)
    instead of (beta_start, beta_schedule_type); it must end at ``beta``.
    beta_final: alias of ``beta`` (the schedule's last inverse temperature).
    """

    name = "anneal"
    SCHEDULES = ("geometric", "linear")

    def __init__(
        self,
        *,
        num_sweeps: int = 1000,
        num_reads: int | None = None,
        beta_start: float = 0.1,
        beta: float = 1.0,
        beta_final: float | None = None,
        beta_schedule_type: str = "geometric",
        beta_schedule: Sequence[float] | None = None,
    ) -> None:
        if beta_final is not None:
            if beta != 1.0 and beta != beta_final:
                raise RbmdiffError(
                    f"beta={beta} and beta_final={beta_final} disagree; give one of them"
                )
            beta = beta_final
        for label, x in (("beta", beta), ("beta_start", beta_start)):
            if not (math.isfinite(x) and x > 0):
                raise RbmdiffError(f"{label} must be a positive inverse temperature, got {x}")
        if beta_start > beta:
            raise RbmdiffError(
                f"beta_start={beta_start} exceeds beta={beta}; the schedule must rise to β"
            )
        if beta_schedule_type not in self.SCHEDULES:
            raise RbmdiffError(
                f"unknown beta_schedule_type {beta_schedule_type!r}; choose one of {self.SCHEDULES}"
            )
        if not isinstance(num_sweeps, int) or num_sweeps < 1:
            raise RbmdiffError(f"num_sweeps must be a positive integer, got {num_sweeps!r}")
        if num_reads is not None and (not isinstance(num_reads, int) or num_reads < 1):
            raise RbmdiffError(f"num_reads must be a positive integer or None, got {num_reads!r}")
        if beta_schedule is not None:
            beta_schedule = [float(x) for x in beta_schedule]
            if not beta_schedule or min(beta_schedule) <= 0:
                raise RbmdiffError("beta_schedule must be a non-empty list of positive values")
            if not math.isclose(beta_schedule[-1], beta):
                raise RbmdiffError(
                    f"beta_schedule ends at {beta_schedule[-1]}, not at β = {beta}; end it at β "
                    "so that the reads sample exp(−βE) rather than its ground states"
                )
            num_sweeps = len(beta_schedule)
        self.num_sweeps, self.num_reads = num_sweeps, num_reads
        self.beta_start, self.beta = beta_start, beta
        self.beta_schedule_type, self.beta_schedule = beta_schedule_type, beta_schedule

    def params(self) -> dict:
        return {
            "num_sweeps": self.num_sweeps, "num_reads": self.num_reads,
            "beta_start": self.beta_start, "beta": self.beta,
            "beta_schedule_type": "custom" if self.beta_schedule else self.beta_schedule_type,
        }

    def _schedule_kwargs(self) -> dict:
        if self.beta_schedule is not None:
            return {"beta_schedule_type": "custom", "beta_schedule": self.beta_schedule}
        return {
            "beta_range": (self.beta_start, self.beta), "num_sweeps": self.num_sweeps,
            "beta_schedule_type": self.beta_schedule_type,
        }

    def sample(self, rbm: RBM, num_samples: int, *, seed: int) -> Samples:
        """Draw ``num_samples`` visible states.  -> Samples with v: (num_samples, n) of 0/1."""
        check_request(rbm, num_samples, seed)
        timer = Timer()
        bqm = to_bqm(rbm)
        sa = SimulatedAnnealingSampler()
        reads = min(self.num_reads or num_samples, num_samples)
        vs, seeds, timing = [], [], {}
        for k in range(math.ceil(num_samples / reads)):
            seeds.append(sampler_seed(seed, k))
            ss = sa.sample(
                bqm, num_reads=min(reads, num_samples - k * reads), seed=seeds[-1],
                **self._schedule_kwargs(),
            )
            vs.append(split_samples(ss, rbm.n_visible, rbm.n_hidden)[0])
            for key, val in ss.info.get("timing", {}).items():
                timing[key] = timing.get(key, 0) + val
        v = torch.cat(vs)
        beta_range = [self.beta_schedule[0], self.beta] if self.beta_schedule else [
            self.beta_start, self.beta]
        info = make_info(
            self, seed=seed, num_samples=num_samples, wall_s=timer.elapsed,
            cost_units=self.num_sweeps, cost_unit="sweeps",
            read_sweeps=self.num_sweeps * num_samples, beta_range=beta_range,
            sampler_seeds=seeds, timing=timing,
        )
        return Samples(v=v, info=info)
