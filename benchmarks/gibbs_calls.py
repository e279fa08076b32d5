"""Does cutting a long Gibbs run into calls change its law?  (§2's reference check)

``RBM.gibbs`` runs a long fused job as calls of about ``gibbs_kernels.SLICE_MULTIPLY_ADDS``
multiply-adds, call i > 0 seeded by a hash of (seed, i).  Same Markov chain, other random
words, so nothing but noise may tell the two apart.  On §2's digits models (cached by
``sampling_quality.py`` under the same folder, trained here if missing), each check runs both
ways, ``calls`` (the library's) and ``one call`` (the limit raised so that a run is one call):

    means16   digits/16: pixel means of N chains after K sweeps from training rows against the
              exact marginals (enumeration of the 2^16 hidden states): χ² on 64 pixels
    pairs64   digits/64 (nothing enumerable): the same chains' pixel means, run against run,
              every pair of runs of either way: χ² on 64 pixels
    mmd16     digits/16: unbiased MMD² of 2,000 samples of ``gibbs`` at 1,000 sweeps from
              v ~ Bernoulli(½) against 10,000 exact draws, over S seeds; exact draws as a peer
    ref64     digits/64: §2's perfect samples (long Gibbs from training rows, 2,000 sweeps,
              every 20th state, 2,000 rows) against one 10,000-row reference, over R seeds

χ² should lie near 64 ± 11 for independent, converged chains (pixels that are never on add
nothing); the MMD² spreads should match.  Writes ``<out>/gibbs_calls.parquet`` (one row per
check, way and run) and ``<out>/gibbs_calls.png``.

    python benchmarks/gibbs_calls.py            # ~5 min here, models cached
    python benchmarks/gibbs_calls.py --quick    # < 30 s
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import pandas as pd
import torch
from sampling_quality import MODEL_DIR, MODELS, RESULTS, exact_draws, long_gibbs, trained_model

from rbmdiff import gibbs_kernels, samplers
from rbmdiff.data import load_dataset
from rbmdiff.exact import binary_states
from rbmdiff.metrics import mmd_hamming

# multiply-adds per call each way; --quick cuts its small runs into calls of 2^22
WAYS = {"calls": gibbs_kernels.SLICE_MULTIPLY_ADDS, "one call": 1 << 62}
QUICK_CALL = 1 << 22


def exact_means(rbm) -> torch.Tensor:
    """E[v_i] under the model, by enumerating the hidden states (m ≤ 20)."""
    r = rbm.to(torch.float64)
    h = binary_states(r.n_hidden, dtype=torch.float64)
    p = torch.softmax(-r.hidden_free_energy(h), 0)
    return (p[:, None] * r.visible_mean(h)).sum(0)


def chi2(a: torch.Tensor, b: torch.Tensor, var: torch.Tensor) -> float:
    """Σ (a − b)² / var over the pixels whose variance is not zero."""
    keep = var > 0
    return float(((a - b)[keep] ** 2 / var[keep]).sum())


def chain_means(rbm, x: torch.Tensor, chains: int, sweeps: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    v0 = x[torch.randint(len(x), (chains,), generator=g)].to(rbm.dtype).contiguous()
    return rbm.gibbs(v0, sweeps, generator=g).double().mean(0)


def run(*, quick: bool, folder: Path) -> pd.DataFrame:
    models = {m.name: trained_model(m, quick=quick, folder=folder) for m in MODELS
              if m.name in ("digits/16", "digits/64")}
    x = load_dataset("digits-binary").train
    chains, sweeps = (2_000, 200) if quick else (20_000, 2_000)
    seeds, ref_seeds = (4, 3) if quick else (100, 20)
    burn_in = 200 if quick else 2_000
    ways = {**WAYS, "calls": QUICK_CALL} if quick else WAYS
    rows = []

    def add(check: str, way: str, run_id: str, value: float) -> None:
        rows.append({"check": check, "way": way, "run": run_id, "value": value,
                     "chains": chains, "sweeps": sweeps,
                     "call_multiply_adds": ways.get(way, float("nan"))})

    r16, r64 = models["digits/16"], models["digits/64"]
    p = exact_means(r16)
    ref16 = exact_draws(r16, 10_000, seed=123)
    for s in range(seeds):
        add("mmd16", "exact draws", str(s), mmd_hamming(exact_draws(r16, 2_000, seed=s), ref16))
    means64 = {}
    for way, limit in ways.items():
        gibbs_kernels.SLICE_MULTIPLY_ADDS = limit
        for s in range(3):
            m = chain_means(r16, x, chains, sweeps, seed=s)
            add("means16", way, str(s), chi2(m, p, p * (1 - p) / chains))
        for s in range(2):
            means64[way, s] = chain_means(r64, x, chains, sweeps, seed=s)
        gibbs = samplers.get("gibbs", num_sweeps=200 if quick else 1_000)
        for s in range(seeds):
            add("mmd16", way, str(s), mmd_hamming(gibbs.sample(r16, 2_000, seed=s).v, ref16))
        ref64 = long_gibbs(r64, 10_000, seed=1_000, init_data=x, burn_in=burn_in)
        for s in range(ref_seeds):
            v = long_gibbs(r64, 2_000, seed=2_000 + s, init_data=x, burn_in=burn_in)
            add("ref64", way, str(s), mmd_hamming(v, ref64))
    gibbs_kernels.SLICE_MULTIPLY_ADDS = WAYS["calls"]  # the library's again
    for (a, ma), (b, mb) in itertools.combinations(means64.items(), 2):
        pooled = (ma + mb) / 2
        add("pairs64", " / ".join(sorted({a[0], b[0]})), f"{a[1]}-{b[1]}",
            chi2(ma, mb, pooled * (1 - pooled) * 2 / chains))
    return pd.DataFrame(rows)


def plot(df: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    checks = list(dict.fromkeys(df["check"]))
    fig, axes = plt.subplots(1, len(checks), figsize=(3.2 * len(checks), 3.2))
    for ax, check in zip(axes, checks, strict=True):
        part = df[df["check"] == check]
        ways = list(dict.fromkeys(part["way"]))
        ax.boxplot([part.loc[part["way"] == w, "value"] for w in ways], showfliers=True)
        ax.set_xticks(range(1, len(ways) + 1), ways, rotation=20, fontsize=7)
        ax.set_title(check, fontsize=9)
        if check in ("means16", "pairs64"):
            ax.axhline(64, ls="--", c="grey", lw=0.8)
    axes[0].set_ylabel("χ² (64 pixels) or MMD²")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny budgets (< 30 s)")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder for Parquet and PNG")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    df = run(quick=args.quick, folder=args.out / MODEL_DIR)
    df.to_parquet(args.out / "gibbs_calls.parquet", index=False)
    plot(df, args.out / "gibbs_calls.png")
    table = df.groupby(["check", "way"], sort=False)["value"].agg(
        ["count", "mean", "std", "min", "max"])
    with pd.option_context("display.width", 200):
        print(table.to_string(float_format=lambda v: f"{v:.4g}"))
    print(f"total wall time {time.perf_counter() - start:.0f} s")
    return df


if __name__ == "__main__":
    main()
