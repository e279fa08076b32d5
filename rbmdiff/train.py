"""Training: denoising score matching (DESIGN §5) and the CD-k, PCD, exact-ML baselines."""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from rbmdiff.data import is_binary
from rbmdiff.device import resolve, to_device
from rbmdiff.errors import RbmdiffError
from rbmdiff.exact import MAX_ENUM_BITS, kl_data_model, log_partition, log_partition_tensor
from rbmdiff.files import atomic_write_bytes
from rbmdiff.rbm import RBM
from rbmdiff.score import DEFAULT_EPS, logit_bound, make_score, to_logit
from rbmdiff.sde import VPSDE, uniform01

METHODS = ("dsm", "cd", "pcd", "ml")
WEIGHTINGS = ("sigma2", "likelihood")
LR_SCHEDULES = ("constant", "cosine")

# The variance-reduced DSM recipe measured in BENCHMARKS.md (`-vr` rows) for
# score="posterior", method="dsm"; add m_method ("exact" when n ≤ 20, else "meanfield" with
# sweeps=10) and lr (0.1 on bars-and-stripes, 0.04 on digits-binary).
RECOMMENDED_DSM: dict = {
    "weighting": "likelihood", "log_snr_range": (-4.0, 4.0), "stratified": True,
    "data_target": True, "n_noise": 4, "init_scale": 0.3, "lr_schedule": "cosine", "ema": 0.99,
}
EXACT_EVAL_BITS = 20  # exact log-likelihood in the history when min(n, m) ≤ this


@dataclass
class TrainResult:
    rbm: RBM
    history: list[dict] = field(default_factory=list)


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

    weighting "sigma2": λ(t) = σ_t², t ~ U[t_ε, t_max], w = 1 (DESIGN §5; Song et al. 2021a).
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


def check_train_args(n_visible: int, n_hidden: int, method: str, **kw) -> None:
    """Refuse impossible requests before any work, naming the offending value."""
    if method not in METHODS:
        raise RbmdiffError(f"unknown method {method!r}; choose one of {METHODS}")
    if n_hidden < 1:
        raise RbmdiffError(f"n_hidden must be ≥ 1, got {n_hidden}")
    for key in ("steps", "batch_size", "cd_k"):
        if kw[key] < 1:
            raise RbmdiffError(f"{key} must be ≥ 1, got {kw[key]}")
    if not (kw["lr"] > 0 and math.isfinite(kw["lr"])):
        raise RbmdiffError(f"learning rate must be a positive number, got {kw['lr']}")
    if kw.get("weighting", "sigma2") not in WEIGHTINGS:
        raise RbmdiffError(f"unknown weighting {kw['weighting']!r}; choose one of {WEIGHTINGS}")
    if not 0 <= kw.get("ema", 0.0) < 1:
        raise RbmdiffError(f"ema must lie in [0, 1), got {kw['ema']}")
    if kw.get("n_noise", 1) < 1:
        raise RbmdiffError(f"n_noise must be ≥ 1, got {kw['n_noise']}")
    if kw.get("lr_schedule", "constant") not in LR_SCHEDULES:
        raise RbmdiffError(
            f"unknown lr_schedule {kw['lr_schedule']!r}; choose one of {LR_SCHEDULES}")
    if not 0 < kw["t_eps"] < 1:
        raise RbmdiffError(f"t_eps must lie in (0, 1), got {kw['t_eps']}")
    if method == "ml" and min(n_visible, n_hidden) > EXACT_EVAL_BITS:
        raise RbmdiffError(
            f"exact ML enumerates 2^{min(n_visible, n_hidden)} states; it needs the smaller layer "
            f"≤ {EXACT_EVAL_BITS} units (got {n_visible}×{n_hidden}): use --method pcd"
        )


def train(
    x: torch.Tensor,
    *,
    n_hidden: int,
    method: str = "dsm",
    score: str = "posterior",
    steps: int = 2000,
    batch_size: int = 64,
    lr: float = 1e-2,
    seed: int = 0,
    beta_min: float = 0.1,
    beta_max: float = 20.0,
    eps: float = DEFAULT_EPS,
    t_eps: float = 1e-3,
    t_max: float = 1.0,
    log_snr_range: tuple[float, float] | None = None,
    weighting: str = "sigma2",
    n_noise: int = 1,
    stratified: bool = False,
    lr_schedule: str = "constant",
    ema: float = 0.0,
    data_target: bool = False,
    m_method: str = "exact",
    sweeps: int = 10,
    damping: float = 0.5,
    gibbs_sweeps: int = 20,
    gibbs_chains: int = 8,
    cd_k: int = 1,
    init_scale: float = 0.01,
    dtype: torch.dtype = torch.float32,
    eval_data: torch.Tensor | None = None,
    max_records: int = 200,
    progress: bool = False,
    callback: Callable[[dict], None] | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 1,
    mask: torch.Tensor | None = None,
    device: str = "cpu",
) -> TrainResult:
    """Fit an RBM to x: (N, n) in [0, 1] with Adam.

    Grey-level x trains on v ~ Bernoulli(x), redrawn each epoch.  The history holds one record
    per epoch (strided to at most ``max_records``): mean loss, wall time, and the exact
    train/test log-likelihood and KL(data‖model) when the smaller layer is ≤ 20 units.

    ``checkpoint``: a file written (atomically) every ``checkpoint_every`` epochs with the full
    training state — parameters, Adam and schedule state, EMA, PCD chains, the generator's
    state, history.  If it exists when training starts, training resumes from it and ends with
    exactly the parameters of an uninterrupted run with the same arguments; a checkpoint
    from other arguments or data is refused.

    ``mask``: a bool (n, n_hidden) connectivity mask (:func:`rbmdiff.topology.native_layout`);
    W starts and stays exactly 0 where it is False, for every method.

    ``device``: "cpu", "cuda" or "auto" (:func:`rbmdiff.device.resolve`); the model, data and
    random stream live there, and the device is recorded in meta["training"]["device"].
    """
    config = {k: v for k, v in locals().items() if k not in (
        "x", "eval_data", "progress", "callback", "checkpoint", "checkpoint_every", "mask",
        "device")}
    config["mask"] = None if mask is None else mask.int().tolist()
    n = x.shape[1]
    check_train_args(n, n_hidden, method, steps=steps, batch_size=batch_size, cd_k=cd_k,
                     lr=lr, t_eps=t_eps, weighting=weighting, n_noise=n_noise,
                     lr_schedule=lr_schedule, ema=ema)
    if batch_size > x.shape[0]:
        raise RbmdiffError(f"batch_size {batch_size} exceeds the {x.shape[0]} training rows")
    sde = VPSDE(beta_min, beta_max)
    dev = resolve(device)
    g = torch.Generator(device=dev).manual_seed(seed)
    m_options = {"m_method": m_method, "sweeps": sweeps, "damping": damping,
                 "gibbs_sweeps": gibbs_sweeps, "gibbs_chains": gibbs_chains, "generator": g}
    score_model = make_score(score, sde=sde, eps=eps,
                             **(m_options if score == "posterior" else {}))
    if method == "dsm" and getattr(score_model, "m_method", "exact") == "gibbs":
        raise RbmdiffError("m_method 'gibbs' has no gradient; train with 'exact', 'meanfield' "
                           "or 'gibbs_cov'")
    if log_snr_range is not None:
        t_eps, t_max = t_range_of_log_snr(sde, logit_bound(eps), log_snr_range, t_eps=t_eps)
    x = x.to(dtype)
    rbm = to_device(init_rbm(x, n_hidden, seed=seed, scale=init_scale, dtype=dtype, mask=mask),
                    dev)
    x, mask = x.to(dev), rbm.mask
    eval_data = None if eval_data is None else eval_data.to(dev)
    rbm.requires_grad_()
    opt = torch.optim.Adam(rbm.parameters(), lr=lr)
    avg = rbm.detach() if ema > 0 else None  # Polyak / EMA average of θ
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
             if lr_schedule == "cosine" else None)
    exact_ok = min(n, n_hidden) <= EXACT_EVAL_BITS
    binary_data = is_binary(x)
    steps_per_epoch = math.ceil(x.shape[0] / batch_size)
    n_epochs = math.ceil(steps / steps_per_epoch)
    stride = max(1, math.ceil(n_epochs / max_records))
    chains = torch.bernoulli(x[torch.randint(x.shape[0], (batch_size,), generator=g, device=dev)],
                             generator=g)

    history: list[dict] = []
    start, step, losses, first_epoch = time.perf_counter(), 0, [], 0
    fingerprint = _fingerprint(config, x)
    if checkpoint is not None and checkpoint_every < 1:
        raise RbmdiffError(f"checkpoint_every must be ≥ 1 epoch, got {checkpoint_every}")
    state = _load_checkpoint(checkpoint, fingerprint) if checkpoint is not None else None
    if state is not None:
        with torch.no_grad():
            for p, q in zip(rbm.parameters(), state["theta"], strict=True):
                p.copy_(q)
            if avg is not None:
                for p, q in zip(avg.parameters(), state["avg"], strict=True):
                    p.copy_(q)
        opt.load_state_dict(state["opt"])
        if sched is not None:
            sched.load_state_dict(state["sched"])
        g.set_state(state["rng"])
        chains, history, losses = state["chains"].to(dev), state["history"], state["losses"]
        step, first_epoch = state["step"], state["epoch"] + 1
        start -= state["wall_s"]
    bar = _progress(steps, f"train {method}/{score}" if method == "dsm" else f"train {method}",
                    progress)
    bar.update(step)
    for epoch in range(first_epoch, n_epochs):
        v_all = x if binary_data else torch.bernoulli(x, generator=g)
        order = torch.randperm(x.shape[0], generator=g, device=dev)
        for i in range(0, x.shape[0], batch_size):
            if step == steps:
                break
            idx = order[i: i + batch_size]
            if len(idx) < batch_size:  # keep batches equal: wrap around the permutation
                idx = torch.cat([idx, order[: batch_size - len(idx)]])
            v = v_all[idx]
            if method == "dsm":
                loss = dsm_loss(rbm, score_model, v, t_eps=t_eps, t_max=t_max,
                                weighting=weighting, n_noise=n_noise, stratified=stratified,
                                reference=v_all if data_target else None, generator=g)
            elif method == "ml":
                loss = ml_loss(rbm, v)
            else:
                start_v = chains if method == "pcd" else v
                neg = rbm.gibbs(start_v, cd_k, generator=g)
                if method == "pcd":
                    chains = neg
                loss = contrastive_loss(rbm, v, neg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if mask is not None:  # project back onto the native graph
                with torch.no_grad():
                    rbm.W.mul_(mask)
            if sched is not None:
                sched.step()
            if avg is not None:
                with torch.no_grad():
                    for p_avg, p in zip(avg.parameters(), rbm.parameters(), strict=True):
                        p_avg.lerp_(p, 1 - ema)
            losses.append(float(loss.detach()))
            step += 1
            bar.update(1)
        last = step == steps
        if epoch % stride == 0 or last:
            record = {"step": step, "epoch": epoch + 1, "loss": sum(losses) / len(losses),
                      "wall_s": time.perf_counter() - start}
            losses = []
            if exact_ok:
                record.update(_exact_record(avg or rbm, x, eval_data, binary_data))
            history.append(record)
            bar.set_postfix({k: f"{v:.3g}" for k, v in record.items() if k in ("loss", "test_ll")})
            if callback is not None:
                callback(record)
        if checkpoint is not None and not last and (epoch + 1) % checkpoint_every == 0:
            _save_checkpoint(checkpoint, {
                "fingerprint": fingerprint, "epoch": epoch, "step": step,
                "theta": [p.detach().clone() for p in rbm.parameters()],
                "avg": [p.clone() for p in avg.parameters()] if avg is not None else None,
                "opt": opt.state_dict(), "sched": sched.state_dict() if sched else None,
                "rng": g.get_state(), "chains": chains, "history": history, "losses": losses,
                "wall_s": time.perf_counter() - start,
            })
        if last:
            break
    bar.close()
    trained = to_device((avg or rbm).detach(), "cpu")  # results leave on the CPU
    trained.meta = {
        **score_model.options(),
        **sde.as_dict(),
        "t_eps": t_eps,
        "t_max": t_max,
        "training": {
            "weighting": weighting, "n_noise": n_noise, "stratified": stratified,
            "lr_schedule": lr_schedule, "ema": ema, "data_target": data_target,
            "method": method, "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed,
            "cd_k": cd_k, "wall_s": time.perf_counter() - start, "device": str(dev),
            # CD/PCD chains: same law with either kernel, not the same stream.  DSM's gibbs_cov
            # m draws its clamped chains with torch (it keeps σ for the Rao-Blackwellised mean)
            "gibbs_kernel": trained.gibbs_kernel() if method in ("cd", "pcd") else "torch"
            if getattr(score_model, "m_method", None) == "gibbs_cov" else None,
            "final_loss": history[-1]["loss"] if history else None,
        },
    }
    return TrainResult(trained, history)


def _fingerprint(config: dict, x: torch.Tensor) -> str:
    """SHA-256 of the training arguments and the data: what a checkpoint must match."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    digest.update(x.detach().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


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
            out["train_ll"] = float((-frozen.free_energy(x)).mean() - log_z)
            if x.shape[1] <= MAX_ENUM_BITS:
                out["kl_data_model"] = kl_data_model(frozen, x)
        if test is not None and is_binary(test):
            test_v = test.to(rbm.dtype)
            out["test_ll"] = float((-frozen.free_energy(test_v)).mean() - log_z)
    return out


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, dynamic_ncols=True)
