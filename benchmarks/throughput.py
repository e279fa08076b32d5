"""Block-Gibbs throughput against the machine's matmul roofline and two peers  (§3).

A block-Gibbs sweep on B chains of an n×m RBM is two products, (B, n)@(n, m) and
(B, m)@(m, n), plus 2·B·(n+m)... elementwise sigmoid/Bernoulli work, so its flop count is

    flops / sweep = 2 · (2 B n m)                          (multiply-add = 2 flops)
    roofline fraction = sweeps/s · 4 B n m / R_matmul

with R_matmul measured in the same run, as the best rate of (B, n)@(n, m) and (B, m)@(m, n)
products (``matmul_same_shape``) and of a 1024³ product (``matmul_peak``).

The kernel is the library's: ``RBM.gibbs`` on a float32 model (``gibbs_kernel`` names the one it
picks).  With AVX2 and weights that fit a core's caches (n·m ≤ 2^14) it runs every sweep in one
compiled call, blocks of 4 chains with their fields in registers (``fused``); otherwise two
``mm`` products and one compiled pass per layer that adds the bias and draws the units
(``pass``, ``rbmdiff.native``).  Both are timed at every shape (``fused_*``,
``pass_kernel_*``), whichever the library picks, and with ``--threads`` > 1 the fused sweep
also on one thread (``fused_threads_speedup``).  Also timed in the same run:
``torch_kernel``, the same method with the compiled code turned off (``RBMDIFF_NATIVE=0``:
``sigmoid_`` + ``gt_`` against float32 uniforms from NumPy's PCG64, the fallback where the
package was installed without its compiled library), and ``before``, a reference kernel
(per sweep, ``torch.bernoulli(torch.sigmoid(·))`` on fresh tensors, torch's
generator).

Peers on the same RBM, same sweeps, both at β = 1: scikit-learn's ``BernoulliRBM.gibbs`` (one
sweep per call, float64 NumPy) on the same chains, and dwave-samplers'
``SimulatedAnnealingSampler`` on the RBM's BQM (one Metropolis sweep = one visit of all n + m
units, per read; β from 0.1 up to 1, geometric).  Every peer is timed as its best batch of
≥ 0.2 s CPU (``--quick``: 0.05 s) over the row's interleaved rounds (below), NumPy's BLAS
limited to torch's thread count (its idle threads spin, which the CPU clock charges).  The
annealer's cost per read does not depend on how many chains Gibbs runs, so it gets one rate per
RBM shape (its best times over all that shape's rows), on a BQM built beforehand (the RBM→BQM
conversion is not charged to it), as the marginal cost of a read (its fixed cost per call,
``anneal_call_overhead_s``, is shared by the reads of a call and left out), and that rate
serves every chain count of the shape: ``anneal_sweeps_per_s`` = read-sweeps/s ÷ chains.

Everything a row reports (kernel, products, the sweep's parts, peers) is timed in interleaved
rounds (:func:`interleaved_best`; ≥ 5 rounds and ≥ 20 s of them, ``--quick``: 3), each round
timing one batch of every function in turn, and each function's best batch is kept: on a shared
machine the kernel and its peers then see the same spells of load.

Where a sweep of the mm + pass kernel goes, per shape, in the same run (CPU clock, best of;
shares of that kernel's sweep): ``matmul``, the two ``mm`` products alone; ``native``, the
compiled pass (biases added) on both layers; for the
torch kernel ``rng``, drawing the B·(n+m) float32 uniforms of one sweep with its generator and
block size (NumPy PCG64 ``random(out=, dtype=float32)``, blocks of ``GIBBS_BLOCK`` units), and
``elementwise``, its ``sigmoid_`` + ``gt_`` passes.  Their shares of the full sweep, and

    torch_roofline_bound_rng = t_roof / (t_roof + t_rng),   t_roof = 4 B n m / R_same_shape

the highest roofline fraction a kernel using that float32 fill could reach even with free σ and
comparison and products at the measured matmul rate.  Flops per uniform:
4 n m / (n + m).

Also: peak RSS while drawing many samples from a digits-sized RBM, streamed to Parquet in
batches.

    python benchmarks/throughput.py            # full run (a few minutes)
    python benchmarks/throughput.py --quick    # < 30 s

Torch's thread count matters (``--threads``; default 1 on this shared machine).  ``--clock cpu``
(the default) times by the process's CPU time, which other jobs on a shared machine inflate far
less than wall time (not at all only on an idle machine: shared caches still cost ±25 % here);
``--clock wall`` by wall time (use it with ``--threads`` > 1).
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rbmdiff import native, samplers
from rbmdiff.gibbs_kernels import GIBBS_BLOCK
from rbmdiff.rbm import RBM

RESULTS = Path(__file__).parent / "results"
FULL_SHAPES = ((64, 16, 1024), (64, 16, 10000), (64, 64, 1024), (128, 128, 1024),
               (256, 256, 1024), (784, 500, 1024))
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["cpu"]  # set by run()
QUICK_SHAPES = ((64, 16, 256), (256, 256, 256))


def interleaved_best(fns: dict[str, tuple[Callable[[], object], float]], *, rounds: int,
                     min_total_s: float = 0.0, max_rounds: int = 50) -> dict[str, float]:
    """Best time (``clock``) of one call of each function, over ``rounds`` rounds (more, up to
    ``max_rounds``, until the rounds took ``min_total_s``) that each time one batch of every
    function in turn, so that all of them, the kernel and its peers, see the same spells of load
    on a shared machine.  ``fns``: name -> (function, min_s), a batch being as many calls as
    last ≥ min_s (found in the first round, after one warm-up call).  Also: ``rounds`` run."""
    start, done = clock(), 1
    calls, best = {}, {}
    for name, (fn, min_s) in fns.items():
        fn()  # warm-up
        n = 1
        while True:
            t0 = clock()
            for _ in range(n):
                fn()
            dt = clock() - t0
            if dt >= min_s:
                break
            n = max(2 * n, int(n * 1.2 * min_s / max(dt, 1e-6)))
        calls[name], best[name] = n, dt / n
    while done < rounds or (clock() - start < min_total_s and done < max_rounds):
        for name, (fn, _) in fns.items():
            t0 = clock()
            for _ in range(calls[name]):
                fn()
            best[name] = min(best[name], (clock() - t0) / calls[name])
        done += 1
    return {**best, "rounds": done}


def matmul(rows: int, inner: int, cols: int) -> tuple[Callable[[], object], int]:
    """A float32 (rows, inner)@(inner, cols) product and its flop count 2·rows·inner·cols."""
    a, b = torch.randn(rows, inner), torch.randn(inner, cols)
    return (lambda: a @ b), 2 * rows * inner * cols


def gibbs_before(rbm: RBM, v: torch.Tensor, sweeps: int, g: torch.Generator) -> torch.Tensor:
    """The reference block-Gibbs kernel: per sweep and layer a
    fresh σ tensor and a fresh ``torch.bernoulli`` draw from torch's generator."""
    with torch.no_grad():
        for _ in range(sweeps):
            h = torch.bernoulli(rbm.hidden_mean(v), generator=g)
            v = torch.bernoulli(rbm.visible_mean(h), generator=g)
    return v


def sklearn_gibbs(rbm: RBM, chains: int, sweeps: int) -> Callable[[], None]:
    """scikit-learn BernoulliRBM.gibbs (v -> h -> v, one sweep per call, float64 NumPy) on the
    same RBM and chains: ``sweeps`` sweeps."""
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

    return run


def anneal_calls(rbm: RBM, sweeps: int, *, min_s: float) -> tuple[Callable[[], object],
                                                                    Callable[[], object], int]:
    """dwave-samplers simulated annealing (β from 0.1 up to 1, geometric, ``sweeps`` sweeps per
    read) on the RBM's BQM, built beforehand (the RBM→BQM conversion is not charged to the
    peer): (a call on 1 read, a call on R reads, R), R such that the R − 1 reads beyond the
    first take ≥ ``min_s``.  Each call has a fixed cost (loading the BQM, ≈ 0.1 s at 784×500)
    that its reads share, so the peer's rate is the marginal one, (R − 1)·sweeps / (t_R − t_1)."""
    from dwave.samplers import SimulatedAnnealingSampler

    from rbmdiff.ising import to_bqm

    bqm, sa = to_bqm(rbm), SimulatedAnnealingSampler()
    kwargs = {"num_sweeps": sweeps, "beta_range": (0.1, 1.0), "beta_schedule_type": "geometric"}

    def call(reads: int) -> Callable[[], object]:
        return lambda: sa.sample(bqm, num_reads=reads, seed=0, **kwargs)

    def seconds(reads: int) -> float:
        return interleaved_best({"sa": (call(reads), 0.0)}, rounds=2)["sa"]

    t_1, reads = seconds(1), 2
    while (t_r := seconds(reads)) - t_1 < min_s:
        reads = max(2 * reads, int(reads * 1.2 * min_s / max(t_r - t_1, 1e-3)))
    return call(1), call(reads), reads


def kernel_parts(rbm: RBM, chains: int, sweeps: int) -> dict[str, Callable[[], object]]:
    """The kernels' parts, to time alone: ``matmul``, the two ``mm(out=)`` products;
    ``native``, the compiled pass on both layers, biases included (absent without a
    compiler); and the torch
    kernel's ``rng``, its uniforms as it draws them (NumPy PCG64 float32 fill, blocks of up to
    ``GIBBS_BLOCK`` units, i.e. several sweeps per call), and ``elementwise``, ``sigmoid_`` +
    ``gt_`` on both layers.  ``rng`` draws a block of sweeps, the others one sweep."""
    B, n, m = chains, rbm.n_visible, rbm.n_hidden
    per_sweep = B * (n + m)
    block = max(1, min(sweeps, GIBBS_BLOCK // per_sweep))
    buf = np.empty((block, per_sweep), dtype=np.float32)
    rng = np.random.Generator(np.random.PCG64(0))
    rng.random(out=buf, dtype=np.float32)
    W, b, c = rbm.W.detach(), rbm.b.detach(), rbm.c.detach()
    g = torch.Generator().manual_seed(0)
    v = torch.bernoulli(torch.full((B, n), 0.5), generator=g)
    h = torch.bernoulli(torch.full((B, m), 0.5), generator=g)
    u = torch.from_numpy(buf[0])
    uh, uv = u[: B * m].view(B, m), u[B * m:].view(B, n)
    x_h, x_v = torch.randn(B, m, generator=g), torch.randn(B, n, generator=g)

    def products() -> None:  # as the compiled kernel's sweep: the biases are added in its pass
        torch.mm(v, W, out=h)
        torch.mm(h, W.T, out=v)

    def elementwise() -> None:
        x_h.sigmoid_().gt_(uh)
        x_v.sigmoid_().gt_(uv)

    parts = {"rng": lambda: rng.random(out=buf, dtype=np.float32), "matmul": products,
             "elementwise": elementwise}
    kern = native.kernel()
    if kern is not None:  # its cost does not depend on the values (no branches)
        state = kern.seed_state(0)
        draw_h, draw_v = kern.bound(state, x_h.clone(), c), kern.bound(state, x_v.clone(), b)

        def compiled() -> None:
            draw_h()
            draw_v()

        parts["native"] = compiled
    return parts


def with_fusing(limit: int, rbm: RBM, v: torch.Tensor, sweeps: int,
                g: torch.Generator) -> torch.Tensor:
    """``RBM.gibbs`` with the fusing limit set to ``limit`` for the call: 0 gives the pass
    kernel (mm + the compiled pass per layer), a large one the fused sweep at any shape."""
    previous = native.FUSED_MAX_WEIGHTS
    native.FUSED_MAX_WEIGHTS = limit
    try:
        return rbm.gibbs(v, sweeps, generator=g)
    finally:
        native.FUSED_MAX_WEIGHTS = previous


def one_thread(fn: Callable, *args: object) -> object:
    """``fn(*args)`` with torch held to one thread (the fused sweep takes torch's count)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn(*args)
    finally:
        torch.set_num_threads(threads)


def torch_kernel(rbm: RBM, v: torch.Tensor, sweeps: int, g: torch.Generator) -> torch.Tensor:
    """``RBM.gibbs`` with the compiled pass off: the torch kernel (the fallback)."""
    previous = os.environ.get("RBMDIFF_NATIVE")
    os.environ["RBMDIFF_NATIVE"] = "0"
    try:
        return rbm.gibbs(v, sweeps, generator=g)
    finally:
        if previous is None:
            del os.environ["RBMDIFF_NATIVE"]
        else:
            os.environ["RBMDIFF_NATIVE"] = previous


def row_timings(rbm: RBM, chains: int, sweeps: int, anneal: dict, *, rounds: int,
                min_total_s: float, min_s: float, peer_min_s: float,
                peak: Callable[[], object]) -> dict[str, float]:
    """Best seconds per call of everything one row reports, by one :func:`interleaved_best`:
    the kernel, the torch kernel, the reference kernel, the ``gibbs`` sampler end to end,
    the same-shape and 1024³ products, the kernels' parts, sklearn and the annealer
    (``anneal``: :func:`anneal_calls` for this RBM shape)."""
    g = torch.Generator().manual_seed(0)
    v = torch.bernoulli(torch.full((chains, rbm.n_visible), 0.5), generator=g)
    sampler = samplers.get("gibbs", num_sweeps=sweeps, threads=None)
    mm_a, _ = matmul(chains, rbm.n_visible, rbm.n_hidden)
    mm_b, _ = matmul(chains, rbm.n_hidden, rbm.n_visible)
    parts = kernel_parts(rbm, chains, sweeps)
    kern = native.kernel()
    simd = kern is not None and kern.simd
    fns = {
        "gibbs": (lambda: rbm.gibbs(v, sweeps, generator=g), min_s),
        "torch_kernel": (lambda: torch_kernel(rbm, v, sweeps, g), min_s),
        **({"fused": (lambda: with_fusing(2**62, rbm, v, sweeps, g), min_s),
            "pass": (lambda: with_fusing(0, rbm, v, sweeps, g), min_s)}
           if simd else {}),
        **({"fused_1": (lambda: one_thread(with_fusing, 2**62, rbm, v, sweeps, g), min_s)}
           if simd and torch.get_num_threads() > 1 else {}),
        "before": (lambda: gibbs_before(rbm, v, sweeps, g), min_s),
        "sampler": (lambda: sampler.sample(rbm, chains, seed=0), min_s),
        "mm_a": (mm_a, min_s), "mm_b": (mm_b, min_s), "peak": (peak, min_s),
        **{name: (fn, min_s) for name, fn in parts.items()},
        "sklearn": (sklearn_gibbs(rbm, chains, sweeps), peer_min_s),
        "sa_1": (anneal["sa_1"], peer_min_s / 4), "sa_r": (anneal["sa_r"], 0.0),
    }
    return interleaved_best(fns, rounds=rounds, min_total_s=min_total_s)


def run(shapes: tuple[tuple[int, int, int], ...], *, sweeps: int, rounds: int, row_s: float,
        min_s: float, peer_min_s: float, threads: int, clock_name: str = "cpu") -> pd.DataFrame:
    """One row per RBM shape and chain count: rates, roofline fractions, where the sweep's time
    goes, peer ratios.  Per row, everything is timed by one
    :func:`interleaved_best` (≥ ``rounds`` rounds and ≥ ``row_s`` seconds of them; batches
    ≥ ``min_s``, peers' ≥ ``peer_min_s``)."""
    from threadpoolctl import threadpool_limits
    from tqdm.auto import tqdm

    global clock
    clock = CLOCKS[clock_name]
    torch.set_num_threads(threads)
    peak_fn, peak_flops = matmul(1024, 1024, 1024)
    peak_s = float("inf")
    anneal: dict[tuple[int, int], dict] = {}  # per RBM shape, shared by its chain counts
    rows = []
    # NumPy's BLAS (sklearn's products) at the same thread count as torch: its idle threads
    # spin, which the CPU clock would charge to the peer (≈ 6× at 64×16 on this machine)
    with threadpool_limits(limits=threads):
        for n, m, chains in tqdm(shapes, desc="throughput", dynamic_ncols=True):
            rbm = RBM.random(n, m, scale=0.1, seed=0)
            if (n, m) not in anneal:
                sa_1, sa_r, reads = anneal_calls(rbm, sweeps, min_s=peer_min_s)
                anneal[n, m] = {"sa_1": sa_1, "sa_r": sa_r, "reads": reads,
                                "t_1": float("inf"), "t_r": float("inf")}
            sa = anneal[n, m]
            t = row_timings(rbm, chains, sweeps, sa, rounds=rounds, min_total_s=row_s,
                            min_s=min_s, peer_min_s=peer_min_s, peak=peak_fn)
            block = max(1, min(sweeps, GIBBS_BLOCK // (chains * (n + m))))  # sweeps / draw
            peak_s = min(peak_s, t["peak"])
            sa["t_1"], sa["t_r"] = min(sa["t_1"], t["sa_1"]), min(sa["t_r"], t["sa_r"])
            same = 2 * chains * n * m / min(t["mm_a"], t["mm_b"])  # same flops either way
            raw = sweeps / t["gibbs"]
            t_pass = t.get("pass", t["gibbs"])  # the kernel made of these parts: mm + pass
            part = {name: t.get(name, float("nan")) / (block if name == "rng" else 1)
                    for name in ("rng", "matmul", "elementwise", "native")}  # s per sweep
            units = chains * (n + m)
            flops = 4 * chains * n * m
            t_roof = flops / same
            rows.append({
                "n_visible": n, "n_hidden": m, "chains": chains, "sweeps": sweeps,
                "threads": threads, "clock": clock_name, "rounds": t.pop("rounds"),
                "gibbs_kernel": rbm.gibbs_kernel(), "gibbs_sweeps_per_s": raw,
                "fused_threading": "openmp" if getattr(native.kernel(), "openmp", False)
                else "one thread",
                "torch_kernel_sweeps_per_s": sweeps / t["torch_kernel"],
                "speedup_vs_torch_kernel": t["torch_kernel"] / t["gibbs"],
                "gibbs_before_sweeps_per_s": sweeps / t["before"],
                "speedup_vs_before": t["before"] / t["gibbs"],
                "sampler_sweeps_per_s": sweeps / t["sampler"], "chain_sweeps_per_s": raw * chains,
                "gibbs_gflops": raw * flops / 1e9, "matmul_same_shape_gflops": same / 1e9,
                "roofline_same_shape": raw * flops / same,
                "torch_kernel_roofline_same_shape": sweeps / t["torch_kernel"] * flops / same,
                "fused_sweeps_per_s": sweeps / t.get("fused", float("nan")),
                "pass_kernel_sweeps_per_s": sweeps / t.get("pass", float("nan")),
                "fused_vs_pass_kernel": t.get("pass", float("nan")) / t.get("fused", float("nan")),
                "fused_roofline_same_shape": sweeps / t.get("fused", float("nan")) * flops / same,
                "fused_threads_speedup":
                    t.get("fused_1", float("nan")) / t.get("fused", float("nan")),
                "pass_kernel_roofline_same_shape":
                    sweeps / t.get("pass", float("nan")) * flops / same,
                "matmul_share": part["matmul"] * sweeps / t_pass,
                "native_ns_per_unit": part["native"] / units * 1e9,
                "native_share": part["native"] * sweeps / t_pass,
                "roofline_from_parts": t_roof / (part["matmul"] + part["native"]),
                "flops_per_uniform": 4 * n * m / (n + m),
                "rng_ns_per_uniform": part["rng"] / units * 1e9,
                "elementwise_ns_per_unit": part["elementwise"] / units * 1e9,
                "torch_rng_share": part["rng"] * sweeps / t["torch_kernel"],
                "torch_elementwise_share": part["elementwise"] * sweeps / t["torch_kernel"],
                "torch_roofline_bound_rng": t_roof / (t_roof + part["rng"]),
                "sklearn_sweeps_per_s": sweeps / t["sklearn"],
                "vs_sklearn": t["sklearn"] / t["gibbs"],
                "anneal_reads_timed": sa["reads"],
            })
    df = pd.DataFrame(rows)
    # shared per shape: the best 1-read and R-read times over all rounds of all its rows
    per_read = {key: (sa["t_r"] - sa["t_1"]) / (sa["reads"] - 1) for key, sa in anneal.items()}
    keys = list(zip(df["n_visible"], df["n_hidden"], strict=True))
    df["anneal_read_sweeps_per_s"] = [sweeps / per_read[key] for key in keys]
    df["anneal_call_overhead_s"] = [max(anneal[key]["t_1"] - per_read[key], 0.0) for key in keys]
    df["anneal_sweeps_per_s"] = df["anneal_read_sweeps_per_s"] / df["chains"]
    df["vs_anneal"] = df["gibbs_sweeps_per_s"] / df["anneal_sweeps_per_s"]
    df["matmul_peak_gflops"] = peak_flops / peak_s / 1e9
    df["roofline_peak"] = df["gibbs_gflops"] / df["matmul_peak_gflops"]
    return df


def stream_peak_rss(rbm: RBM, num_samples: int, batch: int, path: Path) -> dict:
    """Draw ``num_samples`` Gibbs samples in batches of ``batch`` and append each batch to a
    Parquet file; report the growth of peak RSS (ru_maxrss, KiB on Linux) over the run."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sampler = samplers.get("gibbs", num_sweeps=10, threads=None)
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


def plot(df: pd.DataFrame, path: Path) -> None:
    """Chain-sweeps per second per RBM shape: rbmdiff Gibbs, sklearn, simulated annealing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r.n_visible}×{r.n_hidden}\nB={r.chains}" for r in df.itertuples()]
    x = np.arange(len(df))
    fig, ax = plt.subplots(figsize=(7, 4))
    ours = f"rbmdiff gibbs ({', '.join(dict.fromkeys(df['gibbs_kernel']))})"
    for k, (col, name) in enumerate([("gibbs_sweeps_per_s", ours),
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
    df = run(shapes, sweeps=sweeps, rounds=3 if args.quick else 5,
             row_s=0.0 if args.quick else 20.0,
             min_s=0.02 if args.quick else 0.1, peer_min_s=0.05 if args.quick else 0.2,
             threads=args.threads, clock_name=args.clock)
    args.out.mkdir(parents=True, exist_ok=True)
    stream_n = args.stream_samples or (20_000 if args.quick else 1_000_000)
    rss = stream_peak_rss(RBM.random(64, 16, scale=0.1, seed=0), stream_n, 10_000,
                          args.out / "throughput_stream.parquet")
    df = df.assign(**rss)
    df.to_parquet(args.out / "throughput.parquet", index=False)
    plot(df, args.out / "throughput.png")
    key = ["n_visible", "n_hidden", "chains"]
    tables = {
        "rates and peers": ["threads", "gibbs_kernel", "gibbs_sweeps_per_s",
                            "torch_kernel_sweeps_per_s", "speedup_vs_torch_kernel",
                            "gibbs_before_sweeps_per_s", "speedup_vs_before", "gibbs_gflops",
                            "matmul_same_shape_gflops",
                            "matmul_peak_gflops", "roofline_same_shape", "roofline_peak",
                            "sklearn_sweeps_per_s", "anneal_sweeps_per_s", "vs_sklearn",
                            "vs_anneal"],
        "fused sweep or mm + pass": ["fused_threading", "fused_sweeps_per_s",
                                     "pass_kernel_sweeps_per_s", "fused_vs_pass_kernel",
                                     "fused_threads_speedup", "fused_roofline_same_shape",
                                     "pass_kernel_roofline_same_shape"],
        "where a sweep goes": ["matmul_share", "native_ns_per_unit", "native_share",
                               "roofline_from_parts", "torch_kernel_roofline_same_shape",
                               "flops_per_uniform", "rng_ns_per_uniform",
                               "elementwise_ns_per_unit", "torch_rng_share",
                               "torch_elementwise_share", "torch_roofline_bound_rng"],
    }
    with pd.option_context("display.width", 200):
        for title, cols in tables.items():
            print(f"-- {title}")
            print(df[key + cols].to_string(index=False, float_format=lambda v: f"{v:.3g}"))
        print({k: round(v, 2) if isinstance(v, float) else v for k, v in rss.items()})
    return df


if __name__ == "__main__":
    main()
