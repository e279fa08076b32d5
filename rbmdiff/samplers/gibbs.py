"""Batched block Gibbs: h ~ σ(β(c + Wᵀv)), v ~ σ(β(b + Wh)) (Geman & Geman 1984; Hinton 2002)."""

from __future__ import annotations

import math

import torch

from rbmdiff import gibbs_kernels
from rbmdiff.errors import RbmdiffError
from rbmdiff.rbm import RBM
from rbmdiff.samplers.base import Samples, Timer, check_request, make_info, torch_threads


class GibbsSampler:
    """``num_chains`` chains (default: one per sample), ``num_sweeps`` burn-in sweeps from the
    initial state, then one sample per chain every ``thin`` sweeps until ``num_samples``.

    init: "random" (v ~ Bernoulli(½)), "marginal" (v ~ Bernoulli(σ(b))), or "data" (rows of
    ``init_data`` drawn with replacement).  β = 1 samples the model; other β its tempered law.
    """

    name = "gibbs"
    INITS = ("random", "marginal", "data")

    def __init__(
        self,
        *,
        num_sweeps: int = 100,
        beta: float = 1.0,
        num_chains: int | None = None,
        thin: int = 1,
        init: str = "random",
        init_data: torch.Tensor | None = None,
        threads: int | None = 1,
    ) -> None:
        if num_sweeps < 0 or thin < 1:
            raise RbmdiffError(
                f"need num_sweeps ≥ 0 and thin ≥ 1, got num_sweeps={num_sweeps}, thin={thin}")
        if not (beta > 0 and math.isfinite(beta)):
            raise RbmdiffError(f"inverse temperature β must be positive, got {beta}")
        if num_chains is not None and num_chains < 1:
            raise RbmdiffError(f"num_chains must be ≥ 1, got {num_chains}")
        if init not in self.INITS:
            raise RbmdiffError(f"unknown init {init!r}; choose one of {self.INITS}")
        if init == "data" and init_data is None:
            raise RbmdiffError("init='data' needs init_data, a (N, n) tensor of training rows")
        self.num_sweeps, self.beta, self.num_chains, self.thin = num_sweeps, beta, num_chains, thin
        self.init, self.init_data, self.threads = init, init_data, threads

    def params(self) -> dict:
        return {"num_sweeps": self.num_sweeps, "beta": self.beta, "num_chains": self.num_chains,
                "thin": self.thin, "init": self.init, "threads": self.threads}

    def initial_state(self, rbm: RBM, chains: int, g: torch.Generator) -> torch.Tensor:
        if self.init == "random":
            return torch.bernoulli(torch.full((chains, rbm.n_visible), 0.5, dtype=rbm.dtype),
                                   generator=g)
        if self.init == "marginal":
            p = torch.sigmoid(self.beta * rbm.b).expand(chains, -1)
            return torch.bernoulli(p, generator=g)
        data = self.init_data.to(rbm.dtype)
        if data.dim() != 2 or data.shape[1] != rbm.n_visible:
            raise RbmdiffError(
                f"init_data has shape {tuple(data.shape)}; the model needs (N, {rbm.n_visible})"
            )
        rows = torch.randint(data.shape[0], (chains,), generator=g)
        return torch.bernoulli(data[rows], generator=g)

    def sample(self, rbm: RBM, num_samples: int, *, seed: int) -> Samples:
        """Draw ``num_samples`` visible states.  -> Samples with v: (num_samples, n)."""
        check_request(rbm, num_samples, seed)
        timer = Timer()
        chains = min(self.num_chains or num_samples, num_samples)
        rounds = math.ceil(num_samples / chains)
        g = torch.Generator().manual_seed(seed)
        with torch_threads(self.threads), torch.no_grad():
            kernel = gibbs_kernels.provenance(rbm.W)  # name, stream, threads
            v = self.initial_state(rbm, chains, g)
            v = rbm.gibbs(v, self.num_sweeps, beta=self.beta, generator=g)
            kept = [v]
            for _ in range(rounds - 1):
                v = rbm.gibbs(v, self.thin, beta=self.beta, generator=g)
                kept.append(v)
        v_all = torch.cat(kept)[:num_samples]
        sweeps_per_chain = self.num_sweeps + (rounds - 1) * self.thin
        info = make_info(
            self, seed=seed, num_samples=num_samples, wall_s=timer.elapsed,
            cost_units=sweeps_per_chain, cost_unit="sweeps",
            chains=chains, chain_sweeps=chains * sweeps_per_chain, **kernel,
            multiply_adds=2 * chains * sweeps_per_chain * rbm.n_visible * rbm.n_hidden,
        )
        return Samples(v=v_all.to(torch.float32), info=info)
