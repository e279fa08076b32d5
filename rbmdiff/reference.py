"""Perfect samples of the model: the yardstick that separates a sampler's error from the
model's (BENCHMARKS.md §2).

A sampler's distance to the model's law is its own error; a perfect sample of the model
scores the floor of that distance at the same size (finite-N noise only), and its distance
to the data is the model's error, which no sampler removes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from rbmdiff import samplers
from rbmdiff.exact import CHUNK_BITS, EXACT_LAW_BITS, binary_states, visible_law
from rbmdiff.rbm import RBM

LONG_GIBBS_CHAINS = 500
LONG_GIBBS_THIN = 20


def enumerated_law(rbm: RBM) -> tuple[str, torch.Tensor, torch.Tensor]:
    """The law of the layer that can be enumerated: the 2^n visible states (n ≤ 20), else the
    2^m hidden states with p(h) ∝ exp(−G(h)) (m ≤ 20).  -> (layer, states, p float64)."""
    with torch.no_grad():
        if rbm.n_visible <= EXACT_LAW_BITS:
            states, p = visible_law(rbm)
            return "visible", states, p.double()
        h = binary_states(rbm.n_hidden, dtype=rbm.dtype)
        # G(h) block by block: memory of one block's visible fields, not 2^m × n
        g = torch.cat([rbm.hidden_free_energy(block) for block in h.split(2**CHUNK_BITS)])
        return "hidden", h, torch.softmax(-g.double(), 0)


def exact_draws(rbm: RBM, num: int, *, seed: int,
                law: tuple[str, torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """i.i.d. v ~ p_θ by enumeration (:func:`enumerated_law`, or ``law`` if given): visible
    states drawn from their law, or h from its law, then v ~ p(v | h) = Bernoulli(σ(b + Wh)).
    -> (num, n)."""
    g = torch.Generator().manual_seed(seed)
    layer, states, p = law if law is not None else enumerated_law(rbm)
    idx = torch.multinomial(p, num, replacement=True, generator=g)
    if layer == "visible":
        return states[idx]
    with torch.no_grad():
        return torch.bernoulli(rbm.visible_mean(states[idx]), generator=g)


def long_gibbs(rbm: RBM, num: int, *, seed: int, init_data: torch.Tensor, burn_in: int,
               thin: int = LONG_GIBBS_THIN, chains: int = LONG_GIBBS_CHAINS) -> torch.Tensor:
    """Block Gibbs from training rows: ``burn_in`` sweeps, then every ``thin``-th state.
    -> (num, n)."""
    sampler = samplers.get("gibbs", num_sweeps=burn_in, init="data", init_data=init_data,
                           num_chains=min(chains, num), thin=thin)
    return sampler.sample(rbm, num, seed=seed).v


@dataclass(frozen=True)
class PerfectSampler:
    """draw(num, seed) -> (num, n) samples of p_θ; ``exact``: i.i.d. by enumeration (else a
    long Gibbs run, whose own error is not zero); ``method``: how, in words."""

    draw: Callable[[int, int], torch.Tensor]
    exact: bool
    method: str


def perfect_sampler(rbm: RBM, *, init_data: torch.Tensor, burn_in: int = 2000) -> PerfectSampler:
    """Exact draws where a layer can be enumerated (min(n, m) ≤ 20), else long block Gibbs
    from the training rows ``init_data`` (N, n)."""
    if min(rbm.n_visible, rbm.n_hidden) <= EXACT_LAW_BITS:
        layer = "visible" if rbm.n_visible <= EXACT_LAW_BITS else "hidden"
        size = rbm.n_visible if layer == "visible" else rbm.n_hidden
        law = enumerated_law(rbm)  # once: every draw of the yardstick reuses it
        return PerfectSampler(lambda num, seed: exact_draws(rbm, num, seed=seed, law=law),
                              True, f"exact i.i.d. draws (enumerating the 2^{size} {layer} states)")

    def draw(num: int, seed: int) -> torch.Tensor:
        return long_gibbs(rbm, num, seed=seed, init_data=init_data, burn_in=burn_in)

    return PerfectSampler(draw, False, (
        f"block Gibbs from training rows, {burn_in} sweeps, {LONG_GIBBS_CHAINS} chains "
        f"thinned by {LONG_GIBBS_THIN} (both layers > {EXACT_LAW_BITS} units: not enumerable)"))
