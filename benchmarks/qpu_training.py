"""Training through the device: PCD whose negative phase is the QPU route (``--negative qpu``,
the annealer mock, fresh reads each step) against DSM with TAP m and CD-1, on digits-binary
with 16 hidden units, equal steps; then how each model's samples score on the route.

    python benchmarks/qpu_training.py [--steps 1000] [--out DIR]

Each model is trained by the command a user types (printed), scored by its exact test
log-likelihood (2^16 hidden states enumerated), and sampled on the QPU route (annealer mock,
calibrated, 2,000 reads): the route's verdict, β_model, and the hidden-law TV of the reads
against a perfect sample's. Writes benchmarks/results/qpu_training.json; prints the table.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from rbmdiff import RBM
from rbmdiff.data import load_dataset
from rbmdiff.exact import log_likelihood
from rbmdiff.samplers.qpu import QPUSampler

sys.path.insert(0, str(Path(__file__).parent))
from qpu_route import hidden_floor, hidden_tv

ROOT = Path(__file__).resolve().parent
BASE = "rbmdiff train --data digits-binary --n-hidden 16 --seed 0 --quiet --threads 1"
RUNS = {
    "DSM (TAP m)": "--method dsm --m-method tap",
    "CD-1": "--method cd --cd-k 1",
    "PCD, negative phase on the QPU route (annealer mock)":
        "--method pcd --negative qpu --negative-set mock='\"annealer\"' "
        "--negative-set chain_strength=2.0",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=Path("scratch") / "qpu_training")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    test = load_dataset("digits-binary").test
    rows = []
    with tempfile.TemporaryDirectory() as emb:
        for label, extra in RUNS.items():
            path = args.out / f"{len(rows)}.pt"
            cmd = f"{BASE} {extra} --steps {args.steps} --out {path}"
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "rbmdiff.cli", *shlex.split(cmd)[1:]],
                           check=True, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            wall = time.perf_counter() - start
            rbm = RBM.load(path).to(torch.float64)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                s = QPUSampler(mock="annealer", embedding_dir=emb).sample(rbm, 2000, seed=0)
            rows.append({"method": label, "command": cmd, "train_wall_s": wall,
                         "test_ll": float(log_likelihood(rbm, test).mean()),
                         "route_verdict": s.info["fidelity_ok"],
                         "route_worst": s.info["fidelity_worst"],
                         "route_beta_model": s.info["beta_model"],
                         "route_hidden_tv": hidden_tv(rbm, s.v),
                         "floor_hidden_tv": hidden_floor(rbm, 2000, seed=0)})
            print(rows[-1], flush=True)
    (ROOT / "results").mkdir(exist_ok=True)
    (ROOT / "results" / "qpu_training.json").write_text(json.dumps(rows, indent=1))
    print(f"\n{args.steps} steps each, batch 64\n")
    print("| method | exact test LL | train wall s | route verdict | β_model | hidden TV "
          "(floor) |\n|---|---|---|---|---|---|")
    for r in rows:
        verdict = "pass" if r["route_verdict"] else f"fail: {r['route_worst']}"
        print(f"| {r['method']} | {r['test_ll']:.2f} | {r['train_wall_s']:.0f} | {verdict} | "
              f"{r['route_beta_model']:.3f} | {r['route_hidden_tv']:.3f} "
              f"({r['floor_hidden_tv']:.3f}) |")


if __name__ == "__main__":
    main()
