"""Training: denoising score matching (docs/math.md §5) and the CD-k, PCD, exact-ML baselines."""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch

from rbmdiff.data import check_batch_size, is_binary
from rbmdiff.device import resolve, to_device
from rbmdiff.errors import RbmdiffError
from rbmdiff.exact import (
    EXACT_LAW_BITS,
    MAX_ENUM_BITS,
    kl_data_model,
    log_partition,
    log_partition_tensor,
    mean_log_likelihood,
)
from rbmdiff.files import atomic_write_bytes
from rbmdiff.options import TrainOptions, parse
from rbmdiff.rbm import RBM
from rbmdiff.samplers.base import torch_threads
from rbmdiff.score import DEFAULT_EPS, logit_bound, make_score, to_logit
from rbmdiff.sde import VPSDE, uniform01

WEIGHTINGS = ("sigma2", "likelihood")
LR_SCHEDULES = ("constant", "cosine")

# The variance-reduced DSM recipe measured in BENCHMARKS.md (`-vr` rows) for
# score="posterior", method="dsm"; rbmdiff.training_defaults adds m_method, lr, steps and
# the noise draws by its rule.
RECOMMENDED_DSM: dict = {
    "weighting": "likelihood", "log_snr_range": (-4.0, 4.0), "stratified": True,
    "data_target": True, "n_noise": 4, "init_scale": 0.3, "lr_schedule": "cosine", "ema": 0.99,
}
EXACT_EVAL_BITS = EXACT_LAW_BITS  # exact log-likelihood in the history when min(n, m) ≤ this
# ... in every record while its enumeration (2^min(n, m) · max(n, m) terms) is at most this;
# beyond (e.g. 784 × 20 on MNIST: ~5 s per log Z) in every EXACT_EVAL_STRIDE-th record and
# the last only, so that evaluation does not outweigh training
EXACT_EVAL_TERMS = 2**16 * 784
EXACT_EVAL_STRIDE = 10


@dataclass
class TrainResult:
    """The trained RBM (its ``meta`` a function of the inputs: no timings), the history, and
    ``wall_s``: this machine's wall time, a timing kept out of the model file."""

    rbm: RBM
    history: list[dict] = field(default_factory=list)
    wall_s: float = math.nan


def dsm_loss(
    rbm: RBM,
    score,
    v: torch.Tensor,
    *,
    t_eps: float = 1e-3,
    t_max: float = 1.0,
    weighting: str = "sigma2",
    n_noise: int = 1,
    stratified: bool = False,
    reference: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """ℓ(θ) = E_{t, ζ} w(t) ‖σ_t s_θ(α_t a_0 + σ_t ζ, t) + ζ‖²,  a_0 = logit(clip(v)).

    weighting "sigma2": λ(t) = σ_t², t ~ U[t_ε, t_max], w = 1 (docs/math.md §5; Song et al. 2021a).
    weighting "likelihood": λ(t) = β(t), i.e. ∫ β/σ² ‖σ s + ζ‖² dt, estimated with t drawn
    ∝ β/σ² (w = its normaliser Z), which is uniform in log-SNR.  With the exact ``posterior``
    score this is, up to a constant, KL(p_data,t_ε ‖ p_θ,t_ε) - KL at t_max (Song et al.
    2021b, Thm. 1): maximum likelihood on the noised binary data.
    n_noise: independent (t, ζ) draws per row (the batch is repeated n_noise times);
    stratified: the B·n_noise uniforms behind t fill equal strata (variance reduction).
    reference: binary rows (N, n) (the whole training set): the regression target -ζ/σ_t is
    replaced by the exact score of the noised empirical law of ``reference``,
    σ_t s_data = (α_t L (2 m_data - 1) - a_t)/σ_t with m_data = softmax_k(u·v_k) v_k,
    u = 2 α_t L a_t/σ_t² (Rao-Blackwellisation over which row produced a_t; the "stable
    target" of Xu et al. 2023).  Same minimiser and gradient in expectation when v is drawn
    from ``reference``, much lower variance at low SNR.
    v: (B, n) -> scalar.
    """
    if n_noise > 1:
        v = v.repeat(n_noise, 1)
    a0 = to_logit(v, score.eps)
    size = v.shape[0]
    if weighting == "sigma2":
        u = (uniform01(size, stratified=True, generator=generator).to(v.dtype) if stratified
             else torch.rand(size, generator=generator, dtype=v.dtype, device=v.device))
        t = t_eps + (t_max - t_eps) * u
        w = 1.0
    elif weighting == "likelihood":
        t, w = score.sde.sample_likelihood_t(size, t_eps, t_max=t_max, stratified=stratified,
                                             generator=generator, dtype=v.dtype)
    else:
        raise RbmdiffError(f"unknown weighting {weighting!r}; choose one of {WEIGHTINGS}")
    a_t, zeta = score.sde.marginal_sample(a0, t, generator=generator)
    sigma = score.sde.sigma(t)[:, None]
    target = -zeta if reference is None else sigma * empirical_score(
        score.sde, reference.to(v.dtype), a_t, t, logit_bound(score.eps))
    return w * ((sigma * score(rbm, a_t, t) - target) ** 2).sum(-1).mean()


def empirical_score(
    sde: VPSDE, ref: torch.Tensor, a_t: torch.Tensor, t: torch.Tensor, L: float
) -> torch.Tensor:
    """Score of the noised empirical law (1/N) Σ_k N(a; α_t L(2v_k - 1), σ_t² I) of binary rows
    ref: (N, n):  s = (α_t L (2 m_data - 1) - a)/σ_t²,  m_data = Σ_k softmax_k(u·v_k) v_k,
    u = 2 α_t L a/σ_t² (the Gaussian's ‖2v - 1‖² = n is the same for every row).
    a_t: (B, n), t: (B,) -> (B, n), no gradient."""
    with torch.no_grad():
        alpha, sigma2 = sde.alpha(t)[:, None], sde.sigma(t)[:, None] ** 2
        u = 2 * alpha * L * a_t / sigma2
        m_data = torch.softmax(u @ ref.T, dim=1) @ ref
        return (alpha * L * (2 * m_data - 1) - a_t) / sigma2


def t_range_of_log_snr(
    sde: VPSDE, L: float, log_snr_range: tuple[float, float], *, t_eps: float = 1e-3
) -> tuple[float, float]:
    """The t-interval on which λ(t) = log(α_t² L²/σ_t²) runs from λ_max down to λ_min,
    clipped to [t_ε, 1].  The posterior term 4 e^λ E‖m_θ - v‖² vanishes outside a window of
    O(1) log-SNR: m_θ → v at high SNR, the weight e^λ → 0 at low SNR."""
    lam_min, lam_max = sorted(float(x) for x in log_snr_range)
    t_lo = float(sde.t_of_log_snr(torch.tensor(lam_max, dtype=torch.float64), L))
    t_hi = float(sde.t_of_log_snr(torch.tensor(lam_min, dtype=torch.float64), L))
    return max(t_lo, t_eps), min(t_hi, 1.0)


def contrastive_loss(rbm: RBM, v_data: torch.Tensor, v_model: torch.Tensor) -> torch.Tensor:
    """mean F(v_data) - mean F(v_model): its gradient is the CD / PCD estimate of -∇ log-lik."""
    return rbm.free_energy(v_data).mean() - rbm.free_energy(v_model.detach()).mean()


def ml_loss(rbm: RBM, v: torch.Tensor) -> torch.Tensor:
    """Exact negative log-likelihood per example: mean F(v) + log Z (log Z by enumeration)."""
    return rbm.free_energy(v).mean() + log_partition_tensor(rbm)


def init_rbm(
    x: torch.Tensor, n_hidden: int, *, seed: int, scale: float = 0.01,
    dtype: torch.dtype = torch.float32, mask: torch.Tensor | None = None,
) -> RBM:
    """W ~ N(0, scale²) (times the mask, if any), b = logit of the data's unit means
    (Hinton 2010, §8), c = 0."""
    rbm = RBM.random(x.shape[1], n_hidden, scale=scale, seed=seed, dtype=dtype)
    W = rbm.W if mask is None else rbm.W * mask
    p = x.to(dtype).mean(0).clamp(1e-3, 1 - 1e-3)
    return RBM(W, torch.logit(p), torch.zeros(n_hidden, dtype=dtype), mask=mask)


MAX_PARAMETER = 1e4  # |θ| beyond this is a diverged run: e^{-E} over- or underflows


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (the keywords of :func:`train`), validated
    once on construction.  Its defaults are the plain values a field falls back to; what
    :func:`train` fills in is the rule's (:func:`configure`).  ``mask``: bool (n, n_hidden)
    connectivity, W stays 0 where False; ``layout``: its placement on a solver graph
    (:func:`rbmdiff.topology.native_layout`), kept in the model's meta, where the QPU sampler
    finds it (also during training).
    ``negative``: PCD's negative phase from this registered sampler (``samplers.get(negative,
    **negative_params)``, fresh reads each step) instead of persistent Gibbs chains;
    ``qpu_budget_us`` caps the QPU access time those reads may spend: each call is estimated
    to cost what the previous one reported (the first is made whenever the budget is
    positive), and training stops, keeping what it has learnt, before a call that would
    overrun."""

    n_hidden: int
    method: str = "dsm"
    score: str = "posterior"
    steps: int = 2000
    batch_size: int = 64
    lr: float = 1e-2
    seed: int = 0
    beta_min: float = 0.1
    beta_max: float = 20.0
    eps: float = DEFAULT_EPS
    t_eps: float = 1e-3
    t_max: float = 1.0
    log_snr_range: tuple[float, float] | None = None
    weighting: str = "sigma2"
    n_noise: int = 1
    stratified: bool = False
    lr_schedule: str = "constant"
    ema: float = 0.0
    data_target: bool = False
    m_method: str = "exact"
    sweeps: int = 10
    damping: float = 0.5
    gibbs_sweeps: int = 20
    gibbs_chains: int = 8
    cd_k: int = 1
    init_scale: float = 0.01
    dtype: torch.dtype = torch.float32
    max_records: int = 200
    mask: torch.Tensor | None = None
    layout: dict | None = None
    negative: str | None = None
    negative_params: dict | None = None
    qpu_budget_us: float | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        # the user's settings by their one declaration (rbmdiff.options.TrainOptions), kept as
        # it reads them; None, which there means "the rule chooses", is not a setting here
        shared = [f.name for f in fields(self) if f.name in TrainOptions.model_fields]
        for name in shared:
            if getattr(self, name) is None:
                raise RbmdiffError(f"{name}: TrainConfig needs a value (None, the rule's "
                                   "choice, is for train() and TrainOptions)")
        checked = parse({name: getattr(self, name) for name in shared})
        for name in shared:
            object.__setattr__(self, name, getattr(checked, name))
        if self.weighting not in WEIGHTINGS:
            raise RbmdiffError(f"unknown weighting {self.weighting!r}; choose one of {WEIGHTINGS}")
        if not 0 <= self.ema < 1:
            raise RbmdiffError(f"ema must lie in [0, 1), got {self.ema}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise RbmdiffError(
                f"unknown lr_schedule {self.lr_schedule!r}; choose one of {LR_SCHEDULES}")
        if self.negative is not None and self.method != "pcd":
            raise RbmdiffError(f"negative={self.negative!r} needs method 'pcd', not "
                               f"{self.method!r}")
        if self.layout is not None and self.mask is None:
            raise RbmdiffError("a layout needs the mask it was made with")
        if self.qpu_budget_us is not None and not self.qpu_budget_us > 0:
            raise RbmdiffError(f"qpu_budget_us must be positive, got {self.qpu_budget_us}")

    def check_data(self, x: torch.Tensor) -> None:
        """Refuse requests this data makes impossible."""
        n = x.shape[1]
        if self.method == "ml" and min(n, self.n_hidden) > EXACT_EVAL_BITS:
            raise RbmdiffError(
                f"exact ML enumerates 2^{min(n, self.n_hidden)} states; it needs the smaller "
                f"layer ≤ {EXACT_EVAL_BITS} units (got {n}×{self.n_hidden}): use --method pcd")
        check_batch_size(self.batch_size, x.shape[0])
        if self.mask is not None and tuple(self.mask.shape) != (n, self.n_hidden):
            raise RbmdiffError(f"mask has shape {tuple(self.mask.shape)}; the model needs "
                               f"({n}, {self.n_hidden})")

    def fingerprint(self, x: torch.Tensor) -> str:
        """SHA-256 of the arguments and the data: what a checkpoint must match."""
        config = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "device"}
        for key in ("layout", "negative", "negative_params", "qpu_budget_us"):
            if config[key] is None:  # absent from checkpoints written without them
                del config[key]
        config["mask"] = None if self.mask is None else self.mask.int().tolist()
        digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
        digest.update(x.detach().contiguous().cpu().numpy().tobytes())
        return digest.hexdigest()


class _BudgetSpent(Exception):
    """The next negative-phase read would overrun the QPU budget."""


@dataclass
class _Run:
    """The mutable state of one training run (what a checkpoint holds)."""

    cfg: TrainConfig
    rbm: RBM
    score: object
    opt: torch.optim.Optimizer
    sched: object | None
    avg: RBM | None  # Polyak / EMA average of θ
    g: torch.Generator
    chains: torch.Tensor
    t_eps: float
    t_max: float
    sampler: object | None = None
    qpu_spent_us: float = 0.0
    qpu_last_us: float = 0.0
    step: int = 0
    first_epoch: int = 0
    history: list[dict] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    start: float = field(default_factory=time.perf_counter)
    stopped: str | None = None

    def update(self, loss: torch.Tensor) -> None:
        """One optimiser step on ``loss``; refuses a diverged run."""
        value = float(loss.detach())
        if not math.isfinite(value):
            self.diverged(f"the loss is {value}")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        with torch.no_grad():
            if self.cfg.mask is not None:  # project back onto the native graph
                self.rbm.W.mul_(self.cfg.mask)
            largest = max(float(p.abs().max()) for p in self.rbm.parameters())
        if not largest <= MAX_PARAMETER:
            self.diverged(f"a parameter reached |θ| = {largest:.3g} (> {MAX_PARAMETER:g})")
        if self.sched is not None:
            self.sched.step()
        if self.avg is not None:
            with torch.no_grad():
                for p_avg, p in zip(self.avg.parameters(), self.rbm.parameters(), strict=True):
                    p_avg.lerp_(p, 1 - self.cfg.ema)
        self.losses.append(value)
        self.step += 1

    def diverged(self, what: str) -> None:
        raise RbmdiffError(f"training diverged at step {self.step + 1}: {what}; lower the "
                           f"learning rate (lr={self.cfg.lr:g})")

    def negatives(self, count: int) -> torch.Tensor:
        """``count`` reads of the negative-phase sampler at the current θ, within the budget."""
        budget = self.cfg.qpu_budget_us
        if budget is not None and self.qpu_spent_us + self.qpu_last_us > budget:
            raise _BudgetSpent
        seed = int(torch.randint(2**31, (1,), generator=self.g, device=self.g.device))
        samples = self.sampler.sample(self.rbm.detach(), count, seed=seed)
        self.qpu_last_us = float(samples.info.get("qpu_access_time", 0.0))
        self.qpu_spent_us += self.qpu_last_us
        return samples.v.to(self.rbm.dtype)


def _dsm_step(run: _Run, v: torch.Tensor, v_all: torch.Tensor) -> torch.Tensor:
    cfg = run.cfg
    return dsm_loss(run.rbm, run.score, v, t_eps=run.t_eps, t_max=run.t_max,
                    weighting=cfg.weighting, n_noise=cfg.n_noise, stratified=cfg.stratified,
                    reference=v_all if cfg.data_target else None, generator=run.g)


def _cd_step(run: _Run, v: torch.Tensor, v_all: torch.Tensor) -> torch.Tensor:
    return contrastive_loss(run.rbm, v, run.rbm.gibbs(v, run.cfg.cd_k, generator=run.g))


def _pcd_step(run: _Run, v: torch.Tensor, v_all: torch.Tensor) -> torch.Tensor:
    if run.sampler is not None:
        run.chains = run.negatives(v.shape[0])
    else:
        run.chains = run.rbm.gibbs(run.chains, run.cfg.cd_k, generator=run.g)
    return contrastive_loss(run.rbm, v, run.chains)


def _ml_step(run: _Run, v: torch.Tensor, v_all: torch.Tensor) -> torch.Tensor:
    return ml_loss(run.rbm, v)


STEPS: dict[str, Callable[[_Run, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "dsm": _dsm_step, "cd": _cd_step, "pcd": _pcd_step, "ml": _ml_step,
}


class _Checkpoint:
    """The full training state in a file, written atomically every ``every`` epochs; a run
    that finds one of its own fingerprint resumes from it, anyone else's is refused."""

    def __init__(self, path: str | os.PathLike | None, every: int, fingerprint: str) -> None:
        if path is not None and every < 1:
            raise RbmdiffError(f"checkpoint_every must be ≥ 1 epoch, got {every}")
        self.path, self.every, self.fingerprint = path, every, fingerprint

    def restore(self, run: _Run) -> None:
        state = _load_checkpoint(self.path, self.fingerprint) if self.path else None
        if state is None:
            return
        with torch.no_grad():
            for p, q in zip(run.rbm.parameters(), state["theta"], strict=True):
                p.copy_(q)
            if run.avg is not None:
                for p, q in zip(run.avg.parameters(), state["avg"], strict=True):
                    p.copy_(q)
        run.opt.load_state_dict(state["opt"])
        if run.sched is not None:
            run.sched.load_state_dict(state["sched"])
        run.g.set_state(state["rng"])
        run.chains, run.history, run.losses = (state["chains"].to(run.chains.device),
                                                state["history"], state["losses"])
        run.step, run.first_epoch = state["step"], state["epoch"] + 1
        run.start -= state["wall_s"]
        run.qpu_spent_us = state.get("qpu_spent_us", 0.0)
        run.qpu_last_us = state.get("qpu_last_us", 0.0)

    def maybe_save(self, run: _Run, epoch: int) -> None:
        if self.path is None or (epoch + 1) % self.every:
            return
        _save_checkpoint(self.path, {
            "fingerprint": self.fingerprint, "epoch": epoch, "step": run.step,
            "theta": [p.detach().clone() for p in run.rbm.parameters()],
            "avg": [p.clone() for p in run.avg.parameters()] if run.avg is not None else None,
            "opt": run.opt.state_dict(), "sched": run.sched.state_dict() if run.sched else None,
            "rng": run.g.get_state(), "chains": run.chains, "history": run.history,
            "losses": run.losses, "wall_s": time.perf_counter() - run.start,
            "qpu_spent_us": run.qpu_spent_us, "qpu_last_us": run.qpu_last_us,
        })


def train(
    x: torch.Tensor,
    options: TrainOptions | None = None,
    *,
    eval_data: torch.Tensor | None = None,
    progress: bool = False,
    callback: Callable[[dict], None] | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 1,
    recipe: str | None = None,
    **kw,
) -> TrainResult:
    """Fit an RBM to x: (N, n) in [0, 1] with Adam.  The settings: ``options``
    (:class:`rbmdiff.options.TrainOptions`, what ``rbmdiff train`` and params.yaml's ``train``
    take, its ``recipe`` and ``threads`` included; or a mapping of its keys) and/or keywords,
    any of its fields or :class:`TrainConfig`'s (``n_hidden`` required; a keyword wins over
    ``options``).
    What is not given is chosen by the measured-best rule of :mod:`rbmdiff.training_defaults`
    (:func:`configure`), exactly as ``rbmdiff train`` and the pipeline choose it:
    ``train(x, n_hidden=16)`` gets the method, m_θ, learning rate, steps,
    noise draws and batch (≤ the rows) that ``rbmdiff train --n-hidden 16`` gets on the same
    data.  ``recipe="plain"``: DSM with the posterior score as docs/math.md §5 writes it
    (``--recipe plain``).  For a run with every setting as written, :func:`fit` with a
    :class:`TrainConfig`.

    Grey-level x trains on v ~ Bernoulli(x), redrawn each epoch.  The history holds one record
    per epoch (strided to at most ``max_records``): mean loss, wall time, and the exact
    train/test log-likelihood and KL(data‖model) when the smaller layer is ≤ 20 units.
    A run whose loss turns non-finite or whose parameters pass ±10⁴ stops with an
    RbmdiffError (nothing is returned).

    ``checkpoint``: a file written (atomically) every ``checkpoint_every`` epochs with the full
    training state — parameters, Adam and schedule state, EMA, PCD chains, the generator's
    state, history.  If it exists when training starts, training resumes from it and ends with
    exactly the parameters of an uninterrupted run with the same arguments; a checkpoint
    from other arguments or data is refused.
    """
    if options is not None:
        if not isinstance(options, TrainOptions):  # a mapping of the same keys
            options = parse(dict(options))
        kw = {**{k: v for k, v in options.model_dump().items() if v is not None}, **kw}
    if recipe is not None:
        kw["recipe"] = recipe
    recipe, threads = kw.pop("recipe", "recommended"), kw.pop("threads", None)
    with torch_threads(threads):
        return fit(x, configure(x, recipe=recipe, **kw), eval_data=eval_data,
                   progress=progress, callback=callback, checkpoint=checkpoint,
                   checkpoint_every=checkpoint_every)


def configure(x: torch.Tensor, *, recipe: str = "recommended", **options) -> TrainConfig:
    """The :class:`TrainConfig` :func:`train` runs for rows x (N, n) and these options: the
    given ones, the rest by the rule (:func:`rbmdiff.training_defaults.options_for`)."""
    from rbmdiff.training_defaults import options_for

    return TrainConfig(**options_for(x, recipe=recipe, **options))


def fit(
    x: torch.Tensor, cfg: TrainConfig, *, eval_data: torch.Tensor | None = None,
    progress: bool = False, callback: Callable[[dict], None] | None = None,
    checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 1,
) -> TrainResult:
    """:func:`train` with a ready :class:`TrainConfig`: set up, resume, loop, package."""
    cfg.check_data(x)
    device = resolve(cfg.device)
    x = x.to(cfg.dtype).to(device)
    eval_data = None if eval_data is None else eval_data.to(device)
    run = _setup(x, cfg)
    start = to_device(run.rbm.detach(), "cpu")  # the initial θ, before any resume
    ckpt = _Checkpoint(checkpoint, checkpoint_every, cfg.fingerprint(x))
    ckpt.restore(run)
    binary_data = is_binary(x)
    steps_per_epoch = math.ceil(x.shape[0] / cfg.batch_size)
    n_epochs = math.ceil(cfg.steps / steps_per_epoch)
    stride = max(1, math.ceil(n_epochs / cfg.max_records))
    bar = _progress(cfg, run.step, progress)
    for epoch in range(run.first_epoch, n_epochs):
        v_all = x if binary_data else torch.bernoulli(x, generator=run.g)
        try:
            order = torch.randperm(x.shape[0], generator=run.g, device=x.device)
            for idx in _batches(order, cfg.batch_size,
                                cfg.steps - run.step):
                run.update(STEPS[cfg.method](run, v_all[idx], v_all))
                bar.update(1)
        except _BudgetSpent:
            run.stopped = (f"QPU budget: {run.qpu_spent_us:.0f} of {cfg.qpu_budget_us:.0f} µs "
                           f"spent after {run.step} steps")
        last = run.step == cfg.steps or run.stopped is not None
        if epoch % stride == 0 or last:
            _record(run, epoch, x, eval_data, binary_data, bar, callback,
                    exact_due=last or (epoch // stride) % EXACT_EVAL_STRIDE == 0)
        if last:
            break
        ckpt.maybe_save(run, epoch)
    bar.close()
    trained = _package(run)
    check_not_diverged(start, trained, x.cpu(), lr=cfg.lr)
    return TrainResult(trained, run.history, time.perf_counter() - run.start)


def check_not_diverged(start: RBM, trained: RBM, x: torch.Tensor, *, lr: float) -> None:
    """Refuse a run that diverged: the exact mean log-likelihood of the training rows x
    (N, n) (grey levels: one draw v ~ Bernoulli(x), seed 0) under the trained model is below
    both the start's and the uniform model's, −n ln 2, by more than half the uniform model's
    code length, n ln 2 / 2 nats per row.  (A run that learns nothing, like the talk's
    free_energy score, stays near the start; lr 1e3 on bas-3x3 ends at −90,322 against the
    uniform −6.24.)  Checked only where log Z is exact (min(n, m) ≤ EXACT_EVAL_BITS); an
    RbmdiffError, so the caller keeps its previous model."""
    if min(trained.n_visible, trained.n_hidden) > EXACT_EVAL_BITS:
        return
    n = trained.n_visible
    v = x if is_binary(x) else torch.bernoulli(x.double(), generator=torch.Generator()
                                               .manual_seed(0))

    def mean_ll(rbm: RBM) -> float:
        with torch.no_grad():
            return float((-rbm.free_energy(v.to(rbm.dtype))).double().mean() - log_partition(rbm))

    uniform = -n * math.log(2)
    before, after = mean_ll(start), mean_ll(trained)
    floor = min(before, uniform) - n * math.log(2) / 2
    if not after >= floor:  # NaN included
        raise RbmdiffError(
            f"training diverged: the training rows score {after:.6g} nats per row under the "
            f"trained model, against {before:.4g} at the start and {uniform:.4g} for the "
            f"uniform model; the model was not saved (lower the learning rate, lr={lr:g})")


def _setup(x: torch.Tensor, cfg: TrainConfig) -> _Run:
    """The score model, initial RBM, optimiser, schedule, EMA and PCD chains of a fresh run."""
    sde = VPSDE(cfg.beta_min, cfg.beta_max)
    g = torch.Generator(device=x.device).manual_seed(cfg.seed)
    m_options = {"m_method": cfg.m_method, "sweeps": cfg.sweeps, "damping": cfg.damping,
                 "gibbs_sweeps": cfg.gibbs_sweeps, "gibbs_chains": cfg.gibbs_chains,
                 "generator": g}
    score = make_score(cfg.score, sde=sde, eps=cfg.eps,
                       **(m_options if cfg.score == "posterior" else {}))
    t_eps, t_max = cfg.t_eps, cfg.t_max
    if cfg.log_snr_range is not None:
        t_eps, t_max = t_range_of_log_snr(sde, logit_bound(cfg.eps), cfg.log_snr_range,
                                          t_eps=t_eps)
    sampler = _negative_sampler(cfg)
    rbm = to_device(init_rbm(x.cpu(), cfg.n_hidden, seed=cfg.seed, scale=cfg.init_scale,
                             dtype=cfg.dtype, mask=cfg.mask), x.device)
    if cfg.layout is not None:
        rbm.meta["layout"] = cfg.layout
    rbm.requires_grad_()
    opt = torch.optim.Adam(rbm.parameters(), lr=cfg.lr)
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.steps)
             if cfg.lr_schedule == "cosine" else None)
    avg = rbm.detach() if cfg.ema > 0 else None
    rows = torch.randint(x.shape[0], (cfg.batch_size,), generator=g, device=x.device)
    chains = torch.bernoulli(x[rows], generator=g)
    return _Run(cfg, rbm, score, opt, sched, avg, g, chains, t_eps, t_max, sampler)


def _negative_sampler(cfg: TrainConfig):
    if cfg.negative is None:
        return None
    from rbmdiff import samplers

    return samplers.get(cfg.negative, **(cfg.negative_params or {}))


def _batches(order: torch.Tensor, batch_size: int, left: int):
    """Index batches of one epoch, at most ``left`` of them; the last is topped up from the
    start of the permutation so that every batch has ``batch_size`` rows."""
    for i in range(0, len(order), batch_size):
        if left == 0:
            return
        idx = order[i: i + batch_size]
        if len(idx) < batch_size:
            idx = torch.cat([idx, order[: batch_size - len(idx)]])
        yield idx
        left -= 1


def _record(run: _Run, epoch: int, x, eval_data, binary_data: bool, bar, callback, *,
            exact_due: bool = True) -> None:
    """Append the epoch's history record (mean loss, wall time, exact metrics if cheap)."""
    record = {"step": run.step, "epoch": epoch + 1,
              "loss": sum(run.losses) / len(run.losses) if run.losses else math.nan,
              "wall_s": time.perf_counter() - run.start}
    run.losses = []
    model = run.avg or run.rbm
    k = min(model.n_visible, model.n_hidden)
    cheap = 2**k * max(model.n_visible, model.n_hidden) <= EXACT_EVAL_TERMS
    if k <= EXACT_EVAL_BITS and (cheap or exact_due):
        exact = _exact_record(model, x, eval_data, binary_data)
        bad = {k: v for k, v in exact.items() if not math.isfinite(v)}
        if bad:
            run.diverged(f"{', '.join(bad)} became {', '.join(map(str, bad.values()))}")
        record.update(exact)
    run.history.append(record)
    bar.set_postfix({k: f"{v:.3g}" for k, v in record.items() if k in ("loss", "test_ll")})
    if callback is not None:
        callback(record)


def _package(run: _Run) -> RBM:
    """The trained (averaged) RBM with what it was trained with in ``meta``."""
    cfg = run.cfg
    trained = to_device((run.avg or run.rbm).detach(), "cpu")  # saved device-free
    if cfg.method in ("cd", "pcd"):
        # CD/PCD chains: same law with either kernel, not the same stream
        kernel = cfg.negative or run.rbm.gibbs_kernel()  # where the chains ran
    else:  # DSM's gibbs_cov m draws its clamped chains with torch
        kernel = "torch" if getattr(run.score, "m_method", None) == "gibbs_cov" else None
    training = {
        "weighting": cfg.weighting, "n_noise": cfg.n_noise, "stratified": cfg.stratified,
        "lr_schedule": cfg.lr_schedule, "ema": cfg.ema, "data_target": cfg.data_target,
        "method": cfg.method, "steps": cfg.steps, "batch_size": cfg.batch_size, "lr": cfg.lr,
        "seed": cfg.seed, "cd_k": cfg.cd_k,
        "gibbs_kernel": kernel, "device": str(run.chains.device),
        "final_loss": run.history[-1]["loss"] if run.history else None,
    }
    if cfg.negative is not None:
        training.update(negative=cfg.negative, negative_params=cfg.negative_params or {},
                        qpu_access_us=run.qpu_spent_us, steps_done=run.step,
                        stopped=run.stopped)
    trained.meta = {**run.score.options(), **run.score.sde.as_dict(), "t_eps": run.t_eps,
                    "t_max": run.t_max, "training": training}
    if cfg.layout is not None:
        trained.meta["layout"] = cfg.layout
    return trained


def _save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def _load_checkpoint(path: str | os.PathLike, fingerprint: str) -> dict | None:
    """The saved state, None when there is no checkpoint yet; refuses a foreign one."""
    path = Path(path)
    for orphan in path.parent.glob(f".{path.name}.*.tmp"):  # left by a run killed mid-write
        orphan.unlink(missing_ok=True)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a cut or foreign file
        raise RbmdiffError(
            f"checkpoint {path} is truncated or not an rbmdiff checkpoint "
            f"({type(exc).__name__}); delete it to start afresh"
        ) from None
    if not isinstance(state, dict) or state.get("fingerprint") != fingerprint:
        raise RbmdiffError(
            f"checkpoint {path} was written by a run with other arguments or data; "
            "delete it or use another --checkpoint path"
        )
    return state


def _exact_record(rbm: RBM, x: torch.Tensor, test: torch.Tensor | None, binary: bool) -> dict:
    with torch.no_grad():
        frozen = rbm.detach()
        log_z = log_partition(frozen)
        out = {"log_z": log_z}
        if binary:
            out["train_ll"] = mean_log_likelihood(frozen, x, log_z)
            if x.shape[1] <= MAX_ENUM_BITS:
                out["kl_data_model"] = kl_data_model(frozen, x)
        if test is not None and is_binary(test):
            out["test_ll"] = mean_log_likelihood(frozen, test, log_z)
    return out


def _progress(cfg: TrainConfig, done: int, enabled: bool):
    from tqdm.auto import tqdm

    desc = f"train {cfg.method}/{cfg.score}" if cfg.method == "dsm" else f"train {cfg.method}"
    # disable=None: a bar only on a terminal (a log file gets none)
    bar = tqdm(total=cfg.steps, desc=desc, disable=None if enabled else True, leave=False,
               dynamic_ncols=True)
    bar.update(done)
    return bar
