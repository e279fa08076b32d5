"""Training quality: does denoising score matching make a good RBM?  (issue 6, §1)

One run trains every method on every task with several seeds and scores each model exactly:

    bas-3x3, bas-4x4:        KL(p_data ‖ p_θ) = Σ_x p_data(x) log p_data(x)/p_θ(x)   (nats, ↓)
    digits-binary (16 hid.): test log-likelihood  (1/N) Σ log p_θ(v_test)            (nats, ↑)

both by enumerating the 2^16 states of the smaller layer (rbmdiff.exact).  Methods: DSM with
the talk's ``free_energy`` score; DSM with the ``posterior`` score and m_θ by K = 1, 10, 50
damped mean-field sweeps or exactly; the variance-reduced DSM variants of this benchmark
(``-vr``); CD-1, PCD, exact maximum likelihood; and scikit-learn's BernoulliRBM (PCD) as a
peer.  Prints a table (mean ± sd over seeds, wall time), writes
``<out>/train_quality.parquet`` (one row per run) and ``<out>/train_quality.png``.

    python benchmarks/train_quality.py            # full run (minutes)
    python benchmarks/train_quality.py --quick    # every row, tiny budgets (< 60 s)
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rbmdiff.data import load_dataset
from rbmdiff.exact import kl_data_model, log_partition
from rbmdiff.rbm import RBM
from rbmdiff.train import RECOMMENDED_DSM, train

RESULTS = Path(__file__).parent / "results"

# The variance-reduced DSM recipe (see BENCHMARKS.md): likelihood weighting = t uniform in
# log-SNR λ = log(α_t² L²/σ_t²), restricted to λ ∈ [-4, 4] where the posterior term lives;
# stratified t; the exact noised-data score as regression target (Rao-Blackwellised over the
# training row); 4 (t, ζ) draws per row; init scale 0.3 (W ≈ 0 is a saddle of the likelihood
# and a noisy gradient does not leave it); cosine learning rate and an EMA of θ.
VR = {"method": "dsm", "score": "posterior", **RECOMMENDED_DSM}


@dataclass(frozen=True)
class Task:
    """One dataset, its RBM size and training budget."""

    data: str
    n_hidden: int
    steps: int
    quick_steps: int
    batch_size: int
    lr: float
    vr_lr: float  # the -vr variants' peak learning rate (cosine-decayed, EMA-averaged)


TASKS = (
    Task("bas-3x3", 9, 1000, 30, 14, 0.05, 0.1),
    Task("bas-4x4", 16, 1000, 15, 30, 0.05, 0.1),
    Task("digits-binary", 16, 2000, 15, 64, 0.01, 0.04),
)


def methods(task: Task) -> dict[str, dict]:
    """Method name -> keyword arguments of rbmdiff.train.train (``sklearn``: the peer)."""
    lr = task.lr
    dsm = {"method": "dsm", "lr": lr}
    out = {
        "dsm-free_energy": {**dsm, "score": "free_energy"},
        "dsm-mf1": {**dsm, "score": "posterior", "m_method": "meanfield", "sweeps": 1},
        "dsm-mf10": {**dsm, "score": "posterior", "m_method": "meanfield", "sweeps": 10},
        "dsm-mf50": {**dsm, "score": "posterior", "m_method": "meanfield", "sweeps": 50},
    }
    if task.data.startswith("bas"):  # exact m costs 2^16 hidden states per row on digits
        out["dsm-exact"] = {**dsm, "score": "posterior", "m_method": "exact"}
        out["dsm-exact-vr"] = {**VR, "lr": task.vr_lr, "m_method": "exact"}
    out["dsm-mf10-vr"] = {**VR, "lr": task.vr_lr, "m_method": "meanfield", "sweeps": 10}
    out.update({
        "cd1": {"method": "cd", "cd_k": 1, "lr": lr},
        "pcd": {"method": "pcd", "cd_k": 1, "lr": lr},
        "pcd5": {"method": "pcd", "cd_k": 5, "lr": lr},
        "ml": {"method": "ml", "lr": lr},
        "sklearn": {"lr": 0.05, "steps_factor": 3},
    })
    return out


def sklearn_rbm(x: torch.Tensor, *, n_hidden: int, steps: int, batch_size: int, lr: float,
                seed: int) -> RBM:
    """scikit-learn's BernoulliRBM (PCD-1, plain SGD at rate ``lr``) with ≈ ``steps`` updates,
    converted to rbmdiff's RBM: W = components_ᵀ (n, m), b = intercept_visible_,
    c = intercept_hidden_."""
    from sklearn.neural_network import BernoulliRBM

    n_iter = max(1, round(steps * batch_size / x.shape[0]))
    peer = BernoulliRBM(n_components=n_hidden, learning_rate=lr, batch_size=batch_size,
                        n_iter=n_iter, random_state=seed)
    peer.fit(x.numpy())
    f = torch.float32
    return RBM(torch.tensor(peer.components_.T, dtype=f),
               torch.tensor(peer.intercept_visible_, dtype=f),
               torch.tensor(peer.intercept_hidden_, dtype=f))


def quality(rbm: RBM, data: str) -> dict[str, float]:
    """Exact metrics: KL(data‖model) on bars-and-stripes; train/test log-likelihood."""
    ds = load_dataset(data)
    with torch.no_grad():
        log_z = log_partition(rbm)
        out = {
            "train_ll": float((-rbm.free_energy(ds.train)).mean()) - log_z,
            "test_ll": float((-rbm.free_energy(ds.test)).mean()) - log_z,
        }
    out["kl"] = kl_data_model(rbm, ds.train) if data.startswith("bas") else math.nan
    return out


def run_one(task: Task, name: str, kw: dict, *, seed: int, quick: bool) -> dict:
    """Train one model and score it.  -> one Parquet row."""
    x = load_dataset(task.data).train
    steps = task.quick_steps if quick else task.steps
    start = time.perf_counter()
    if name == "sklearn":
        # the peer is ~10× cheaper per step: it gets 3× the steps at its best measured rate
        steps = steps * kw["steps_factor"]
        rbm = sklearn_rbm(x, n_hidden=task.n_hidden, steps=steps, batch_size=task.batch_size,
                          lr=kw["lr"], seed=seed)
    else:
        rbm = train(x, n_hidden=task.n_hidden, steps=steps, batch_size=task.batch_size,
                    seed=seed, max_records=1, **kw).rbm
    wall = time.perf_counter() - start
    params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items()}
    return {"data": task.data, "n_hidden": task.n_hidden, "method": name, "seed": seed,
            "steps": steps, "batch_size": task.batch_size, "wall_s": wall,
            **quality(rbm, task.data), "params": repr(params)}


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """Mean ± sd over seeds per (data, method); the headline metric is KL for bars-and-stripes
    and test log-likelihood for digits."""
    df = df.assign(metric=np.where(df["data"].str.startswith("bas"), df["kl"], df["test_ll"]))
    g = df.groupby(["data", "method"], sort=False)
    return g.agg(metric_mean=("metric", "mean"), metric_sd=("metric", "std"),
                 train_ll=("train_ll", "mean"), wall_s=("wall_s", "mean"),
                 seeds=("seed", "count")).reset_index()


def plot(summary: pd.DataFrame, path: Path) -> None:
    """One panel per dataset: headline metric (mean ± sd over seeds) per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(summary["data"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 4.5))
    for ax, data in zip(np.atleast_1d(axes), datasets, strict=True):
        s = summary[summary["data"] == data]
        ax.errorbar(s["metric_mean"], s["method"], xerr=s["metric_sd"].fillna(0), fmt="o",
                    color="tab:blue", capsize=3)
        ax.grid(axis="x", alpha=0.3)
        if data.startswith("bas"):
            ax.set_xscale("log")
            ax.set_xlabel("KL(data ‖ model), nats (lower is better)")
        else:
            ax.set_xlabel("test log-likelihood, nats (higher is better)")
        ax.set_title(data)
        ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny budgets, one seed (< 60 s)")
    ap.add_argument("--seeds", type=int, default=3, help="seeds per method (full mode)")
    ap.add_argument("--data", nargs="*", default=[t.data for t in TASKS], help="tasks to run")
    ap.add_argument("--methods", nargs="*", default=None, help="restrict to these methods")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder for Parquet and PNG")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)
    from tqdm.auto import tqdm

    seeds = [0] if args.quick else list(range(args.seeds))
    jobs = [(task, name, kw, seed) for task in TASKS if task.data in args.data
            for name, kw in methods(task).items() if not args.methods or name in args.methods
            for seed in seeds]
    rows = [run_one(task, name, kw, seed=seed, quick=args.quick)
            for task, name, kw, seed in tqdm(jobs, desc="train_quality", dynamic_ncols=True)]
    df = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    df.to_parquet(args.out / "train_quality.parquet", index=False)
    summary = summarise(df)
    plot(summary, args.out / "train_quality.png")
    with pd.option_context("display.width", 160, "display.max_rows", 200):
        print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return df


if __name__ == "__main__":
    main()
