"""The defaults of training: one rule, from the measurements in BENCHMARKS.md ("Training defaults").

:func:`options_for` applies it, for :func:`rbmdiff.train.train` called from Python, for
``rbmdiff train`` and for the pipeline's train stage alike: what the caller sets wins, the
rule fills in the rest.

The rule (the same for every data set; it looks only at sizes and cost):

0. The method, where none is given: DSM with the posterior score, unless its m would be
   approximate (2.) on more than ``APPROX_M_MAX_VISIBLE`` = 64 visible units, the largest size
   where approximate (TAP) m was measured competitive (digits, 64 visible: −18.68 against
   CD-1's −18.90); beyond it, **CD-10**, the method measured best at 784 visible units at both
   sizes measured (BENCHMARKS.md "MNIST": 784 × 20, exact test LL −161.0 for CD-10 against
   −1,779.8 for DSM with TAP m; 784 × 500, AIS −130 against −250).  Between 65 and 783 visible
   units CD-10 is the rule's extrapolation, not a measurement.  A DSM-only option (``score``,
   ``m_method``, ``n_noise``, ``sweeps``) or ``recipe="plain"`` implies DSM.
1. DSM with the posterior score uses the variance-reduced recipe ``RECOMMENDED_DSM``.
2. m_θ is computed **exactly where that is cheap**: the whole run's time and memory for exact
   m are estimated on the device it will run on (:func:`exact_m_cost`: enumeration of the
   2^n visible states when the score would enumerate v, of the 2^m hidden states per row and
   noise draw otherwise), and exact m is used when the estimate is ≤ ``EXACT_TIME_BOUND_S``
   and ≤ half the device's memory.  Otherwise m is approximated with ``APPROX_M_METHOD``.
3. Each m regime then takes the settings measured best for it (BENCHMARKS.md "Training defaults"):
   exact m: 16 noise draws per row, log-SNR window [−2, 2], peak lr 0.1, 1,000 steps
   (``dsm-exact-vr16w2``); approximate m: second-order TAP mean-field, 10 damped sweeps,
   4 draws, window [−4, 4], lr 0.04, 6,000 steps (BENCHMARKS.md "Digits gap",
   ``dsm-tap10-x3``).  CD, PCD, ML and the plain DSM recipe: lr 0.01, 2,000 steps (CD-1
   when the method is given without ``cd_k``; CD-10 when the rule picks CD: the
   configuration of BENCHMARKS.md "MNIST"'s CD-10 rows).
   Approximate m's steps are capped so that the run's estimated time
   (:func:`approx_m_seconds_per_step`) is ≤ ``EXACT_TIME_BOUND_S`` as well: at 784 × 500
   (MNIST, ``method="dsm"`` given) that is ~1,500 of the 6,000 steps on one CPU thread.
4. The batch is min(64, the training data's rows); a given batch larger than the rows is
   refused (:func:`rbmdiff.data.check_batch_size`, the one check).

Anything the user passes explicitly wins over the rule; forcing exact m whose estimate is over
the bounds is refused with the estimate (:func:`check_exact_affordable`).
"""

from __future__ import annotations

import os

import torch

from rbmdiff.choices import RECIPES
from rbmdiff.errors import RbmdiffError
from rbmdiff.score import CHUNK_ELEMENTS, VISIBLE_ENUM_BITS

APPROX_M_METHOD = "tap"  # the m used where exact m is too costly
EXACT_TIME_BOUND_S = 600.0  # exact m by default only when the whole run fits in this
MEMORY_FRACTION = 0.5  # ... and its peak memory in this fraction of the machine's
MAX_BATCH = 64

# Seconds per unit of work of one training step (forward and backward, one torch thread,
# float32 model) on a loaded machine, from BENCHMARKS.md "Training defaults: cost model":
SECONDS_PER_FREE_ENERGY = 10e-9  # per visible state and hidden unit: F over the 2^n states
SECONDS_PER_PRODUCT = 1.2e-9  # per visible state and noised row: the factorised sums
SECONDS_PER_HIDDEN_TERM = 40e-9  # per noised row, hidden state and visible unit
# ... and of hidden enumeration on any accelerator, measured on an H200 (2.28 steps/s at 256
# rows × 2^16 × 64, BENCHMARKS.md "GPU figures"): a slower GPU may overrun the time bound.
# The visible-enumeration terms keep the CPU's values there.
SECONDS_PER_HIDDEN_TERM_GPU = 0.42e-9
# Approximate (TAP / mean-field) m: per noised row, visible × hidden unit and sweep, forward
# and backward; 0.39 s per step at 784 × 500, 256 rows, 10 sweeps on one thread of the loaded
# 2-core machine (docs/notes/2026-12-07-mnist.md).  On an accelerator it is scaled by the hidden
# enumeration's measured GPU/CPU ratio (an assumption, not a measurement of TAP on a GPU).
SECONDS_PER_MEAN_FIELD_TERM = 0.39 / (256 * 784 * 500 * 10)

EXACT_SETTINGS = {"n_noise": 16, "log_snr_range": (-2.0, 2.0), "lr": 0.1, "steps": 1000}
APPROX_SETTINGS = {"n_noise": 4, "log_snr_range": (-4.0, 4.0), "lr": 0.04, "steps": 6000,
                   "sweeps": 10}
BASELINE_SETTINGS = {"lr": 0.01, "steps": 2000}
# Beyond this many visible units approximate m is not the default: the method is CD_SETTINGS.
APPROX_M_MAX_VISIBLE = 64  # digits, where TAP m was measured competitive (BENCHMARKS.md)
CD_SETTINGS = {"method": "cd", "cd_k": 10}  # measured best at 784 visible (BENCHMARKS.md "MNIST")
DSM_ONLY_OPTIONS = ("score", "m_method", "n_noise", "sweeps")  # given: the method is DSM


def machine_memory_bytes(device: str | torch.device = "cpu") -> int:
    """Memory of ``device`` (bytes): the machine's, or the GPU's own."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def exact_m_cost(n: int, m: int, batch_size: int, n_noise: int, steps: int,
                 device: str | torch.device = "cpu") -> dict:
    """Estimated time (s) and peak memory (bytes) of a DSM run with exact m.

    Visible enumeration (n ≤ max(m, 12)): F over 2^n states (2^n·m terms, shared by the batch)
    and two factorised products per noised row (2^n per row).  Hidden enumeration: 2^m·n terms
    per noised row, visited in chunks of ``CHUNK_ELEMENTS`` floats (a few buffers of one chunk
    in the backward pass).  -> {"how", "seconds", "bytes", "device"}.
    """
    device = torch.device(device)
    rows = batch_size * n_noise
    if n <= max(m, VISIBLE_ENUM_BITS):
        k = n // 2
        per_step = (SECONDS_PER_FREE_ENERGY * 2**n * m + SECONDS_PER_PRODUCT * 2**n * rows)
        peak = 12 * 2**n * m + 24 * 2**n + 32 * rows * (2**k + 2 ** (n - k))
        how = f"enumerating the 2^{n} visible states"
    else:
        per_term = SECONDS_PER_HIDDEN_TERM if device.type == "cpu" else SECONDS_PER_HIDDEN_TERM_GPU
        per_step = per_term * rows * 2**m * n
        peak = 4 * 8 * min(rows * 2**m * n, CHUNK_ELEMENTS)
        how = f"enumerating 2^{m} hidden states for each of {rows} noised rows"
    return {"how": how, "seconds": per_step * steps, "bytes": peak,
            "device": str(device)}


def approx_m_seconds_per_step(n: int, m: int, rows: int, sweeps: int,
                               device: str | torch.device = "cpu") -> float:
    """Estimated seconds of one DSM step with TAP / mean-field m: rows · n · m · sweeps terms."""
    per_term = SECONDS_PER_MEAN_FIELD_TERM
    if torch.device(device).type != "cpu":
        per_term *= SECONDS_PER_HIDDEN_TERM_GPU / SECONDS_PER_HIDDEN_TERM
    return per_term * rows * n * m * max(sweeps, 1)


def exact_m_affordable(cost: dict) -> bool:
    return (cost["seconds"] <= EXACT_TIME_BOUND_S
            and cost["bytes"] <= MEMORY_FRACTION * machine_memory_bytes(cost["device"]))


def describe(cost: dict) -> str:
    """'~11 h and 13 GiB' style."""
    s = cost["seconds"]
    when = (f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min" if s < 7200
            else f"{s / 3600:.0f} h" if s < 48 * 3600 else f"{s / 86400:.0f} days")
    return f"~{when} and {cost['bytes'] / 2**30:.2g} GiB"


def check_exact_affordable(cost: dict) -> None:
    """Refuse a forced exact m whose estimate is over the time or memory bound."""
    if not exact_m_affordable(cost):
        raise RbmdiffError(
            f"exact m would take {describe(cost)} on {cost['device']} ({cost['how']}; the bound "
            f"is {EXACT_TIME_BOUND_S:.0f} s and {MEMORY_FRACTION:.0%} of its "
            f"{machine_memory_bytes(cost['device']) / 2**30:.0f} GiB); use --m-method "
            f"{APPROX_M_METHOD}"
        )


def choose(
    *, n_visible: int, n_hidden: int, rows: int, method: str | None = None,
    score: str = "posterior", recommended: bool = True, given: dict | None = None,
    device: str | torch.device = "cpu",
) -> dict:
    """Keyword arguments of :func:`rbmdiff.train.train` by the rule above.

    ``method``: the one given, or None: the rule picks it (0.) and the result holds it as
    ``"method"`` (with ``cd_k`` when it is CD).  ``given``: the values the user set
    explicitly (None values are ignored); they are kept, and the rest filled in.  A forced
    ``m_method="exact"`` is refused when unaffordable.
    """
    given = {k: v for k, v in (given or {}).items() if v is not None}
    method = method or given.get("method")
    if method is not None:
        return _choose(n_visible=n_visible, n_hidden=n_hidden, rows=rows, method=method,
                       score=score, recommended=recommended, given=given, device=device)
    dsm = _choose(n_visible=n_visible, n_hidden=n_hidden, rows=rows, method="dsm",
                  score=score, recommended=recommended, given=given, device=device)
    if (dsm.get("m_method") == "exact" or n_visible <= APPROX_M_MAX_VISIBLE or not recommended
            or score != "posterior" or any(k in given for k in DSM_ONLY_OPTIONS)):
        return {"method": "dsm", **dsm}
    return {"method": "cd", **_choose(n_visible=n_visible, n_hidden=n_hidden, rows=rows,
                                      method="cd", score=score, recommended=recommended,
                                      given={**CD_SETTINGS, **given}, device=device)}


def reason(kw: dict, *, n_visible: int, given: dict | None = None,
           recipe: str = "recommended") -> str:
    """Why the rule chose the settings ``kw`` (:func:`options_for`'s) for ``n_visible`` units
    and the options ``given`` (None values count as not given), in one clause."""
    given = {k: v for k, v in (given or {}).items() if v is not None}
    method = kw.get("method", "dsm")
    if "method" in given:
        why = f"--method {method} given"
    elif method == "cd":
        return (f"approximate m was measured competitive up to {APPROX_M_MAX_VISIBLE} visible "
                f"units; at {n_visible} the rule takes CD-{kw.get('cd_k')}, measured best at "
                f"784 visible (BENCHMARKS.md MNIST)")
    else:
        why = "DSM"
    if method != "dsm" or kw.get("score", "posterior") != "posterior" or "m_method" not in kw:
        return why
    if "m_method" in given:
        return f"{why}; m {kw['m_method']} given"
    if kw["m_method"] == "exact":
        return (f"{why}; exact m: its estimated run fits {EXACT_TIME_BOUND_S:.0f} s and half "
                f"the memory")
    capped = (recipe == "recommended" and "steps" not in given
              and kw["steps"] < APPROX_SETTINGS["steps"])
    return (f"{why}; {kw['m_method']} m: exact m's estimated run is over "
            f"{EXACT_TIME_BOUND_S:.0f} s or half the memory"
            + (f"; steps capped to an estimated {EXACT_TIME_BOUND_S:.0f} s" if capped else ""))


def _choose(*, n_visible: int, n_hidden: int, rows: int, method: str, score: str,
            recommended: bool, given: dict, device: str | torch.device) -> dict:
    from rbmdiff.train import RECOMMENDED_DSM

    batch = given.get("batch_size", min(MAX_BATCH, rows))
    if not (method == "dsm" and score == "posterior"):
        return {**BASELINE_SETTINGS, "batch_size": batch, **given}
    kw = dict(RECOMMENDED_DSM) if recommended else {}
    forced = given.get("m_method")
    settings = EXACT_SETTINGS if recommended else BASELINE_SETTINGS
    n_noise = given.get("n_noise", settings.get("n_noise", 1))
    steps = given.get("steps", settings["steps"])
    cost = exact_m_cost(n_visible, n_hidden, batch, n_noise, steps, device)
    if forced == "exact":
        check_exact_affordable(cost)
    m_method = forced or ("exact" if exact_m_affordable(cost) else APPROX_M_METHOD)
    if recommended:
        kw.update(EXACT_SETTINGS if m_method == "exact" else APPROX_SETTINGS)
    else:
        kw.update(BASELINE_SETTINGS)
    kw.update({**given, "batch_size": batch, "m_method": m_method})
    if m_method != "exact" and "steps" not in given:
        per_step = approx_m_seconds_per_step(n_visible, n_hidden, batch * kw.get("n_noise", 1),
                                             kw.get("sweeps", 10), device)
        kw["steps"] = max(1, min(kw["steps"], int(EXACT_TIME_BOUND_S / per_step)))
    return kw


def options_for(x: torch.Tensor, *, recipe: str = "recommended", **options) -> dict:
    """The keyword arguments of :class:`rbmdiff.train.TrainConfig` for training rows x (N, n):
    ``options`` as given, the rest by the rule (:func:`choose`, on x's size and the device the
    run will use).  An option passed as None counts as not given, except where None is a
    setting of its own (``log_snr_range=None``: no window; ``mask``, ``negative``, …).
    ``recipe``: "recommended" (the measured best, as ``rbmdiff train``) or "plain" (DSM with
    the posterior score as docs/math.md §5 writes it; ``rbmdiff train --recipe plain``)."""
    from dataclasses import fields

    from rbmdiff.device import resolve
    from rbmdiff.train import TrainConfig

    if recipe not in RECIPES:
        raise RbmdiffError(f"unknown recipe {recipe!r}; choose one of {RECIPES}")
    if x.ndim != 2:
        raise RbmdiffError(f"training data must be 2-D (rows × units), got shape "
                           f"{tuple(x.shape)}")
    given = {k: v for k, v in options.items() if v is not None}
    if "n_hidden" not in given:
        raise RbmdiffError("n_hidden (the number of hidden units) is required")
    method, score = given.get("method"), given.get("score", "posterior")
    if method is None and recipe == "plain":
        method = "dsm"  # the plain recipe is DSM's
    device = resolve(given.get("device", TrainConfig.device))
    kw = choose(n_visible=x.shape[1], n_hidden=given["n_hidden"], rows=x.shape[0],
                method=method, score=score, recommended=recipe == "recommended", given=given,
                device=device)
    unset = {f.name for f in fields(TrainConfig) if f.default is None}
    kw.update({k: None for k, v in options.items() if v is None and k in unset})
    return kw


def recipe_used(kw: dict, recipe: str) -> str:
    """The recipe the model's meta records: "recommended" only where it applied (DSM with the
    posterior score), else "plain"."""
    applied = kw.get("method", "dsm") == "dsm" and kw.get("score", "posterior") == "posterior"
    return "recommended" if recipe == "recommended" and applied else "plain"


def summary(kw: dict, why: str | None = None) -> str:
    """One line naming the chosen settings and the rule's reason ``why`` (the CLI's stderr)."""
    keys = ("method", "cd_k", "m_method", "lr", "steps", "batch_size", "n_noise",
            "log_snr_range")
    cd = kw.get("method") in ("cd", "pcd")
    line = ", ".join(f"{k}={kw[k]}" for k in keys
                     if k in kw and (cd or k != "cd_k") and not (cd and k == "m_method"))
    return f"{line} (why: {why})" if why else line
