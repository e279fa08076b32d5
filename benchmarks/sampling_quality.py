"""Sampling: quality against cost for every sampler on three trained RBMs  (§2).

One model of each size is trained once (fixed seed, cached in ``<out>/sampling_quality_models``):

    bas-4x4, 16 hidden         exact maximum likelihood (KL(data ‖ model) ≈ 0.01 nats)
    digits-binary, 16 hidden   DSM, posterior score, 10 mean-field sweeps, RECOMMENDED_DSM
    digits-binary, 64 hidden   the same recipe

and sampled by ``sde`` (N Euler–Maruyama steps), ``ode`` (N Heun steps of the probability
flow), ``gibbs`` (k sweeps from v ~ Bernoulli(½)), ``anneal`` (simulated annealing from β = 0.1
to 1) and ``qpu`` (MockDWaveSampler, its defaults), always ``num_samples`` samples per run.

Quality, against a *perfect* sample of the model (``ref``) and against held-out data (``data``):

    tv          ½ Σ_v |p̂(v) − p_θ(v)|, exact law by enumeration       (n ≤ 20: bas-4x4)
    tv_data     ½ Σ_v |p̂(v) − p_data(v)|, the data's empirical law      (n ≤ 20)
    mmd         unbiased MMD² with the Hamming kernel (rbmdiff.metrics.mmd_hamming)
    corr_rmse   RMSE of the pairwise correlations (rbmdiff.metrics.corr_rmse)

The reference sample is exact i.i.d. draws where the law can be enumerated (all 2^16 visible
states of bas-4x4; the 2^16 hidden states of the 16-hidden digits model, v ~ p(v | h)) and a
long block-Gibbs run started at the training data otherwise (64 hidden).  Each metric's floor
is what an independent perfect sample of the same size scores (mean and sd over a few draws).

Cost: wall time at one torch thread, and multiply-adds per sample (``macs``): 2nm per Gibbs
sweep; per score evaluation (N + 1 for the SDE, 2N for Heun: Euler last) 2nm per mean-field sweep,
or ≈ 2·2^n + 2^n·n·m / batch for exact m by (factorised) visible enumeration; nm per
annealing sweep (≈ the couplings); n/a for the QPU.  Prints the table and, per model, where
Gibbs (and the ODE, annealing) reach the quality of the longest SDE; writes
``<out>/sampling_quality.parquet`` (one row per model × sampler × setting) and
``<out>/sampling_quality.png``.

    python benchmarks/sampling_quality.py            # full run (~9 min, + 3 min training)
    python benchmarks/sampling_quality.py --quick    # tiny budgets (< 60 s)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from rbmdiff import samplers
from rbmdiff.data import load_dataset
from rbmdiff.exact import (
    EXACT_LAW_BITS,
    empirical_law,
    kl_data_model,
    log_partition,
    total_variation,
    visible_law,
)
from rbmdiff.metrics import corr_rmse, mmd_hamming
from rbmdiff.rbm import RBM
from rbmdiff.reference import exact_draws, long_gibbs
from rbmdiff.score import VISIBLE_ENUM_BITS
from rbmdiff.train import RECOMMENDED_DSM, TrainConfig, fit

RESULTS = Path(__file__).parent / "results"
MODEL_DIR = "sampling_quality_models"
FLOOR_DRAWS = 5  # independent perfect samples behind each floor (mean and sd)
REF_SIZE = 10_000  # rows of the reference sample (MMD uses 2,000 of them, see metrics.py)


@dataclass(frozen=True)
class Model:
    """A trained RBM to sample: its data, size and training keywords (rbmdiff.train.train)."""

    name: str
    data: str
    n_hidden: int
    train_kw: dict = field(hash=False)
    quick_steps: int = 15


VR_DIGITS = {"method": "dsm", "score": "posterior", **RECOMMENDED_DSM, "m_method": "meanfield",
             "sweeps": 10, "lr": 0.04, "steps": 2000, "batch_size": 64}
MODELS = (
    Model("bas-4x4/16", "bas-4x4", 16,
          {"method": "ml", "lr": 0.05, "steps": 1000, "batch_size": 30}),
    Model("digits/16", "digits-binary", 16, VR_DIGITS),
    Model("digits/64", "digits-binary", 64, VR_DIGITS),
)

# sampler -> (the parameter that sets its budget, full grid, quick grid)
GRIDS = {
    "sde": ("steps", (10, 30, 100, 300, 1000), (10,)),
    "ode": ("steps", (5, 10, 20, 50), (5,)),
    "gibbs": ("num_sweeps", (1, 3, 10, 30, 100, 300, 1000, 3000), (1, 10)),
    "anneal": ("num_sweeps", (10, 100, 1000), (10,)),
    "qpu": ("mock_sweeps", (1000,), (20,)),
}
QPU_QUICK = {"calibration_reads": 100, "num_bootstrap": 10}  # --quick only; full: defaults


# -- models ----------------------------------------------------------------------------------
def trained_model(model: Model, *, quick: bool, folder: Path) -> RBM:
    """Train once with seed 0, or reuse the file cached under the training keywords' hash."""
    kw = {**model.train_kw, "n_hidden": model.n_hidden, "seed": 0}
    if quick:
        kw["steps"] = model.quick_steps
    key = hashlib.sha256(json.dumps({"data": model.data, **kw}, sort_keys=True,
                                    default=list).encode()).hexdigest()[:12]
    path = folder / f"{model.name.replace('/', '-')}-{key}.pt"
    if path.is_file():
        return RBM.load(path)
    x = load_dataset(model.data).train
    rbm = fit(x, TrainConfig(max_records=1, **kw)).rbm  # every setting as written
    rbm.meta["benchmark_train_kw"] = {k: list(v) if isinstance(v, tuple) else v
                                      for k, v in kw.items()}
    folder.mkdir(parents=True, exist_ok=True)
    rbm.save(path)
    return rbm


def model_quality(rbm: RBM, model: Model) -> dict:
    """Exact test log-likelihood (min(n, m) ≤ 20) and KL(data ‖ model) on bars-and-stripes."""
    ds = load_dataset(model.data)
    out = {"model_test_ll": math.nan, "model_kl": math.nan}
    if min(rbm.n_visible, rbm.n_hidden) <= EXACT_LAW_BITS:
        with torch.no_grad():
            out["model_test_ll"] = float((-rbm.free_energy(ds.test)).mean()) - log_partition(rbm)
        if model.data.startswith("bas"):
            out["model_kl"] = kl_data_model(rbm, ds.train)
    return out


# -- perfect samples ----------------------------------------------------------------------------
def perfect_sampler(rbm: RBM, model: Model, *, quick: bool):
    """(draw(num, seed) -> (num, n), description): exact where enumerable, else long Gibbs."""
    if min(rbm.n_visible, rbm.n_hidden) <= EXACT_LAW_BITS:
        return (lambda num, seed: exact_draws(rbm, num, seed=seed)), "exact i.i.d. draws"
    burn_in = 200 if quick else 2000
    x = load_dataset(model.data).train

    def draw(num: int, seed: int) -> torch.Tensor:
        return long_gibbs(rbm, num, seed=seed, init_data=x, burn_in=burn_in)

    return draw, f"block Gibbs from training rows, {burn_in} sweeps, 500 chains thinned by 20"


# -- quality and cost -----------------------------------------------------------------------------
def quality(v: torch.Tensor, *, law: torch.Tensor | None, ref: torch.Tensor,
            test: torch.Tensor) -> dict[str, float]:
    """TV to the model's exact law and to the data's empirical law (n ≤ 20), MMD² and
    correlation RMSE against the perfect sample ``ref`` and against held-out ``test``."""
    small = law is not None
    return {
        "tv": total_variation(empirical_law(v), law) if small else math.nan,
        "tv_data": total_variation(empirical_law(v), empirical_law(test)) if small else math.nan,
        "mmd_data": mmd_hamming(v, test), "mmd_ref": mmd_hamming(v, ref),
        "corr_rmse_data": corr_rmse(v, test), "corr_rmse_ref": corr_rmse(v, ref),
    }


def score_macs(rbm: RBM, *, m_method: str, sweeps: int, batch_size: int) -> float:
    """Multiply-adds of one posterior-score evaluation for one sample (rbmdiff.score):
    mean-field m: K sweeps of σ(c + Wᵀμ), σ(b + u + Wh): 2nmK;
    exact m by visible enumeration (n ≤ max(m, 12)), factorised over v = (v', v''), k = ⌊n/2⌋:
    (B × 2^k)(2^k × 2^{n-k}) products both ways, 2·2^n, the fields u'ᵀv', u''ᵀv'' and the means,
    2·(2^k k + 2^{n-k}(n-k)), plus F(v) of the 2^n states (2^n·n·m) shared by the batch;
    exact m by hidden enumeration: the (B, 2^m, n) posterior mean, 2^m·n, plus Wh of the 2^m
    states (2^m·n·m) shared by the batch."""
    n, m = rbm.n_visible, rbm.n_hidden
    if m_method == "meanfield":
        return 2 * n * m * sweeps
    if n <= max(m, VISIBLE_ENUM_BITS):
        k = n // 2
        return 2 * 2**n + 2 * (2**k * k + 2 ** (n - k) * (n - k)) + 2**n * n * m / batch_size
    return 2**m * n + 2**m * n * m / batch_size


def macs_per_sample(name: str, info: dict, rbm: RBM, params: dict) -> float:
    """Multiply-adds per returned sample (NaN for the QPU, whose work is not multiply-adds)."""
    n, m = rbm.n_visible, rbm.n_hidden
    if name == "gibbs":
        return 2 * n * m * info["chain_sweeps"] / info["num_samples"]
    if name in ("sde", "ode"):  # cost_units = score evaluations per sample
        return info["cost_units"] * score_macs(rbm, m_method=info["m_method"],
                                               sweeps=params["sweeps"],
                                               batch_size=params["batch_size"])
    if name == "anneal":  # an accepted flip updates its neighbours' fields: ≈ nm per sweep
        return n * m * params["num_sweeps"]
    return math.nan


def sampler_params(name: str, setting: int, model: Model, *, quick: bool,
                   folder: Path) -> dict:
    """The exact keyword arguments of samplers.get(name, ...) for one run."""
    key = GRIDS[name][0]
    if name in ("sde", "ode"):
        m_method = "exact" if model.data.startswith("bas") else "meanfield"
        return {key: setting, "m_method": m_method, "sweeps": 10, "batch_size": 256,
                "threads": 1}
    if name == "gibbs":
        return {key: setting, "init": "random", "threads": 1}
    if name == "anneal":
        return {key: setting, "beta_start": 0.1, "beta": 1.0}
    return {key: setting, "mock": True, "embedding_dir": str(folder / "embeddings"),
            **(QPU_QUICK if quick else {})}


# -- one model ----------------------------------------------------------------------------------
def run_model(model: Model, *, num_samples: int, quick: bool, folder: Path,
              samplers_wanted: list[str]) -> list[dict]:
    """Train (or load) the model, draw its perfect samples and floors, run every sampler."""
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    rbm = trained_model(model, quick=quick, folder=folder)
    ds = load_dataset(model.data)
    law = visible_law(rbm)[1] if rbm.n_visible <= EXACT_LAW_BITS else None
    draw, ref_method = perfect_sampler(rbm, model, quick=quick)
    ref = draw(REF_SIZE if not quick else 2000, 1_000)
    floors = pd.DataFrame([quality(draw(num_samples, 2_000 + k), law=law, ref=ref, test=ds.test)
                           for k in range(FLOOR_DRAWS)])
    check = {"ref_check_mmd": math.nan, "ref_check_corr_rmse": math.nan}
    if rbm.n_visible > EXACT_LAW_BITS and rbm.n_hidden <= EXACT_LAW_BITS:
        # the long-Gibbs reference used for 64 hidden, checked where exact draws exist
        gibbs_ref = long_gibbs(rbm, num_samples, seed=3_000, init_data=ds.train,
                               burn_in=200 if quick else 2000)
        check = {"ref_check_mmd": mmd_hamming(gibbs_ref, ref),
                 "ref_check_corr_rmse": corr_rmse(gibbs_ref, ref)}
    common = {
        "model": model.name, "data": model.data, "n_visible": rbm.n_visible,
        "n_hidden": rbm.n_hidden, "train_params": json.dumps(
            rbm.meta.get("benchmark_train_kw", {}), sort_keys=True),
        "train_wall_s": rbm.meta.get("training", {}).get("wall_s", math.nan),
        **model_quality(rbm, model), "ref_method": ref_method, **check,
        **{f"{k}_floor": floors[k].mean() for k in floors},
        **{f"{k}_floor_sd": floors[k].std() for k in floors},
    }
    setup_s = time.perf_counter() - t0
    jobs = [(name, s) for name in samplers_wanted
            for s in GRIDS[name][2 if quick else 1]]
    for name in dict.fromkeys(n for n, _ in jobs if n != "qpu"):  # warm-up, untimed
        smallest = GRIDS[name][2][0]
        samplers.get(name, **sampler_params(name, smallest, model, quick=quick, folder=folder)
                     ).sample(rbm, 8, seed=0)
    rows = []
    for name, setting in tqdm(jobs, desc=model.name, dynamic_ncols=True, leave=False):
        params = sampler_params(name, setting, model, quick=quick, folder=folder)
        row = {**common, "sampler": name, "setting_name": GRIDS[name][0], "setting": setting,
               "num_samples": num_samples, "params": json.dumps(params, sort_keys=True),
               "setup_s": setup_s}
        out = samplers.get(name, **params).sample(rbm, num_samples, seed=0)
        info = out.info
        row.update(wall_s=info["wall_s"], wall_us_per_sample=1e6 * info["wall_s"] / num_samples,
                   cost_units=info["cost_units"], cost_unit=info["cost_unit"],
                   macs=macs_per_sample(name, info, rbm, params),
                   **quality(out.v, law=law, ref=ref, test=ds.test))
        if name == "qpu":
            row.update(beta_eff=info["beta_eff"], beta_model=info["beta_model"],
                       chain_break_fraction=info["chain_break_fraction"],
                       num_qubits=info["num_qubits"], chain_length_max=info["chain_length_max"],
                       clipped=info["clipped"], mock_qpu_access_us=info["qpu_access_time"])
        rows.append(row)
    return rows


# -- summary ------------------------------------------------------------------------------------
def headline(data: str) -> str:
    """The quality column each model is judged by: exact TV where n ≤ 20, else MMD² to ref."""
    return "tv" if data.startswith("bas") else "mmd_ref"


def data_headline(data: str) -> str:
    """The quality column against held-out data: TV to the data's law where n ≤ 20, else MMD²."""
    return "tv_data" if data.startswith("bas") else "mmd_data"


def reaches_sde(df: pd.DataFrame, sampler: str = "gibbs", *,
                every_metric: bool = True) -> list[str]:
    """Per model and metric: the smallest setting of ``sampler`` whose quality is within 2
    perfect-sample sd of the SDE with the most steps, and the cost ratios at that setting.
    every_metric: the model-law, data and correlation metrics; else the model-law one only."""
    lines = []
    for model, g in df.groupby("model", sort=False):
        sde = g[g["sampler"] == "sde"]
        other = g[g["sampler"] == sampler].sort_values("setting")
        if sde.empty or other.empty:
            continue
        best = sde.loc[sde["setting"].idxmax()]
        data = best["data"]
        metrics = (headline(data), data_headline(data), "corr_rmse_ref")
        for metric in metrics if every_metric else metrics[:1]:
            target = best[metric] + 2 * best[f"{metric}_floor_sd"]
            hit = other[other[metric] <= target]
            name = other["setting_name"].iloc[0]
            head = (f"{model} [{metric}]: SDE N = {int(best['setting'])}: {best[metric]:.4g} "
                    f"(perfect sample {best[f'{metric}_floor']:.4g} ± "
                    f"{best[f'{metric}_floor_sd']:.2g}); {sampler}")
            if hit.empty:
                lines.append(f"{head} does not reach it by {name} = "
                             f"{int(other['setting'].max())} ({other[metric].iloc[-1]:.4g})")
                continue
            k = hit.iloc[0]
            lines.append(f"{head} reaches it at {name} = {int(k['setting'])} ({k[metric]:.4g}): "
                         f"{best['macs'] / k['macs']:.3g}× fewer multiply-adds, "
                         f"{best['wall_s'] / k['wall_s']:.3g}× less wall time")
    return lines


MARKERS = {"sde": "o", "ode": "s", "gibbs": "^", "anneal": "D", "qpu": "*"}


LABELS = {"tv": "TV to the model's exact law", "mmd_ref": "MMD² to a perfect sample",
          "tv_data": "TV to the data's law", "mmd_data": "MMD² to held-out data"}


def plot(df: pd.DataFrame, path: Path) -> None:
    """One column per model, one line per sampler (labels: N, k or sweeps): quality against the
    model's law per multiply-add (top) and per wall µs (middle), quality against held-out data
    per wall µs (bottom).  Dashed: a perfect sample's mean + 2 sd; points below sd/2 are drawn
    at sd/2 (unbiased MMD² dips below 0 at the floor)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(df["model"]))
    panels = [(headline, "macs", "multiply-adds per sample"),
              (headline, "wall_us_per_sample", "wall µs per sample (1 thread)"),
              (data_headline, "wall_us_per_sample", "wall µs per sample (1 thread)")]
    fig, axes = plt.subplots(len(panels), len(models), figsize=(4.6 * len(models), 10.5),
                             squeeze=False)
    for col, model in enumerate(models):
        g = df[df["model"] == model]
        for row, (which, xcol, xlabel) in enumerate(panels):
            ax, metric = axes[row, col], which(g["data"].iloc[0])
            floor, sd = g[f"{metric}_floor"].iloc[0], g[f"{metric}_floor_sd"].iloc[0]
            low = max(sd / 2, 1e-7)
            for name, s in g.groupby("sampler", sort=False):
                s = s[s[xcol].notna()].sort_values("setting")
                y = s[metric].clip(lower=low)
                if len(s):
                    ax.plot(s[xcol], y, marker=MARKERS.get(name, "."), label=name)
                for x, yk, k in zip(s[xcol], y, s["setting"], strict=True):
                    ax.annotate(str(int(k)), (x, yk), fontsize=6, xytext=(2, 2),
                                textcoords="offset points")
            ax.axhline(max(floor + 2 * sd, low), ls="--", color="grey", lw=1,
                       label="perfect sample")
            ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel=LABELS[metric])
            ax.grid(alpha=0.3, which="both")
            if row == 0:
                ax.set_title(model)
            if col == 0 and row < 2:
                ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny budgets (< 60 s)")
    ap.add_argument("--num-samples", type=int, default=None,
                    help="samples per run (default 2,000; quick 200)")
    ap.add_argument("--models", nargs="*", default=[m.name for m in MODELS],
                    help="models to run")
    ap.add_argument("--samplers", nargs="*", default=list(GRIDS), help="samplers to run")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder for Parquet and PNG")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)
    start = time.perf_counter()
    num_samples = args.num_samples or (200 if args.quick else 2000)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for model in MODELS:
        if model.name in args.models:
            rows += run_model(model, num_samples=num_samples, quick=args.quick,
                              folder=args.out / MODEL_DIR, samplers_wanted=args.samplers)
    df = pd.DataFrame(rows)
    df.to_parquet(args.out / "sampling_quality.parquet", index=False)
    plot(df, args.out / "sampling_quality.png")
    cols = ["model", "sampler", "setting", "wall_s", "macs", "tv", "tv_data", "mmd_data",
            "mmd_ref", "corr_rmse_data", "corr_rmse_ref"]
    floors = ["model", "model_test_ll", "model_kl", *(f"{k}_floor" for k in (
        "tv", "tv_data", "mmd_data", "mmd_ref", "corr_rmse_data", "corr_rmse_ref")),
        "ref_check_mmd"]
    with pd.option_context("display.width", 200, "display.max_rows", 200):
        print(df[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        print(df[floors].drop_duplicates("model").to_string(
            index=False, float_format=lambda v: f"{v:.4g}"))
    print("\n".join(reaches_sde(df, "gibbs")))
    for other in ("ode", "anneal"):
        print("\n".join(reaches_sde(df, other, every_metric=False)))
    print(f"total wall time {time.perf_counter() - start:.0f} s")
    return df


if __name__ == "__main__":
    main()
