"""Bigger models, sampling: ``gibbs`` against 1,000 reverse-SDE steps at 64 and 100
hidden units on digits-binary.

One DSM-TAP model per size (bigger_models.py's ``dsm-tap10`` recipe, 2,000 steps, seed 0,
cached in ``<out>/bigger_sampling_models``) is sampled by ``gibbs`` (k sweeps from
v ~ Bernoulli(½)) and ``sde`` (N Euler–Maruyama steps, TAP m), seed 0.  Each run is scored
against held-out test data by rbmdiff.metrics.sample_record (MMD² with the Hamming kernel,
corr_rmse, mean_abs_err) and, model-side, by MMD² to a long block-Gibbs run of the model
(``mmd_ref``: from training rows, REF_SWEEPS sweeps, 500 chains thinned by 20).  The row
``ref-floor`` is a second, independent long-Gibbs run scored the same way.

    python benchmarks/bigger_sampling.py            # 64 and 100 hidden
    python benchmarks/bigger_sampling.py --quick    # tiny budgets (< 60 s)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import pandas as pd
import torch

from rbmdiff import samplers
from rbmdiff.data import load_dataset
from rbmdiff.metrics import mmd_hamming, sample_record
from rbmdiff.rbm import RBM
from rbmdiff.samplers import Samples
from rbmdiff.train import TrainConfig, fit

sys.path.insert(0, str(Path(__file__).parent))
from bigger_models import BATCH, RUNS

RESULTS = Path(__file__).parent / "results"
RECIPE = "dsm-tap10"
REF_SWEEPS = 3000
# (sampler, budget) -> keyword arguments of samplers.get
FULL = [("gibbs", 10), ("gibbs", 100), ("gibbs", 1000), ("sde", 1000)]
QUICK = [("gibbs", 1), ("gibbs", 10), ("sde", 10)]


def trained(n_hidden: int, *, steps: int, folder: Path) -> RBM:
    """Train the recipe once with seed 0, or load it from the cache keyed by its arguments."""
    kw = {**RUNS[RECIPE], "n_hidden": n_hidden, "steps": steps, "batch_size": BATCH, "seed": 0}
    key = hashlib.sha256(json.dumps(kw, sort_keys=True, default=list).encode()).hexdigest()[:12]
    path = folder / f"digits-{n_hidden}-{key}.pt"
    if path.is_file():
        return RBM.load(path)
    # every setting as written (train() would fill unset ones by the CLI's rule)
    rbm = fit(load_dataset("digits-binary").train, TrainConfig(max_records=1, **kw)).rbm
    folder.mkdir(parents=True, exist_ok=True)
    rbm.save(path)
    return rbm


def params(name: str, budget: int) -> dict:
    if name == "gibbs":
        return {"num_sweeps": budget, "init": "random", "threads": 1}
    return {"steps": budget, "m_method": "tap", "sweeps": 10, "batch_size": 256, "threads": 1}


def long_gibbs(rbm: RBM, num: int, *, seed: int, sweeps: int, init: torch.Tensor) -> Samples:
    """Block Gibbs from training rows: ``sweeps`` burn-in, then every 20th state of 500 chains."""
    sampler = samplers.get("gibbs", num_sweeps=sweeps, init="data", init_data=init,
                           num_chains=min(500, num), thin=20, threads=1)
    return sampler.sample(rbm, num, seed=seed)


def run_size(n_hidden: int, *, quick: bool, num_samples: int, steps: int,
             folder: Path) -> list[dict]:
    """Train (or load) one model, draw its reference, score every sampler run against both."""
    rbm = trained(n_hidden, steps=steps, folder=folder)
    ds = load_dataset("digits-binary")
    sweeps = 50 if quick else REF_SWEEPS
    ref = long_gibbs(rbm, num_samples, seed=1_000, sweeps=sweeps, init=ds.train).v
    floor = long_gibbs(rbm, num_samples, seed=2_000, sweeps=sweeps, init=ds.train)
    runs = [("ref-floor", sweeps, floor)]
    for name, budget in QUICK if quick else FULL:
        runs.append((name, budget, samplers.get(name, **params(name, budget)).sample(
            rbm, num_samples, seed=0)))
    rows = []
    for name, budget, out in runs:
        rec = sample_record(out, rbm, ds.test)
        rows.append({"n_hidden": n_hidden, "sampler": name, "budget": budget,
                     "num_samples": rec["num_samples"], "wall_s": rec["wall_s"],
                     "mmd_data": rec["mmd"], "corr_rmse": rec["corr_rmse"],
                     "mean_abs_err": rec["mean_abs_err"], "mmd_ref": mmd_hamming(out.v, ref),
                     "ref_sweeps": sweeps, "train_steps": steps})
        r = rows[-1]
        print(f"{n_hidden} {name} {budget}: mmd_data {r['mmd_data']:.4g} mmd_ref "
              f"{r['mmd_ref']:.4g} ({r['wall_s']:.1f} s)", flush=True)
    return rows


def markdown(df: pd.DataFrame) -> str:
    lines = ["| hidden | sampler | budget | MMD² to test | corr_rmse | mean_abs_err "
             "| MMD² to long Gibbs | wall s |", "|---|---|---|---|---|---|---|---|"]
    for r in df.itertuples():
        unit = "sweeps" if r.sampler != "sde" else "steps"
        lines.append(f"| {r.n_hidden} | {r.sampler} | {r.budget} {unit} | {r.mmd_data:.4f} "
                     f"| {r.corr_rmse:.4f} | {r.mean_abs_err:.4f} | {r.mmd_ref:.4f} "
                     f"| {r.wall_s:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny budgets (< 60 s)")
    p.add_argument("--hidden", nargs="+", type=int, default=[64, 100])
    p.add_argument("--num-samples", type=int, default=None, help="default 2,000; quick 200")
    p.add_argument("--steps", type=int, default=2000, help="training steps")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    num = args.num_samples or (200 if args.quick else 2000)
    steps = 15 if args.quick else args.steps
    rows = []
    for m in args.hidden:
        rows += run_size(m, quick=args.quick, num_samples=num, steps=steps,
                         folder=args.out / "bigger_sampling_models")
    df = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    df.to_parquet(args.out / "bigger_sampling.parquet", index=False)
    print(markdown(df))
    return df


if __name__ == "__main__":
    main()
