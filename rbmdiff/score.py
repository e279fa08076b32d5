"""Score models in activation (logit) space (docs/math.md §2, §4), selected by name."""

from __future__ import annotations

import functools
import math

import torch

from rbmdiff.choices import M_METHODS
from rbmdiff.errors import RbmdiffError
from rbmdiff.exact import MAX_ENUM_BITS, binary_states
from rbmdiff.rbm import RBM
from rbmdiff.sde import VPSDE

DEFAULT_EPS = 1e-3
VISIBLE_ENUM_BITS = 12  # exact m enumerates v (not h) when n ≤ max(m, this)
CHUNK_ELEMENTS = 1 << 21  # hidden enumeration: B × states × n floats per chunk (8 MiB float32)
# Exact m is the samplers' default where it is affordable per row and step: visible
# enumeration up to 2^16 states (F of every state is shared by the batch), hidden enumeration
# (per row) up to 2^12 states; beyond, second-order mean field.  The same on a GPU: 2^16
# hidden states per row cost ~1.8 ms there per step (BENCHMARKS.md "GPU figures").
EXACT_VISIBLE_BITS, EXACT_HIDDEN_BITS = 16, 12


def default_m_method(n_visible: int, n_hidden: int) -> str:
    """"exact" where enumeration is affordable, else "tap"."""
    if n_visible <= EXACT_VISIBLE_BITS or n_hidden <= EXACT_HIDDEN_BITS:
        return "exact"
    return "tap"


def check_eps(eps: float) -> float:
    if not (0.0 < eps < 0.5):
        raise RbmdiffError(f"ε must lie in (0, ½), got {eps}")
    return float(eps)


def logit_bound(eps: float) -> float:
    """L = logit(1 - ε): binary v maps to a = L(2v - 1)."""
    check_eps(eps)
    return math.log((1.0 - eps) / eps)


def to_logit(x: torch.Tensor, eps: float) -> torch.Tensor:
    """a = logit(clip(x, ε, 1 - ε)).  (..., n) -> (..., n)."""
    check_eps(eps)
    return torch.logit(x.clamp(eps, 1.0 - eps))


class FreeEnergyScore:
    """The talk's model: s_θ(a) = -∇_a F(σ(a)) = σ(a)(1-σ(a)) ⊙ [b + W σ(c + Wᵀσ(a))].

    Time-independent and bounded; e^{-F(σ(a))} is not normalisable in a-space (docs/math.md §4).
    """

    name = "free_energy"

    def __init__(self, *, sde: VPSDE, eps: float = DEFAULT_EPS) -> None:
        self.sde, self.eps = sde, check_eps(eps)

    def __call__(self, rbm: RBM, a: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """s_θ(a).  a: (B, n), t: (B,) (ignored) -> (B, n)."""
        x = torch.sigmoid(a)
        return x * (1 - x) * (rbm.b + rbm.hidden_mean(x) @ rbm.W.T)

    def denoise(self, rbm: RBM, a: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Mean-field read-out x = σ(a)."""
        return torch.sigmoid(a)

    def options(self) -> dict:
        return {"score": self.name, "eps": self.eps}


class PosteriorScore:
    """Exact score of the noised binary-RBM marginal (Tweedie; docs/math.md §4).

    s_θ(a, t) = (α_t L (2 m_θ(a, t) - 1) - a) / σ_t²,  m_θ = E_θ[v | a_t = a],
    the mean of v under the RBM with visible bias b + u, u = 2 α_t L a / σ_t².

    m_method: "exact" (enumerate v or h, whichever is cheaper; h in bounded chunks),
    "meanfield" (K damped sweeps μ ← (1-d)μ + d σ(b + u + W σ(c + Wᵀμ))), "tap" (K damped
    sweeps of the second-order TAP equations, :func:`tap_mean`), "gibbs" (block Gibbs with u
    clamped, Rao-Blackwellised; not differentiable), or "gibbs_cov" (``gibbs_chains`` clamped chains
    per row; its gradient is the covariance identity ∂m/∂θ = Cov_{p(v|u)}(v, -∂F/∂θ)).
    """

    name = "posterior"
    M_METHODS = M_METHODS

    def __init__(
        self,
        *,
        sde: VPSDE,
        eps: float = DEFAULT_EPS,
        m_method: str = "exact",
        sweeps: int = 10,
        damping: float = 0.5,
        gibbs_sweeps: int = 20,
        gibbs_chains: int = 8,
        generator: torch.Generator | None = None,
    ) -> None:
        if m_method not in self.M_METHODS:
            raise RbmdiffError(f"unknown m_method {m_method!r}; choose one of {self.M_METHODS}")
        if sweeps < 1 or gibbs_sweeps < 1:
            raise RbmdiffError(f"sweeps must be ≥ 1, got {sweeps} and {gibbs_sweeps}")
        if not 0.0 < damping <= 1.0:
            raise RbmdiffError(f"damping must lie in (0, 1], got {damping}")
        self.sde, self.eps, self.L = sde, check_eps(eps), logit_bound(eps)
        self.m_method, self.sweeps, self.damping = m_method, sweeps, damping
        self.gibbs_sweeps, self.generator = gibbs_sweeps, generator
        if gibbs_chains < 2:
            raise RbmdiffError(f"gibbs_chains must be ≥ 2 (a covariance), got {gibbs_chains}")
        self.gibbs_chains = gibbs_chains

    def field(self, a: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """u = 2 α_t L a / σ_t².  (B, n), (B,) -> (B, n)."""
        alpha, sigma = self.sde.alpha(t)[:, None], self.sde.sigma(t)[:, None]
        return 2 * alpha * self.L * a / sigma**2

    def m(self, rbm: RBM, a: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """m_θ(a, t) = E_θ[v | a_t = a].  (B, n), (B,) -> (B, n)."""
        u = self.field(a, t)
        if self.m_method == "exact":
            return exact_mean(rbm, u)
        if self.m_method == "meanfield":
            return meanfield_mean(rbm, u, sweeps=self.sweeps, damping=self.damping)
        if self.m_method == "tap":
            return tap_mean(rbm, u, sweeps=self.sweeps, damping=self.damping)
        if self.m_method == "gibbs_cov":
            return gibbs_cov_mean(rbm, u, sweeps=self.gibbs_sweeps, chains=self.gibbs_chains,
                                  generator=self.generator)
        return gibbs_mean(rbm, u, sweeps=self.gibbs_sweeps, generator=self.generator)

    def __call__(self, rbm: RBM, a: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """s_θ(a, t).  a: (B, n), t: (B,) -> (B, n)."""
        alpha, sigma = self.sde.alpha(t)[:, None], self.sde.sigma(t)[:, None]
        return (alpha * self.L * (2 * self.m(rbm, a, t) - 1) - a) / sigma**2

    def denoise(self, rbm: RBM, a: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Tweedie's denoised mean of v: m_θ(a, t)."""
        return self.m(rbm, a, t)

    def options(self) -> dict:
        return {
            "score": self.name, "eps": self.eps, "m_method": self.m_method,
            "sweeps": self.sweeps, "damping": self.damping, "gibbs_sweeps": self.gibbs_sweeps,
            "gibbs_chains": self.gibbs_chains,
        }


def meanfield_mean(
    rbm: RBM, u: torch.Tensor, *, sweeps: int = 10, damping: float = 0.5
) -> torch.Tensor:
    """K damped mean-field sweeps μ ← (1-d)μ + d σ(b + u + W σ(c + Wᵀμ)), μ₀ = σ(b + u)."""
    mu = torch.sigmoid(rbm.b + u)
    for _ in range(sweeps):
        mu = (1 - damping) * mu + damping * rbm.visible_mean(rbm.hidden_mean(mu), field=u)
    return mu


def tap_mean(
    rbm: RBM, u: torch.Tensor, *, sweeps: int = 10, damping: float = 0.5
) -> torch.Tensor:
    """Second-order (TAP) mean field for m = E[v] under visible bias b + u: K damped sweeps of

        μʰ ← σ(c + Wᵀμᵛ - (μʰ - ½) ⊙ (W∘W)ᵀ(μᵛ - μᵛ²))
        μᵛ ← σ(b + u + Wμʰ - (μᵛ - ½) ⊙ (W∘W)(μʰ - μʰ²))

    the stationarity conditions of the Plefka expansion of the Gibbs free energy to second
    order in W (Thouless, Anderson & Palmer 1977; for RBMs Gabrié, Tramel & Krzakala 2015,
    eqs. 5-6), μᵛ₀ = σ(b + u).  Its error in m is O(|W|³), naive mean field's O(|W|²).
    Differentiable (unrolled).  u: (B, n) -> (B, n).
    """
    W2 = rbm.W * rbm.W
    mv = torch.sigmoid(rbm.b + u)
    mh = rbm.hidden_mean(mv)
    d = damping
    for _ in range(sweeps):
        h_new = torch.sigmoid(rbm.c + mv @ rbm.W - (mh - 0.5) * ((mv - mv * mv) @ W2))
        mh = (1 - d) * mh + d * h_new
        v_new = torch.sigmoid(rbm.b + u + mh @ rbm.W.T - (mv - 0.5) * ((mh - mh * mh) @ W2.T))
        mv = (1 - d) * mv + d * v_new
    return mv


def exact_mean(rbm: RBM, u: torch.Tensor) -> torch.Tensor:
    """m = E[v] under visible bias b + u, exactly: by the factorised visible enumeration
    (cost ~ 2^n (nm + B)) or the chunked hidden enumeration (cost ~ B 2^m n), whichever is
    cheaper.  u: (B, n) -> (B, n)."""
    n, m = rbm.n_visible, rbm.n_hidden
    if min(n, m) > MAX_ENUM_BITS:
        raise RbmdiffError(
            f"exact m_θ needs 2^{min(n, m)} states ({n}×{m} RBM), beyond the enumeration limit "
            f"2^{MAX_ENUM_BITS}: use m_method 'tap' or 'meanfield'")
    if enumerates_visible(n, m, u.shape[0]):
        return visible_enum_mean(rbm, u)
    return hidden_enum_mean(rbm, u)


def enumerates_visible(n: int, m: int, batch: int) -> bool:
    """Whether exact m for a batch of ``batch`` rows enumerates v (cost ~ 2^n (nm + 2B)) rather
    than h (cost ~ 2^m B n)."""
    visible_cost = 2.0**n * (n * m + 2 * batch) if n <= MAX_ENUM_BITS else math.inf
    return visible_cost <= 2.0**m * batch * n


def hidden_enum_mean(rbm: RBM, u: torch.Tensor, *, chunk_states: int | None = None
                     ) -> torch.Tensor:
    """m = Σ_h p(h|u) σ(b + u + Wh),  p(h|u) ∝ exp(cᵀh + Σ_i softplus(b_i + u_i + (Wh)_i)).

    The 2^m hidden states are visited in chunks of ``chunk_states`` (default: as many as keep
    B × chunk × n ≤ CHUNK_ELEMENTS) with a running log-sum-exp; Wh is computed once per chunk
    for the whole batch.  The backward pass recomputes each chunk instead of storing it
    (:class:`_HiddenEnumMean`), so memory is bounded by one chunk in both directions.
    Differentiable in W, b, c and u.  u: (B, n) -> (B, n).
    """
    B, n = u.shape
    if chunk_states is None:
        chunk_states = max(1, CHUNK_ELEMENTS // max(1, B * n))
    return _HiddenEnumMean.apply(u, rbm.W, rbm.b, rbm.c, int(chunk_states))


def _hidden_chunks(m: int, size: int, like: torch.Tensor):
    """All 2^m hidden states in binary order, ``size`` rows at a time (dtype, device of like)."""
    shifts = torch.arange(m - 1, -1, -1, dtype=torch.int64, device=like.device)
    for start in range(0, 2**m, size):
        r = torch.arange(start, min(start + size, 2**m), dtype=torch.int64, device=like.device)
        yield ((r[:, None] >> shifts) & 1).to(like.dtype)


def _chunk_terms(h, bu, W, c):
    """For hidden states h (S, m): pre = b + u + Wh (B, S, n), log w = cᵀh + Σ_i softplus(pre_i)
    (B, S)."""
    pre = bu[:, None, :] + (h @ W.T)[None]
    return pre, h @ c + torch.nn.functional.softplus(pre).sum(-1)


class _HiddenEnumMean(torch.autograd.Function):
    """Chunked hidden enumeration of m with a recomputing backward.

    With p = p(h|u), s = σ(pre) and upstream gradient g (B, n), r_b = g_b·m_b, q_bh = g_b·s_bh:
    ∂(g·m)/∂pre_bhi = G_bhi = p_bh [g_bi s_bhi (1 - s_bhi) + (q_bh - r_b) s_bhi]  (through σ and
    through log w, whose derivative in pre is s), ∂/∂log w_bh = p_bh (q_bh - r_b).  Hence
    ∇u = Σ_h G, ∇b = Σ_bh G, ∇W = Σ_h (Σ_b G_bh) hᵀ, ∇c = Σ_bh p (q - r) h.
    """

    @staticmethod
    def forward(ctx, u, W, b, c, chunk_states):
        bu = b + u
        B, n = bu.shape
        log_scale = torch.full((B,), -math.inf, dtype=u.dtype, device=u.device)
        total = torch.zeros(B, dtype=u.dtype, device=u.device)
        acc = torch.zeros(B, n, dtype=u.dtype, device=u.device)
        for h in _hidden_chunks(W.shape[1], chunk_states, u):
            pre, logw = _chunk_terms(h, bu, W, c)
            new = torch.maximum(log_scale, logw.amax(1))
            shrink = torch.exp(log_scale - new)  # rescale what was summed so far
            w = torch.exp(logw - new[:, None])  # (B, S)
            acc = acc * shrink[:, None] + torch.bmm(w[:, None, :], pre.sigmoid_())[:, 0]
            total, log_scale = total * shrink + w.sum(1), new
        m = acc / total[:, None]
        log_z = log_scale + torch.log(total)
        ctx.save_for_backward(u, W, b, c, m, log_z)
        ctx.chunk_states = chunk_states
        return m

    @staticmethod
    def backward(ctx, g):
        u, W, b, c, m, log_z = ctx.saved_tensors
        bu = b + u
        r = (g * m).sum(1)  # (B,)
        grad_u = torch.zeros_like(u)
        grad_W, grad_c = torch.zeros_like(W), torch.zeros_like(c)
        for h in _hidden_chunks(W.shape[1], ctx.chunk_states, u):
            pre, logw = _chunk_terms(h, bu, W, c)
            s = pre.sigmoid_()
            p = torch.exp(logw - log_z[:, None])  # (B, S)
            q = torch.bmm(s, g[:, :, None])[..., 0]  # (B, S)
            coef = p * (q - r[:, None])
            # G = s ⊙ (p g ⊙ (1 - s) + coef), in place in one (B, S, n) buffer
            G = torch.rsub(s, 1.0).mul_(g[:, None, :]).mul_(p[:, :, None])
            G.add_(coef[:, :, None]).mul_(s)
            grad_u += G.sum(1)
            grad_W += G.sum(0).T @ h
            grad_c += coef.sum(0) @ h
        grad_b = grad_u.sum(0)
        need = ctx.needs_input_grad
        return (grad_u if need[0] else None, grad_W if need[1] else None,
                grad_b if need[2] else None, grad_c if need[3] else None, None)


def visible_enum_mean(rbm: RBM, u: torch.Tensor) -> torch.Tensor:
    """m = Σ_v softmax_v(-F(v) + uᵀv) v over all 2^n visible states, factorised.

    Split v = (v', v'') into its first k = ⌊n/2⌋ and last n - k bits.  Since uᵀv = u'ᵀv' + u''ᵀv'',
    the weight of state (i, j) is w_bij = E_ij α_bi β_bj with E_ij = e^{-F(v'_i, v''_j)} (shared
    by the batch), α_bi = e^{u'ᵀv'_i} and β_bj = e^{u''ᵀv''_j}, so

        Z_b = α_bᵀ E β_b,   m'_b = Σ_i α_bi (E β_b)_i v'_i / Z_b,   m''_b likewise with Eᵀα_b:

    two (B × 2^k) @ (2^k × 2^{n-k}) products instead of a (B × 2^n) softmax and two
    (B × 2^n) @ (2^n × n) products; F is evaluated once per call, not once per row.  Computed
    in float64 with each row of E, and α, β, shifted to maximum 1; rows whose Z_b falls below
    10^-250 (the weight sits where all three shifted factors are tiny) are redone by the
    direct softmax.  Differentiable in θ and u.  u: (B, n) -> (B, n).
    """
    n, k = rbm.n_visible, rbm.n_visible // 2
    if k == 0:
        return _visible_enum_mean_direct(rbm, u)
    dev = u.device
    v1, v2 = _states(k, torch.float64, dev), _states(n - k, torch.float64, dev)  # (I,k), (J,n-k)
    log_e = -rbm.free_energy(_states(n, rbm.dtype, dev)).to(torch.float64).view(len(v1), len(v2))
    row_max = log_e.detach().amax(1)  # (I,)
    e = torch.exp(log_e - row_max[:, None])  # (I, J), each row's maximum is 1
    u64 = u.to(torch.float64)
    log_alpha = u64[:, :k] @ v1.T + row_max  # (B, I)
    log_beta = u64[:, k:] @ v2.T  # (B, J)
    alpha = torch.exp(log_alpha - log_alpha.detach().amax(1, keepdim=True))
    beta = torch.exp(log_beta - log_beta.detach().amax(1, keepdim=True))
    w1 = alpha * (beta @ e.T)  # (B, I): Σ_j w_bij
    w2 = beta * (alpha @ e)  # (B, J): Σ_i w_bij
    z = w1.sum(1, keepdim=True)
    bad = ~(z[:, 0] > 1e-250)
    m = torch.cat([w1 @ v1, w2 @ v2], dim=1) / torch.where(bad[:, None], 1.0, z)
    if bad.any():
        m = m.clone()
        m[bad] = _visible_enum_mean_direct(rbm, u[bad]).to(torch.float64)
    return m.to(rbm.dtype)


def _visible_enum_mean_direct(rbm: RBM, u: torch.Tensor) -> torch.Tensor:
    """m = softmax_v(-F(v) + uᵀv) @ v over the (B × 2^n) weights.  u: (B, n) -> (B, n)."""
    v = _states(rbm.n_visible, rbm.dtype, u.device)  # (S, n)
    logw = -rbm.free_energy(v)[None, :] + u @ v.T  # (B, S)
    return torch.softmax(logw, dim=1) @ v


@functools.lru_cache(maxsize=16)
def _states(k: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """binary_states(k), built once per (k, dtype, device); callers must not modify it."""
    return binary_states(k, dtype=dtype, device=device)


def gibbs_mean(
    rbm: RBM, u: torch.Tensor, *, sweeps: int = 20, generator: torch.Generator | None = None
) -> torch.Tensor:
    """E[v] under visible bias b + u by block Gibbs, averaging σ(b + u + Wh) over the
    second half of the sweeps (Rao-Blackwellised).  (B, n) -> (B, n), no gradient."""
    with torch.no_grad():
        v = torch.bernoulli(torch.sigmoid(rbm.b + u), generator=generator)
        total, kept = torch.zeros_like(v), 0
        for k in range(sweeps):
            h = rbm.sample_hidden(v, generator=generator)
            p = rbm.visible_mean(h, field=u)
            if k >= sweeps // 2:
                total, kept = total + p, kept + 1
            v = torch.bernoulli(p, generator=generator)
        return total / kept


def gibbs_cov_mean(
    rbm: RBM, u: torch.Tensor, *, sweeps: int = 20, chains: int = 8,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """m = E[v] under visible bias b + u from S = ``chains`` clamped block-Gibbs chains per row,
    with the score-function gradient  ∂m/∂θ = Cov_{p(v|u)}(v, -∂F(v)/∂θ).

    Value: the Rao-Blackwellised mean (1/S) Σ_s σ(b + u + W h_s) after ``sweeps`` sweeps from
    v ~ Bernoulli(σ(b + u)).  Gradient: m̂ + (1/(S-1)) Σ_s (v_s - v̄) (f_s - stop(f_s)) with
    f_s = -F(v_s) has value m̂ and derivative the sample covariance, since p(v|u) ∝ e^{-F(v)+uᵀv}
    and u does not depend on θ.  Unbiased up to the chains' burn-in.  (B, n) -> (B, n).
    """
    with torch.no_grad():
        p = torch.sigmoid(rbm.b + u).expand(chains, *u.shape)
        v = torch.bernoulli(p, generator=generator)
        for _ in range(sweeps):
            h = rbm.sample_hidden(v, generator=generator)
            p = rbm.visible_mean(h, field=u)
            v = torch.bernoulli(p, generator=generator)
        m_hat = p.mean(0)
        centred = v - v.mean(0)  # (S, B, n)
    f = -rbm.free_energy(v)  # (S, B), carries the gradient
    return m_hat + (centred * (f - f.detach())[..., None]).sum(0) / (chains - 1)


SCORES = {FreeEnergyScore.name: FreeEnergyScore, PosteriorScore.name: PosteriorScore}


def make_score(name: str, *, sde: VPSDE, eps: float = DEFAULT_EPS, **options):
    """Resolve a score model by name: ``free_energy`` or ``posterior``."""
    if name not in SCORES:
        raise RbmdiffError(f"unknown score {name!r}; choose one of {sorted(SCORES)}")
    if name == FreeEnergyScore.name:
        return FreeEnergyScore(sde=sde, eps=eps)
    return PosteriorScore(sde=sde, eps=eps, **options)
