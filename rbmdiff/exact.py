"""Exact evaluation by enumerating the smaller layer (docs/math.md §1): log Z, log p(v), p(v)."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.nn.functional import softplus

from rbmdiff.errors import RbmdiffError
from rbmdiff.rbm import RBM

MAX_ENUM_BITS = 24  # 2^24 states: the enumeration limit (time and memory)
EXACT_LAW_BITS = 20  # the exact law p(v) over 2^n states is materialised up to this n
CHUNK_BITS = 14  # states per block while enumerating: 16,384 × layer width floats


def binary_states(
    k: int, *, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    """All 2^k binary vectors, row r = binary digits of r (most significant first).  -> (2^k, k)."""
    if k > MAX_ENUM_BITS:
        raise RbmdiffError(f"enumerating 2^{k} states is beyond the limit 2^{MAX_ENUM_BITS}")
    r = torch.arange(2**k, dtype=torch.int64, device=device)
    shifts = torch.arange(k - 1, -1, -1, dtype=torch.int64, device=device)
    return ((r[:, None] >> shifts) & 1).to(dtype)


def state_chunks(
    k: int, *, dtype: torch.dtype, device: torch.device | str | None = None
) -> Iterator[torch.Tensor]:
    """All 2^k binary vectors in blocks of at most 2^CHUNK_BITS rows, in binary order."""
    if k > MAX_ENUM_BITS:
        raise RbmdiffError(f"enumerating 2^{k} states is beyond the limit 2^{MAX_ENUM_BITS}")
    if k <= CHUNK_BITS:
        yield binary_states(k, dtype=dtype, device=device)
        return
    low = binary_states(CHUNK_BITS, dtype=dtype, device=device)
    high_bits = k - CHUNK_BITS
    for hi in range(2**high_bits):
        prefix = torch.tensor([(hi >> s) & 1 for s in range(high_bits - 1, -1, -1)], dtype=dtype,
                              device=device)
        yield torch.cat([prefix.expand(low.shape[0], high_bits), low], dim=1)


def _check_enumerable(rbm: RBM, what: str) -> None:
    k = min(rbm.n_visible, rbm.n_hidden)
    if k > MAX_ENUM_BITS:
        raise RbmdiffError(
            f"{what} needs 2^{k} states ({rbm.n_visible}×{rbm.n_hidden} RBM); exact enumeration "
            f"stops at 2^{MAX_ENUM_BITS}: use rbmdiff.ais.log_partition_ais instead"
        )


def log_partition(rbm: RBM) -> float:
    """log Z = log Σ_h exp(-G(h)) (or Σ_v exp(-F(v)) when n < m), by enumeration."""
    return float(log_partition_tensor(rbm).detach())


def log_partition_tensor(rbm: RBM) -> torch.Tensor:
    """log Z as a differentiable scalar tensor (exact maximum likelihood uses its gradient)."""
    _check_enumerable(rbm, "log Z")
    if rbm.n_hidden <= rbm.n_visible:
        parts = list(_hidden_log_sums(rbm))
    else:
        parts = [torch.logsumexp(-rbm.free_energy(v), 0) for v in state_chunks(
            rbm.n_visible, dtype=rbm.dtype, device=rbm.W.device)]
    return torch.logsumexp(torch.stack(parts), 0)


def _hidden_log_sums(rbm: RBM) -> Iterator[torch.Tensor]:
    """log Σ_h exp(-G(h)) over each block of :func:`state_chunks` (hidden layer).

    Memory is bounded by one block (2^CHUNK_BITS × n floats) whatever m ≤ 24.  The low
    CHUNK_BITS hidden units' field b + W_lo h_lo is computed once; each block adds its fixed
    high bits' W_hi h_hi, so a block costs one softplus over (2^CHUNK_BITS, n), not a matmul.
    """
    m, k = rbm.n_hidden, min(rbm.n_hidden, CHUNK_BITS)
    h_lo = binary_states(k, dtype=rbm.dtype, device=rbm.W.device)  # (S, k)
    W_hi, W_lo, c_hi, c_lo = rbm.W[:, : m - k], rbm.W[:, m - k:], rbm.c[: m - k], rbm.c[m - k:]
    field_lo = rbm.b + h_lo @ W_lo.T  # (S, n)
    lin_lo = h_lo @ c_lo  # (S,)
    for hi in range(2 ** (m - k)):
        h_hi = torch.tensor([(hi >> s) & 1 for s in range(m - k - 1, -1, -1)], dtype=rbm.dtype,
                            device=rbm.W.device)  # (m - k,)
        field = field_lo + W_hi @ h_hi  # (S, n)
        yield torch.logsumexp(lin_lo + h_hi @ c_hi + softplus(field).sum(-1), 0)


def log_likelihood(rbm: RBM, v: torch.Tensor) -> torch.Tensor:
    """log p(v) = -F(v) - log Z.  v: (B, n) -> (B,), on v's device."""
    return -rbm.free_energy(v.to(rbm.W.device)).detach().to(v.device) - log_partition(rbm)


def mean_log_likelihood(rbm: RBM, v: torch.Tensor, log_z: float | None = None) -> float:
    """(1/B) Σ_k log p(v_k) = mean(−F(v)) − log Z, in float64 (``log_z``: a known log Z, e.g.
    an AIS estimate; default the exact one).  v: (B, n) binary -> nats per row."""
    with torch.no_grad():
        f = rbm.free_energy(v.to(device=rbm.W.device, dtype=rbm.dtype)).double()
    return float(-f.mean()) - (log_partition(rbm) if log_z is None else log_z)


def visible_law(rbm: RBM) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact law of v: (states (2^n, n), p (2^n,)), for n ≤ 20."""
    if rbm.n_visible > EXACT_LAW_BITS:
        raise RbmdiffError(
            f"the exact law of v needs n ≤ {EXACT_LAW_BITS} visible units, got {rbm.n_visible}"
        )
    states = binary_states(rbm.n_visible, dtype=rbm.dtype, device=rbm.W.device)
    with torch.no_grad():
        logp = -rbm.free_energy(states) - log_partition(rbm)
    return states, logp.exp()


def state_index(v: torch.Tensor) -> torch.Tensor:
    """Row index into :func:`binary_states` of each binary row of v.  (B, n) -> (B,) int64."""
    n = v.shape[-1]
    weights = 2 ** torch.arange(n - 1, -1, -1, dtype=torch.int64, device=v.device)
    return (v.round().to(torch.int64) * weights).sum(-1)


def empirical_law(v: torch.Tensor) -> torch.Tensor:
    """Empirical frequencies of binary rows over the 2^n states.  (B, n) -> (2^n,)."""
    n = v.shape[-1]
    if n > EXACT_LAW_BITS:
        raise RbmdiffError(
            f"an empirical law over 2^{n} states is too large (n ≤ {EXACT_LAW_BITS})"
        )
    counts = torch.bincount(state_index(v), minlength=2**n).to(torch.float64)
    return counts / counts.sum()


def kl_data_model(rbm: RBM, data: torch.Tensor) -> float:
    """KL(p_data ‖ p_θ) = Σ_x p_data(x) [log p_data(x) - log p_θ(x)] for binary data (nats)."""
    rows, counts = torch.unique(data.round(), dim=0, return_counts=True)
    p_data = counts.to(torch.float64) / counts.sum()
    logp = log_likelihood(rbm, rows.to(rbm.dtype)).to(torch.float64).to(p_data.device)
    return float((p_data * (p_data.log() - logp)).sum())


def total_variation(p: torch.Tensor, q: torch.Tensor) -> float:
    """TV(p, q) = ½ Σ |p - q|."""
    return 0.5 * float((p.to(torch.float64).cpu() - q.to(torch.float64).cpu()).abs().sum())


def visible_mean_given_field(rbm: RBM, u: torch.Tensor) -> torch.Tensor:
    """m = E[v] under the RBM with visible bias b + u, by enumerating the smaller layer.

    Hidden enumeration: m = Σ_h p(h|u) σ(b + u + Wh),
    p(h|u) ∝ exp(cᵀh + Σ_i softplus(b_i + u_i + (Wh)_i)).
    Visible enumeration (n < m): m = Σ_v p(v|u) v, p(v|u) ∝ exp(-F(v) + uᵀv).
    Differentiable in θ and u.  u: (B, n) -> (B, n).
    """
    _check_enumerable(rbm, "exact m_θ")
    bu = rbm.b + u  # (B, n)
    if rbm.n_hidden <= rbm.n_visible:
        lse, means = [], []  # per block: log Σ_h w and the block's weighted mean
        for h in state_chunks(rbm.n_hidden, dtype=rbm.dtype, device=u.device):  # h: (S, m)
            pre = bu[:, None, :] + (h @ rbm.W.T)[None]  # (B, S, n)
            logw = h @ rbm.c + torch.nn.functional.softplus(pre).sum(-1)  # (B, S)
            lse.append(torch.logsumexp(logw, 1))
            means.append(torch.einsum("bs,bsn->bn", torch.softmax(logw, 1), torch.sigmoid(pre)))
        block_w = torch.softmax(torch.stack(lse, 1), dim=1)  # (B, blocks)
        return torch.einsum("bk,kbn->bn", block_w, torch.stack(means, 0))
    v = binary_states(rbm.n_visible, dtype=rbm.dtype, device=u.device)  # (S, n)
    logw = -rbm.free_energy(v)[None, :] + u @ v.T  # (B, S)
    return torch.softmax(logw, dim=1) @ v
