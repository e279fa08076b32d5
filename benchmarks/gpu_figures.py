"""GPU against CPU: DSM steps/s, exact-m DSM steps/s, Gibbs sweeps/s.

For each device present (the CPU, and CUDA when torch sees a GPU), on the same code path:

    dsm-tap      DSM steps/s, digits-binary, 16 hidden, the CPU default recipe (TAP m, 10 sweeps,
                 RECOMMENDED_DSM, batch 64 × 4 noise draws)
    dsm-exact    DSM steps/s with exact m (chunked enumeration of the 2^16 hidden states)
    gibbs        block-Gibbs sweeps/s of a 784×500 RBM with 10^4 and 10^5 chains (compiled
                 kernel on the CPU, torch-device on the GPU)
    train        with --train, on the GPU only: the default command ``rbmdiff train --data
                 digits-binary --n-hidden 16 --device cuda`` (its m by rbmdiff.training_defaults'
                 cost rule on that device), and the same with 3× its steps; wall seconds and
                 exact test log-likelihood of each

Prints a table and writes ``<out>/gpu_figures.parquet``.  One prepared run for a machine with
a GPU; on a CPU-only machine it measures the CPU column only.

    python benchmarks/gpu_figures.py            # the full figures (minutes on a GPU)
    python benchmarks/gpu_figures.py --quick    # tiny sizes (seconds)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from rbmdiff.data import load_dataset
from rbmdiff.device import to_device
from rbmdiff.gibbs_kernels import provenance
from rbmdiff.rbm import RBM
from rbmdiff.score import PosteriorScore
from rbmdiff.sde import VPSDE
from rbmdiff.train import RECOMMENDED_DSM, dsm_loss, init_rbm

RESULTS = Path(__file__).parent / "results"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def dsm_steps_per_s(device: torch.device, m_method: str, steps: int, n_hidden: int) -> float:
    """Forward + backward DSM steps per second at the recipe's batch (64 rows × 4 draws)."""
    x = load_dataset("digits-binary").train.to(torch.float32)
    rbm = to_device(init_rbm(x, n_hidden, seed=0, scale=0.3), device).requires_grad_()
    score = PosteriorScore(sde=VPSDE(0.1, 20.0), m_method=m_method, sweeps=10)
    g = torch.Generator(device=device).manual_seed(0)
    v = x[:64].to(device)
    kw = {"weighting": "likelihood", "n_noise": RECOMMENDED_DSM["n_noise"], "stratified": True}
    dsm_loss(rbm, score, v, generator=g, **kw).backward()  # warm-up
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        dsm_loss(rbm, score, v, generator=g, **kw).backward()
    _sync(device)
    return steps / (time.perf_counter() - start)


def gibbs_sweeps_per_s(device: torch.device, chains: int, sweeps: int, shape) -> float:
    """Block-Gibbs sweeps per second (all chains together) of an n×m RBM."""
    rbm = to_device(RBM.random(*shape, scale=0.05, seed=0), device)
    g = torch.Generator(device=device).manual_seed(0)
    v = torch.bernoulli(torch.full((chains, shape[0]), 0.5, device=device), generator=g)
    rbm.gibbs(v, 1, generator=g)  # warm-up
    _sync(device)
    start = time.perf_counter()
    rbm.gibbs(v, sweeps, generator=g)
    _sync(device)
    return sweeps / (time.perf_counter() - start)


def train_rows(device: torch.device, steps_factors=(1, 3)) -> list[dict]:
    """The default ``rbmdiff train`` on ``device`` (through the CLI), and with its steps × k."""
    from rbmdiff.cli import main as cli
    from rbmdiff.evaluate import evaluate
    from rbmdiff.training_defaults import choose

    data = load_dataset("digits-binary")
    steps = choose(n_visible=data.n_visible, n_hidden=16, rows=len(data.train),
                   device=device)["steps"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in steps_factors:
            out = Path(tmp) / f"m{k}.pt"
            argv = ["train", "--data", "digits-binary", "--n-hidden", "16", "--quiet",
                    "--device", device.type, "--out", str(out)]
            if k != 1:
                argv += ["--steps", str(k * steps)]
            start = time.perf_counter()
            if cli(argv) != 0:
                raise SystemExit(f"rbmdiff {' '.join(argv)} failed")
            wall = time.perf_counter() - start
            rbm = RBM.load(out)
            ll = evaluate(rbm, data.test)["test_log_likelihood"]
            what = " ".join(argv[1:5]) + f" --device {device.type}" + (
                f" --steps {k * steps}" if k != 1 else "")
            print(json.dumps({"train": what, "wall_s": wall, "test_ll": ll,
                              "m_method": rbm.meta.get("m_method")}), flush=True)
            rows += [{"figure": "train wall s", "size": what, "value": wall},
                     {"figure": "train test log-lik", "size": what, "value": ll}]
    return rows


def measure(device: torch.device, quick: bool) -> list[dict]:
    hidden = 8 if quick else 16
    rows = [
        {"figure": "dsm-tap steps/s", "size": f"digits, {hidden} hidden, 64×4 rows",
         "value": dsm_steps_per_s(device, "tap", 3 if quick else 50, hidden)},
        {"figure": "dsm-exact steps/s", "size": f"digits, {hidden} hidden, 64×4 rows",
         "value": dsm_steps_per_s(device, "exact", 1 if quick else (2 if device.type == "cpu"
                                                                    else 20), hidden)},
    ]
    shape = (64, 32) if quick else (784, 500)
    for chains in ((100,) if quick else (10_000, 100_000)):
        if device.type == "cpu" and chains > 10_000:
            continue  # 10^5 chains at 784×500 take minutes per sweep on two cores
        rows.append({"figure": "gibbs sweeps/s", "size": f"{shape[0]}×{shape[1]}, {chains} chains",
                     "value": gibbs_sweeps_per_s(device, chains, 2 if quick else 10, shape)})
    print(f"{device}: Gibbs kernel {provenance(torch.zeros(shape, device=device))['kernel']}",
          flush=True)
    for r in rows:
        r["device"] = str(device)
        print(json.dumps(r), flush=True)
    return rows


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes")
    p.add_argument("--train", action="store_true",
                   help="also time the default `rbmdiff train` on the GPU and score it")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available()
                                       else [])
    rows = [r for d in devices for r in measure(d, args.quick)]
    if args.train:
        for d in devices[1:]:
            rows += [{**r, "device": str(d)} for r in train_rows(d)]
    df = pd.DataFrame(rows)
    table = df.pivot_table(index=["figure", "size"], columns="device", values="value",
                           sort=False)
    print(table.to_string(float_format=lambda x: f"{x:.3g}"))
    args.out.mkdir(parents=True, exist_ok=True)
    df.to_parquet(args.out / "gpu_figures.parquet", index=False)
    return df


if __name__ == "__main__":
    main()
