"""The RBM as a binary quadratic model: QUBO form E(v, h) and the SPIN (Ising) form the QPU takes.

Variables are named ``"v0" … "v{n-1}"`` (visible) and ``"h0" … "h{m-1}"`` (hidden).

QUBO (BINARY, v, h ∈ {0,1}):   E(v, h) = −Σ_ij W_ij v_i h_j − Σ_i b_i v_i − Σ_j c_j h_j

SPIN (s, t ∈ {−1,+1}, v = (1+s)/2, h = (1+t)/2):

    E = Σ_i hᵛ_i s_i + Σ_j hʰ_j t_j + Σ_ij J_ij s_i t_j + offset
    J_ij  = −W_ij / 4
    hᵛ_i  = −b_i / 2 − Σ_j W_ij / 4
    hʰ_j  = −c_j / 2 − Σ_i W_ij / 4
    offset = −Σ_ij W_ij / 4 − Σ_i b_i / 2 − Σ_j c_j / 2
"""

from __future__ import annotations

from typing import NamedTuple

import dimod
import numpy as np
import torch

from rbmdiff.errors import RbmdiffError
from rbmdiff.rbm import RBM


def visible_labels(n: int) -> list[str]:
    """``["v0", …, "v{n-1}"]``."""
    return [f"v{i}" for i in range(n)]


def hidden_labels(m: int) -> list[str]:
    """``["h0", …, "h{m-1}"]``."""
    return [f"h{j}" for j in range(m)]


def _numpy64(rbm: RBM) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """W (n, m), b (n,), c (m,) as float64 numpy arrays, detached."""
    return tuple(p.detach().to("cpu", torch.float64).numpy() for p in rbm.parameters())


def to_bqm(rbm: RBM) -> dimod.BinaryQuadraticModel:
    """BINARY BQM with ``bqm.energy({v, h}) = E(v, h) = −vᵀWh − bᵀv − cᵀh`` (float64)."""
    W, b, c = _numpy64(rbm)
    vl, hl = visible_labels(rbm.n_visible), hidden_labels(rbm.n_hidden)
    bqm = dimod.BinaryQuadraticModel(dimod.BINARY, dtype=np.float64)
    bqm.add_variables_from(zip(vl, -b, strict=True))
    bqm.add_variables_from(zip(hl, -c, strict=True))
    rows, cols = np.nonzero(W)
    bqm.add_quadratic_from((vl[i], hl[j], -W[i, j]) for i, j in zip(rows, cols, strict=True))
    return bqm


class IsingForm(NamedTuple):
    """prefactor · E in SPIN form: ``h`` {label: bias}, ``J`` {(v_i, h_j): coupling}, ``offset``,
    and ``clipped`` (True when some bias or coupling was cut to its range)."""

    h: dict[str, float]
    J: dict[tuple[str, str], float]
    offset: float
    clipped: bool


def to_ising(
    rbm: RBM,
    *,
    prefactor: float = 1.0,
    h_range: tuple[float, float] | None = None,
    j_range: tuple[float, float] | None = None,
) -> IsingForm:
    """prefactor · E(v, h) in SPIN form (module docstring), biases clipped to ``h_range`` and
    couplings to ``j_range``.

    A QPU at inverse temperature β_eff samples ∝ exp(−β_eff · E_programmed); programming
    E / β_eff (``prefactor = 1/β_eff``) makes it sample exp(−E), the RBM's own law. Clipping
    changes the law; ``clipped`` says whether it happened. The offset is never clipped.
    """
    if not (np.isfinite(prefactor) and prefactor > 0):
        raise RbmdiffError(f"prefactor must be a positive finite number, got {prefactor}")
    W, b, c = _numpy64(rbm)
    J = -W / 4  # (n, m)
    hv = -b / 2 - W.sum(1) / 4  # (n,)
    hh = -c / 2 - W.sum(0) / 4  # (m,)
    offset = -W.sum() / 4 - b.sum() / 2 - c.sum() / 2
    hv, hh, J = prefactor * hv, prefactor * hh, prefactor * J
    clipped = False
    for name, rng in (("h_range", h_range), ("j_range", j_range)):
        if rng is not None and not (len(rng) == 2 and rng[0] < rng[1]):
            raise RbmdiffError(f"{name} must be (low, high) with low < high, got {rng}")
    if h_range is not None:
        lo, hi = h_range
        clipped |= bool((hv < lo).any() or (hv > hi).any() or (hh < lo).any() or (hh > hi).any())
        hv, hh = np.clip(hv, lo, hi), np.clip(hh, lo, hi)
    if j_range is not None:
        lo, hi = j_range
        clipped |= bool((J < lo).any() or (J > hi).any())
        J = np.clip(J, lo, hi)
    vl, hl = visible_labels(rbm.n_visible), hidden_labels(rbm.n_hidden)
    h = {**dict(zip(vl, hv.tolist(), strict=True)), **dict(zip(hl, hh.tolist(), strict=True))}
    keep = np.ones(J.shape, bool) if rbm.mask is None else rbm.mask.cpu().numpy()
    couplings = {  # a masked model has no coupling where its mask is False
        (vl[i], hl[j]): float(J[i, j]) for i, j in zip(*np.nonzero(keep), strict=True)
    }
    return IsingForm(h, couplings, float(prefactor * offset), clipped)


def split_samples(
    samples: dimod.SampleSet | tuple[np.ndarray, list],
    n_visible: int,
    n_hidden: int,
    *,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Visible and hidden parts of BQM samples as 0/1 tensors: -> v (B, n), h (B, m).

    ``samples``: a SampleSet (rows repeated by ``num_occurrences``) or a dimod samples-like
    ``(array (B, N), labels)``. SPIN values s ∈ {−1, +1} map to (1 + s)/2 (a samples-like
    array counts as SPIN when it holds a −1); columns are picked by label, in any order.
    """
    if isinstance(samples, dimod.SampleSet):
        arr, labels = samples.record.sample, list(samples.variables)
        arr = np.repeat(arr, samples.record.num_occurrences, axis=0)
        spin = samples.vartype is dimod.SPIN
    else:
        arr, labels = dimod.as_samples(samples)
        labels = list(labels)
        spin = bool((np.asarray(arr) < 0).any())
    want = visible_labels(n_visible) + hidden_labels(n_hidden)
    index = {label: k for k, label in enumerate(labels)}
    missing = [label for label in want if label not in index]
    if missing:
        raise RbmdiffError(
            f"samples lack the RBM variables {missing[:5]}{'…' if len(missing) > 5 else ''}; "
            f"they must be labelled v0…v{n_visible - 1}, h0…h{n_hidden - 1}"
        )
    x = np.asarray(arr)[:, [index[label] for label in want]].astype(np.float64)
    if spin:
        x = (1 + x) / 2
    x = torch.from_numpy(x).to(dtype)
    return x[:, :n_visible], x[:, n_visible:]
