"""Training quality: does denoising score matching make a good RBM?  (§1)

One run trains every method on every task with several seeds and scores each model exactly:

    bas-3x3, bas-4x4:        KL(p_data ‖ p_θ) = Σ_x p_data(x) log p_data(x)/p_θ(x)   (nats, ↓)
    digits-binary (16 hid.): test log-likelihood  (1/N) Σ log p_θ(v_test)            (nats, ↑)

both by enumerating the 2^16 states of the smaller layer (rbmdiff.exact).  Methods: DSM with
the talk's ``free_energy`` score; DSM with the ``posterior`` score and m_θ by K = 1, 10, 50
damped mean-field sweeps or exactly; the variance-reduced DSM variants of this benchmark
(``-vr``; ``-vr16``: 16 noise draws per row instead of 4; ``w2``: log-SNR window [-2, 2]
instead of [-4, 4]; ``x3``: 3× the steps); CD-1, PCD, exact maximum likelihood; and
scikit-learn's BernoulliRBM (PCD) as a peer.  Prints a table (mean ± sd over seeds, wall
time), writes ``<out>/train_quality.parquet`` (one row per run) and
``<out>/train_quality.png``.

    python benchmarks/train_quality.py            # full run (minutes)
    python benchmarks/train_quality.py --quick    # every row, tiny budgets (< 60 s)
    python benchmarks/train_quality.py --data bas-4x4 --methods dsm-exact-vr16 --merge
    python benchmarks/train_quality.py --ablation   # the DSM variants on bas-4x4 (~1 h)
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
from rbmdiff.exact import kl_data_model, log_partition, mean_log_likelihood
from rbmdiff.rbm import RBM
from rbmdiff.train import RECOMMENDED_DSM, TrainConfig, fit

RESULTS = Path(__file__).parent / "results"

# The variance-reduced DSM recipe (see BENCHMARKS.md): likelihood weighting = t uniform in
# log-SNR λ = log(α_t² L²/σ_t²), restricted to λ ∈ [-4, 4] where the posterior term lives;
# stratified t; the exact noised-data score as regression target (Rao-Blackwellised over the
# training row); 4 (t, ζ) draws per row; init scale 0.3 (W ≈ 0 is a saddle of the likelihood
# and a noisy gradient does not leave it); cosine learning rate and an EMA of θ.
VR = {"method": "dsm", "score": "posterior", **RECOMMENDED_DSM}
# With exact m by visible enumeration, F(v) over the 2^n states is shared by the whole batch,
# so 16 noise draws per row cost little more than 4.
VR16 = {**VR, "n_noise": 16}


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


# Issue 6's search for bas-4x4 KL ≤ 0.1 (``--ablation``): changes to ``dsm-exact-vr`` (4 noise
# draws per row, log-SNR window [-4, 4], init 0.3, peak lr 0.1, the task's steps).
ABLATIONS: dict[str, dict] = {
    "vr": {},
    "vr-nn8-2x": {"n_noise": 8, "steps_factor": 2},
    "vr-3x": {"steps_factor": 3},
    "vr-4x": {"steps_factor": 4},
    "vr-nn16": {"n_noise": 16},
    "vr-nn32": {"n_noise": 32},
    "vr-nn16-3x": {"n_noise": 16, "steps_factor": 3},
    "vr-nn16-init0.5": {"n_noise": 16, "init_scale": 0.5},
    "vr-nn16-init1": {"n_noise": 16, "init_scale": 1.0},
    "vr-nn16-lr0.05": {"n_noise": 16, "lr": 0.05},
    "vr-nn16-lr0.2": {"n_noise": 16, "lr": 0.2},
    "vr-nn16-snr[-4,6]": {"n_noise": 16, "log_snr_range": (-4.0, 6.0)},
    "vr-nn16-snr[-6,4]": {"n_noise": 16, "log_snr_range": (-6.0, 4.0)},
    "vr-nn16-snr[-4,2]": {"n_noise": 16, "log_snr_range": (-4.0, 2.0)},
    "vr-nn16-snr[-3,3]": {"n_noise": 16, "log_snr_range": (-3.0, 3.0)},
    "vr-nn16-snr[-2,2]": {"n_noise": 16, "log_snr_range": (-2.0, 2.0)},
    "vr-nn16-snr[-1,1]": {"n_noise": 16, "log_snr_range": (-1.0, 1.0)},
    "vr-nn16-snr[-2,2]-3x": {"n_noise": 16, "log_snr_range": (-2.0, 2.0), "steps_factor": 3},
}


def ablation_methods(task: Task) -> dict[str, dict]:
    """The ``--ablation`` rows: ``dsm-exact-vr`` with each entry of ABLATIONS applied."""
    base = {**VR, "lr": task.vr_lr, "m_method": "exact"}
    return {name: {**base, **change} for name, change in ABLATIONS.items()}


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
        out["dsm-exact-vr16"] = {**VR16, "lr": task.vr_lr, "m_method": "exact"}
        out["dsm-exact-vr16x3"] = {**out["dsm-exact-vr16"], "steps_factor": 3}
        out["dsm-exact-vr16w2"] = {**out["dsm-exact-vr16"], "log_snr_range": (-2.0, 2.0)}
        out["dsm-exact-vr16w2x3"] = {**out["dsm-exact-vr16w2"], "steps_factor": 3}
    out["dsm-mf10-vr"] = {**VR, "lr": task.vr_lr, "m_method": "meanfield", "sweeps": 10}
    out.update({
        "cd1": {"method": "cd", "cd_k": 1, "lr": lr},
        "pcd": {"method": "pcd", "cd_k": 1, "lr": lr},
        "pcd5": {"method": "pcd", "cd_k": 5, "lr": lr},
        "ml": {"method": "ml", "lr": lr},
        "sklearn": {"lr": 0.05, "steps_factor": 3},
    })  # steps_factor: the method gets that multiple of the task's steps
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
            "train_ll": mean_log_likelihood(rbm, ds.train, log_z),
            "test_ll": mean_log_likelihood(rbm, ds.test, log_z),
        }
    out["kl"] = kl_data_model(rbm, ds.train) if data.startswith("bas") else math.nan
    return out


def run_one(task: Task, name: str, kw: dict, *, seed: int, quick: bool) -> dict:
    """Train one model and score it.  -> one Parquet row."""
    x = load_dataset(task.data).train
    steps = task.quick_steps if quick else task.steps
    # sklearn's peer is ~10× cheaper per step: it gets 3× the steps at its best measured rate
    steps *= kw.get("steps_factor", 1)
    train_kw = {k: v for k, v in kw.items() if k != "steps_factor"}
    start = time.perf_counter()
    if name == "sklearn":
        rbm = sklearn_rbm(x, n_hidden=task.n_hidden, steps=steps, batch_size=task.batch_size,
                          lr=kw["lr"], seed=seed)
    else:
        rbm = fit(x, TrainConfig(n_hidden=task.n_hidden, steps=steps,  # as written
                                 batch_size=task.batch_size, seed=seed, max_records=1,
                                 **train_kw)).rbm
    wall = time.perf_counter() - start
    params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items()}
    return {"data": task.data, "n_hidden": task.n_hidden, "method": name, "seed": seed,
            "steps": steps, "batch_size": task.batch_size, "wall_s": wall,
            **quality(rbm, task.data), "params": repr(params)}


def sort_rows(df: pd.DataFrame, table=None) -> pd.DataFrame:
    """Rows in the order of TASKS, then of the task's method table (others last)."""
    table = table or methods
    rank = {(t.data, name): (k, j) for k, t in enumerate(TASKS)
            for j, name in enumerate(table(t))}
    key = [rank.get((d, m), (len(TASKS), 0)) for d, m in zip(df["data"], df["method"],
                                                                strict=True)]
    return df.iloc[sorted(range(len(df)), key=key.__getitem__)].reset_index(drop=True)


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


COST_SHAPES = ((16, 16, 30), (18, 16, 64), (16, 64, 64), (24, 10, 64), (32, 12, 32))


def cost_model(quick: bool = False) -> pd.DataFrame:
    """One exact-m DSM step (4 noise draws per row, forward and backward) timed per
    (n, m, rows) against rbmdiff.training_defaults.exact_m_cost's estimate."""
    import time

    from rbmdiff.rbm import RBM
    from rbmdiff.score import make_score
    from rbmdiff.sde import VPSDE
    from rbmdiff.train import dsm_loss
    from rbmdiff.training_defaults import exact_m_cost

    score = make_score("posterior", sde=VPSDE(), m_method="exact")
    rows = []
    for n, m, batch in COST_SHAPES[:2] if quick else COST_SHAPES:
        rbm = RBM.random(n, m, scale=0.3, seed=0).requires_grad_()
        v = torch.bernoulli(torch.full((batch, n), 0.5), generator=torch.Generator().manual_seed(0))
        dsm_loss(rbm, score, v, n_noise=4).backward()
        start = time.perf_counter()
        for _ in range(3):
            dsm_loss(rbm, score, v, n_noise=4).backward()
        est = exact_m_cost(n, m, batch, 4, 1)
        rows.append({"n": n, "m": m, "rows": batch * 4,
                     "enumerates": "v" if "visible" in est["how"] else "h",
                     "measured_s": (time.perf_counter() - start) / 3,
                     "estimate_s": est["seconds"]})
    df = pd.DataFrame(rows)
    df["ratio"] = df.measured_s / df.estimate_s
    print(df.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    return df


def main(argv: list[str] | None = None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny budgets, one seed (< 60 s)")
    ap.add_argument("--seeds", type=int, default=3, help="seeds per method (full mode)")
    ap.add_argument("--data", nargs="*", default=[t.data for t in TASKS], help="tasks to run")
    ap.add_argument("--methods", nargs="*", default=None, help="restrict to these methods")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder for Parquet and PNG")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--merge", action="store_true",
                    help="keep the other (data, method) rows of an existing Parquet in --out")
    ap.add_argument("--ablation", action="store_true",
                    help="run the ABLATIONS of dsm-exact-vr instead (default task bas-4x4; "
                         "writes train_quality_ablation.parquet/.png)")
    ap.add_argument("--cost-model", action="store_true",
                    help="only time exact-m DSM steps against training_defaults' estimate")
    args = ap.parse_args(argv)
    if args.cost_model:
        torch.set_num_threads(args.threads)
        return cost_model(args.quick)
    if args.ablation and args.data == [t.data for t in TASKS]:
        args.data = ["bas-4x4"]
    stem = "train_quality_ablation" if args.ablation else "train_quality"
    table = ablation_methods if args.ablation else methods
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)
    from tqdm.auto import tqdm

    seeds = [0] if args.quick else list(range(args.seeds))
    jobs = [(task, name, kw, seed) for task in TASKS if task.data in args.data
            for name, kw in table(task).items() if not args.methods or name in args.methods
            for seed in seeds]
    rows = [run_one(task, name, kw, seed=seed, quick=args.quick)
            for task, name, kw, seed in tqdm(jobs, desc="train_quality", dynamic_ncols=True)]
    df = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{stem}.parquet"
    if args.merge and path.exists():  # replace the re-run (data, method) pairs, keep the rest
        old = pd.read_parquet(path)
        rerun = old.set_index(["data", "method"]).index.isin(
            df.set_index(["data", "method"]).index)
        df = sort_rows(pd.concat([old[~rerun], df], ignore_index=True), table)
    df.to_parquet(path, index=False)
    summary = summarise(df)
    plot(summary, args.out / f"{stem}.png")
    with pd.option_context("display.width", 160, "display.max_rows", 200):
        print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return df


if __name__ == "__main__":
    main()
