"""Does the ``qpu`` route sample the RBM? Exact TV to the model's law of gibbs, anneal and qpu
on both mocks, with the qpu run's calibration facts, one model per row.

    python benchmarks/qpu_route.py [--quick] [--models DIR]

Models: DIR/bas4x4_{dense,zephyr}.pt (benchmarks/qpu_models.py; default tests/data). Prints a
markdown table (the BENCHMARKS.md "QPU route" section) and writes
benchmarks/results/qpu_route.json. --quick: 2,000 reads instead of 10,000.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from pathlib import Path

import torch

from rbmdiff import RBM
from rbmdiff.exact import empirical_law, total_variation, visible_law
from rbmdiff.samplers import get

ROOT = Path(__file__).resolve().parent
QPU_FIELDS = ("beta_model", "chain_break_fraction", "prefactor", "chain_strength", "rounds",
              "qpu_access_time", "energy_z", "chain_length_max", "chain_strength_factor")


def tv(rbm: RBM, v: torch.Tensor) -> float:
    return total_variation(empirical_law(v), visible_law(rbm)[1])


def row(name: str, rbm: RBM, n: int, seed: int, emb_dir: str) -> dict:
    out: dict = {"model": name, "reads": n}
    out["gibbs"] = tv(rbm, get("gibbs", num_sweeps=1000).sample(rbm.to(torch.float32), n,
                                                            seed=seed).v)
    out["anneal"] = tv(rbm, get("anneal", num_sweeps=1000).sample(rbm, n, seed=seed).v)
    for kind in ("thermal", "annealer"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            s = get("qpu", mock=kind, calibration_reads=2000, embedding_dir=emb_dir).sample(
                rbm, n, seed=seed)
        out[f"qpu_{kind}"] = tv(rbm, s.v)
        out[kind] = {k: s.info[k] for k in QPU_FIELDS}
        out[kind]["warnings"] = [str(w.message) for w in caught]
    return out


def _chain(q: dict) -> str:
    """'0.818 (1.8)': chain strength and its factor; 'no chains' for one qubit per unit."""
    if q["chain_length_max"] == 1:
        return "no chains"
    return f"{q['chain_strength']:.3f} ({q['chain_strength_factor']:g})"


def table(rows: list[dict]) -> str:
    lines = ["| model | reads | TV gibbs-1000 | TV anneal-1000 | TV qpu thermal | TV qpu annealer "
             "| β_model (th / an) | broken chains (th / an) | prefactor (th / an) | chain "
             "strength (factor) (th / an) | rounds (th / an) | energy z (th / an) "
             "| QPU access µs (an) |",
             "|" + "---|" * 13]
    for r in rows:
        t, a = r["thermal"], r["annealer"]
        lines.append(
            f"| {r['model']} | {r['reads']} | {r['gibbs']:.3f} | {r['anneal']:.3f} | "
            f"{r['qpu_thermal']:.3f} | {r['qpu_annealer']:.3f} | {t['beta_model']:.3f} / "
            f"{a['beta_model']:.3f} | {100 * t['chain_break_fraction']:.2f} % / "
            f"{100 * a['chain_break_fraction']:.2f} % | {t['prefactor']:.3f} / "
            f"{a['prefactor']:.3f} | {_chain(t)} / {_chain(a)} | {t['rounds']} / "
            f"{a['rounds']} | {t['energy_z']:.1f} / {a['energy_z']:.1f} | "
            f"{a['qpu_access_time']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--models", type=Path, default=ROOT.parent / "tests" / "data")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    n = 2000 if args.quick else 10_000
    rows = []
    with tempfile.TemporaryDirectory() as emb:
        for name in ("dense", "zephyr"):
            path = args.models / f"bas4x4_{name}.pt"
            if path.is_file():
                rows.append(row(f"bas-4x4 {name}", RBM.load(path), n, args.seed, emb))
    print(table(rows))
    for r in rows:
        for kind in ("thermal", "annealer"):
            for w in r[kind]["warnings"]:
                print(f"{r['model']} {kind}: {w}")
    (ROOT / "results").mkdir(exist_ok=True)
    (ROOT / "results" / "qpu_route.json").write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
