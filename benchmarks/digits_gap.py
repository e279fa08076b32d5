"""The digits gap: which score-matching variant matches exact ML on digits-binary?

digits-binary (docs/design.md §8 split), 16 hidden units, exact test log-likelihood
(1/N) Σ log p_θ(v) by enumerating the 2^16 hidden states; mean ± sd over seeds.  Rows: exact
ML and CD-1 (the baselines of BENCHMARKS §1), DSM with the variance-reduced recipe
(RECOMMENDED_DSM) and m_θ by 10 mean-field sweeps, by 10 TAP sweeps, and variants of the TAP
recipe (steps, log-SNR window).  Exact m by chunked hidden enumeration is timed (s/step, peak
memory), not trained: see ``--exact-steps``.

    python benchmarks/digits_gap.py                         # every row, 3 seeds
    python benchmarks/digits_gap.py --methods dsm-tap10 cd1 --seeds 0 1 2
    python benchmarks/digits_gap.py --quick                 # every row, tiny budgets (< 60 s)
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import pandas as pd
import torch

from rbmdiff.data import load_dataset
from rbmdiff.exact import log_partition
from rbmdiff.rbm import RBM
from rbmdiff.score import PosteriorScore
from rbmdiff.sde import VPSDE
from rbmdiff.train import RECOMMENDED_DSM, TrainConfig, dsm_loss, fit, init_rbm

RESULTS = Path(__file__).parent / "results"
N_HIDDEN, BATCH, STEPS = 16, 64, 2000
VR = {"method": "dsm", "score": "posterior", **RECOMMENDED_DSM, "lr": 0.04}

# name -> TrainConfig fields, every setting as written (``steps`` defaults to STEPS).
METHODS: dict[str, dict] = {
    "ml": {"method": "ml", "lr": 0.01},
    "cd1": {"method": "cd", "lr": 0.01},
    "dsm-mf10": {**VR, "m_method": "meanfield", "sweeps": 10},
    "dsm-tap10": {**VR, "m_method": "tap", "sweeps": 10},
    "dsm-tap10-w2": {**VR, "m_method": "tap", "sweeps": 10, "log_snr_range": (-2.0, 2.0)},
    "dsm-tap10-x3": {**VR, "m_method": "tap", "sweeps": 10, "steps": 3 * STEPS},
    "dsm-tap10-w2-x3": {**VR, "m_method": "tap", "sweeps": 10, "log_snr_range": (-2.0, 2.0),
                        "steps": 3 * STEPS},
    "dsm-tap10-x5": {**VR, "m_method": "tap", "sweeps": 10, "steps": 5 * STEPS},
}
CPU_DEFAULT = "dsm-tap10-x3"  # what `rbmdiff train` uses on a CPU where exact m is costly


def test_log_likelihood(rbm: RBM, test: torch.Tensor) -> float:
    """(1/N) Σ log p_θ(v) = -mean F(v) - log Z, exactly."""
    with torch.no_grad():
        return float(-rbm.free_energy(test.to(rbm.dtype)).mean()) - log_partition(rbm)


def run_one(name: str, *, seed: int, quick: bool) -> dict:
    data = load_dataset("digits-binary")
    kw = dict(METHODS[name])
    steps = 15 if quick else kw.pop("steps", STEPS)
    kw.pop("steps", None)
    start = time.perf_counter()
    result = fit(data.train, TrainConfig(n_hidden=N_HIDDEN, steps=steps, batch_size=BATCH,
                                         seed=seed, **kw))
    wall = time.perf_counter() - start
    return {"method": name, "seed": seed, "steps": steps, "wall_s": wall,
            "s_per_step": wall / steps, "test_ll": test_log_likelihood(result.rbm, data.test),
            "params": repr({**kw, "steps": steps, "batch_size": BATCH})}


def time_exact_m(steps: int, *, rows: int = BATCH, n_noise: int = 4) -> dict:
    """Seconds per DSM step and peak-RSS growth with exact m (chunked hidden enumeration) at
    the recipe's batch (``rows`` × ``n_noise`` draws), from a model at init scale 0.3."""
    data = load_dataset("digits-binary")
    x = data.train.to(torch.float32)
    rbm = init_rbm(x, N_HIDDEN, seed=0, scale=0.3).requires_grad_()
    score = PosteriorScore(sde=VPSDE(0.1, 20.0), m_method="exact")
    g = torch.Generator().manual_seed(0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    for _ in range(steps):
        loss = dsm_loss(rbm, score, x[:rows], weighting="likelihood", n_noise=n_noise,
                        stratified=True, generator=g)
        loss.backward()
    wall = time.perf_counter() - start
    growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    return {"method": f"dsm-exact (timing, {rows}×{n_noise} rows)", "seed": 0, "steps": steps,
            "wall_s": wall, "s_per_step": wall / steps, "test_ll": float("nan"),
            "peak_rss_growth_mib": growth, "params": "m_method='exact' (hidden chunks)"}


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    order = {name: i for i, name in enumerate(METHODS)}
    out = df.groupby("method", sort=False).agg(
        test_ll_mean=("test_ll", "mean"), test_ll_sd=("test_ll", "std"),
        test_ll_min=("test_ll", "min"), test_ll_max=("test_ll", "max"),
        s_per_step=("s_per_step", "mean"), wall_s=("wall_s", "mean"), steps=("steps", "first"),
        seeds=("seed", "count")).reset_index()
    return out.sort_values("method", key=lambda s: s.map(lambda m: order.get(m, len(order))))


def markdown(summary: pd.DataFrame) -> str:
    lines = ["| method | test log-lik (nats), mean ± sd | min … max | s / step | wall s / run "
             "| steps | seeds |", "|---|---|---|---|---|---|---|"]
    for r in summary.itertuples():
        ll = ("—" if pd.isna(r.test_ll_mean) else f"{r.test_ll_mean:.3f} ± {r.test_ll_sd:.3f}"
              if r.seeds > 1 else f"{r.test_ll_mean:.3f}")
        span = "—" if pd.isna(r.test_ll_mean) else f"{r.test_ll_min:.3f} … {r.test_ll_max:.3f}"
        lines.append(f"| {r.method} | {ll} | {span} | {r.s_per_step:.4f} | {r.wall_s:.1f} "
                     f"| {r.steps} | {r.seeds} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny budgets, one seed")
    p.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--exact-steps", type=int, default=2,
                   help="DSM steps with exact m to time (0: skip)")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--merge", action="store_true", help="merge with the existing table")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    seeds = args.seeds[:1] if args.quick else args.seeds
    rows = []
    for name in args.methods:
        for seed in seeds:
            rows.append(run_one(name, seed=seed, quick=args.quick))
            print(f"{name} seed {seed}: test_ll {rows[-1]['test_ll']:.3f} "
                  f"({rows[-1]['wall_s']:.1f} s)", flush=True)
    if args.exact_steps > 0:
        rows.append(time_exact_m(1, rows=4, n_noise=1) if args.quick
                    else time_exact_m(args.exact_steps))
        print(f"exact m: {rows[-1]['s_per_step']:.2f} s/step, peak RSS +"
              f"{rows[-1]['peak_rss_growth_mib']:.0f} MiB", flush=True)
    df = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "digits_gap.parquet"
    if args.merge and path.exists():
        old = pd.read_parquet(path)
        keep = ~old.set_index(["method", "seed"]).index.isin(df.set_index(["method", "seed"]).index)
        df = pd.concat([old[keep], df], ignore_index=True)
    df.to_parquet(path, index=False)
    print(markdown(summarise(df)))
    return df


if __name__ == "__main__":
    main()
