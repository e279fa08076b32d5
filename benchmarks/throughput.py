"""Block-Gibbs throughput against the machine's matmul roofline and two peers  (issue 6, §3).

A block-Gibbs sweep on B chains of an n×m RBM is two products, (B, n)@(n, m) and
(B, m)@(m, n), plus 2·B·(n+m)... elementwise sigmoid/Bernoulli work, so its flop count is

    flops / sweep = 2 · (2 B n m)                          (multiply-add = 2 flops)
    roofline fraction = sweeps/s · 4 B n m / R_matmul

with R_matmul measured in the same run, as the best rate of (B, n)@(n, m) and (B, m)@(m, n)
products (``matmul_same_shape``) and of a 1024³ product (``matmul_peak``).  ``before``: the
kernel this project had until issue 6 (per sweep, ``torch.bernoulli(torch.sigmoid(·))`` on fresh
tensors, torch's generator), timed in the same run.  Peers on the same RBM, same chains, same
sweeps: scikit-learn's ``BernoulliRBM.gibbs`` (one sweep per call,
NumPy) and dwave-samplers' ``SimulatedAnnealingSampler`` on the RBM's BQM (one Metropolis
sweep = one visit of all n + m units, per read), both at β = 1.  Also: peak RSS while drawing
many samples from a digits-sized RBM, streamed to Parquet in batches.

    python benchmarks/throughput.py            # full run (about a minute or two)
    python benchmarks/throughput.py --quick    # < 30 s

Torch's thread count matters (``--threads``; default 1 on this shared machine).  ``--clock cpu``
(the default) times by the process's CPU time, which other jobs on a shared machine do not
inflate; ``--clock wall`` by wall time (use it with ``--threads`` > 1).
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rbmdiff import samplers
from rbmdiff.rbm import RBM

RESULTS = Path(__file__).parent / "results"
FULL_SHAPES = ((64, 16, 1024), (64, 16, 10000), (64, 64, 1024), (256, 256, 1024),
               (784, 500, 1024))
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["cpu"]  # set by run()
QUICK_SHAPES = ((64, 16, 256), (256, 256, 256))


def best_time(fn: Callable[[], object], *, repeats: int, min_s: float = 0.05) -> float:
    """Best wall time of one call over ``repeats`` timed batches (each ≥ ``min_s``)."""
    fn()  # warm-up
    n_calls, best = 1, float("inf")
    while True:  # calls per batch such that a batch lasts ≥ min_s
        t0 = clock()
        for _ in range(n_calls):
            fn()
        dt = clock() - t0
        if dt >= min_s:
            break
        n_calls *= 2
    best = dt / n_calls
    for _ in range(repeats - 1):
        t0 = clock()
        for _ in range(n_calls):
            fn()
        best = min(best, (clock() - t0) / n_calls)
    return best


def matmul_rate(rows: int, inner: int, cols: int, *, repeats: int) -> float:
    """Measured flop/s of a float32 (rows, inner)@(inner, cols) product: 2·rows·inner·cols / t."""
    a, b = torch.randn(rows, inner), torch.randn(inner, cols)
    return 2 * rows * inner * cols / best_time(lambda: a @ b, repeats=repeats)


def gibbs_before(rbm: RBM, v: torch.Tensor, sweeps: int, g: torch.Generator) -> torch.Tensor:
    """The block-Gibbs kernel before issue 6, kept as the reference: per sweep and layer a
    fresh σ tensor and a fresh ``torch.bernoulli`` draw from torch's generator."""
    with torch.no_grad():
        for _ in range(sweeps):
            h = torch.bernoulli(rbm.hidden_mean(v), generator=g)
            v = torch.bernoulli(rbm.visible_mean(h), generator=g)
    return v


def torch_sweeps_per_s(rbm: RBM, chains: int, sweeps: int, *,
                       repeats: int) -> tuple[float, float, float]:
    """(RBM.gibbs, samplers.get('gibbs') end to end, the pre-issue-6 kernel) sweeps/s on
    ``chains`` chains."""
    g = torch.Generator().manual_seed(0)
    v = torch.bernoulli(torch.full((chains, rbm.n_visible), 0.5), generator=g)
    raw = sweeps / best_time(lambda: rbm.gibbs(v, sweeps, generator=g), repeats=repeats)
    before = sweeps / best_time(lambda: gibbs_before(rbm, v, sweeps, g), repeats=repeats)
    sampler = samplers.get("gibbs", sweeps=sweeps, threads=None)
    best = float("inf")
    for k in range(repeats):
        t0 = clock()
        sampler.sample(rbm, chains, seed=k)
        best = min(best, clock() - t0)
    return raw, sweeps / best, before


def sklearn_sweeps_per_s(rbm: RBM, chains: int, sweeps: int, *, repeats: int) -> float:
    """scikit-learn BernoulliRBM.gibbs (v -> h -> v, one sweep per call) on the same RBM."""
    from sklearn.neural_network import BernoulliRBM

    peer = BernoulliRBM(n_components=rbm.n_hidden, random_state=0)
    peer.components_ = rbm.W.T.numpy().astype(np.float64)
    peer.intercept_hidden_ = rbm.c.numpy().astype(np.float64)
    peer.intercept_visible_ = rbm.b.numpy().astype(np.float64)
    peer.random_state_ = np.random.RandomState(0)
    v0 = (np.random.default_rng(0).random((chains, rbm.n_visible)) < 0.5).astype(np.float64)

    def run() -> None:
        v = v0
        for _ in range(sweeps):
            v = peer.gibbs(v)

    return sweeps / best_time(run, repeats=repeats)


def anneal_sweeps_per_s(rbm: RBM, chains: int, sweeps: int, *, repeats: int = 2) -> float:
    """dwave-samplers simulated annealing ending at β = 1, ``chains`` reads × ``sweeps``
    sweeps; sweeps/s per read-set, i.e. comparable with Gibbs sweeps/s on ``chains`` chains.
    Best of ``repeats`` calls."""
    sampler = samplers.get("anneal", num_sweeps=sweeps, beta_start=0.1, beta=1.0)
    best = float("inf")
    for k in range(repeats):
        t0 = clock()
        sampler.sample(rbm, chains, seed=k)
        best = min(best, clock() - t0)
    return sweeps / best


def stream_peak_rss(rbm: RBM, num_samples: int, batch: int, path: Path) -> dict:
    """Draw ``num_samples`` Gibbs samples in batches of ``batch`` and append each batch to a
    Parquet file; report the growth of peak RSS (ru_maxrss, KiB on Linux) over the run."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sampler = samplers.get("gibbs", sweeps=10, threads=None)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    schema = pa.schema([(f"v{i}", pa.uint8()) for i in range(rbm.n_visible)])
    with pq.ParquetWriter(path, schema) as writer:
        for k in range(0, num_samples, batch):
            v = sampler.sample(rbm, min(batch, num_samples - k), seed=k).v.to(torch.uint8).numpy()
            writer.write_table(pa.Table.from_arrays(list(v.T), schema=schema))
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"stream_samples": num_samples, "stream_batch": batch,
            "stream_wall_s": time.perf_counter() - t0, "peak_rss_mib": after / 1024,
            "peak_rss_growth_mib": (after - before) / 1024,
            "parquet_mib": path.stat().st_size / 2**20}


def run(shapes: tuple[tuple[int, int, int], ...], *, sweeps: int, repeats: int,
        anneal_chains: int, threads: int, clock_name: str = "cpu") -> pd.DataFrame:
    """One row per RBM shape: rates, roofline fractions and peer ratios."""
    from tqdm.auto import tqdm

    global clock
    clock = CLOCKS[clock_name]
    torch.set_num_threads(threads)
    peak = matmul_rate(1024, 1024, 1024, repeats=repeats)
    rows = []
    for n, m, chains in tqdm(shapes, desc="throughput", dynamic_ncols=True):
        rbm = RBM.random(n, m, scale=0.1, seed=0)
        same = max(matmul_rate(chains, n, m, repeats=repeats),
                   matmul_rate(chains, m, n, repeats=repeats))
        raw, end_to_end, before = torch_sweeps_per_s(rbm, chains, sweeps, repeats=repeats)
        sk = sklearn_sweeps_per_s(rbm, chains, sweeps, repeats=repeats)
        # the annealer is slow: time it on fewer reads and scale to ``chains`` (linear in reads)
        reads = min(chains, anneal_chains)
        sa = anneal_sweeps_per_s(rbm, reads, sweeps) * reads / chains
        flops = 4 * chains * n * m
        rows.append({
            "n_visible": n, "n_hidden": m, "chains": chains, "sweeps": sweeps,
            "threads": threads, "clock": clock_name, "gibbs_sweeps_per_s": raw,
            "gibbs_before_sweeps_per_s": before, "speedup_vs_before": raw / before,
            "sampler_sweeps_per_s": end_to_end, "chain_sweeps_per_s": raw * chains,
            "gibbs_gflops": raw * flops / 1e9, "matmul_same_shape_gflops": same / 1e9,
            "matmul_peak_gflops": peak / 1e9,
            "roofline_same_shape": raw * flops / same, "roofline_peak": raw * flops / peak,
            "sklearn_sweeps_per_s": sk, "anneal_sweeps_per_s": sa, "anneal_reads_timed": reads,
            "vs_sklearn": raw / sk, "vs_anneal": raw / sa,
        })
    return pd.DataFrame(rows)


def plot(df: pd.DataFrame, path: Path) -> None:
    """Chain-sweeps per second per RBM shape: rbmdiff Gibbs, sklearn, simulated annealing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r.n_visible}×{r.n_hidden}\nB={r.chains}" for r in df.itertuples()]
    x = np.arange(len(df))
    fig, ax = plt.subplots(figsize=(7, 4))
    for k, (col, name) in enumerate([("gibbs_sweeps_per_s", "rbmdiff gibbs (torch)"),
                                     ("sklearn_sweeps_per_s", "sklearn BernoulliRBM.gibbs"),
                                     ("anneal_sweeps_per_s", "dwave-samplers SA")]):
        ax.bar(x + (k - 1) * 0.27, df[col] * df["chains"], width=0.27, label=name)
    ax.set_xticks(x, labels)
    ax.set_yscale("log")
    ax.set_ylabel("chain-sweeps / s")
    ax.set_title(f"block-Gibbs throughput, {int(df['threads'].iloc[0])} torch thread(s)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small shapes, few repeats (< 30 s)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--sweeps", type=int, default=None, help="sweeps per timed call")
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="cpu",
                    help="cpu: process CPU time (default; robust on a shared machine); wall")
    ap.add_argument("--stream-samples", type=int, default=None,
                    help="samples drawn while measuring peak RSS (default 10^6; quick 2·10^4)")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder for Parquet and PNG")
    args = ap.parse_args(argv)
    shapes = QUICK_SHAPES if args.quick else FULL_SHAPES
    sweeps = args.sweeps or (10 if args.quick else 50)
    df = run(shapes, sweeps=sweeps, repeats=2 if args.quick else 5,
             anneal_chains=16 if args.quick else 128, threads=args.threads, clock_name=args.clock)
    args.out.mkdir(parents=True, exist_ok=True)
    stream_n = args.stream_samples or (20_000 if args.quick else 1_000_000)
    rss = stream_peak_rss(RBM.random(64, 16, scale=0.1, seed=0), stream_n, 10_000,
                          args.out / "throughput_stream.parquet")
    df = df.assign(**rss)
    df.to_parquet(args.out / "throughput.parquet", index=False)
    plot(df, args.out / "throughput.png")
    cols = ["n_visible", "n_hidden", "chains", "threads", "gibbs_sweeps_per_s",
            "gibbs_before_sweeps_per_s", "speedup_vs_before", "gibbs_gflops",
            "matmul_same_shape_gflops", "matmul_peak_gflops", "roofline_same_shape",
            "roofline_peak", "sklearn_sweeps_per_s", "anneal_sweeps_per_s", "vs_sklearn",
            "vs_anneal"]
    with pd.option_context("display.width", 200):
        print(df[cols].to_string(index=False, float_format=lambda v: f"{v:.3g}"))
        print({k: round(v, 2) if isinstance(v, float) else v for k, v in rss.items()})
    return df


if __name__ == "__main__":
    main()
