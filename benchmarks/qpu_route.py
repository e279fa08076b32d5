"""Does the ``qpu`` route sample the RBM? Exact TV to the model's law of gibbs, anneal and qpu
on both mocks, with the qpu run's calibration facts, one model per row.

    python benchmarks/qpu_route.py [--quick] [--models DIR]

Models (benchmarks/qpu_models.py says how each was made; default DIR tests/data):
DIR/bas4x4_{dense,dense_ml1000,zephyr}.pt — TV of the visible law (2^16 states) — and
DIR/digits16_{dense,zephyr}.pt — TV of the hidden marginal (2^16 states): the law of the 16
hidden units, p(h) ∝ exp(c·h + Σ_i softplus(b_i + (W h)_i)), against the reads' estimate
mean_r p(h | v_r) (Rao–Blackwellised, so every sampler is judged from its visible reads alone).
Prints a markdown table (docs/notes/2026-12-07-qpu-route.md; BENCHMARKS.md "QPU route" shows
its TV and verdict columns) and writes
benchmarks/results/qpu_route.json. --quick: 2,000 reads instead of 10,000 (1,000 for digits).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from pathlib import Path

import torch

from rbmdiff import RBM
from rbmdiff.exact import binary_states, empirical_law, total_variation, visible_law
from rbmdiff.samplers import get

ROOT = Path(__file__).resolve().parent
QPU_FIELDS = ("beta_model", "chain_break_fraction", "prefactor", "chain_strength", "rounds",
              "qpu_access_time", "energy_z", "chain_length_max", "chain_strength_factor",
              "fidelity_ok", "fidelity_worst", "fidelity_p")


def tv(rbm: RBM, v: torch.Tensor) -> float:
    return total_variation(empirical_law(v), visible_law(rbm)[1])


def hidden_law(rbm: RBM) -> torch.Tensor:
    """Exact p(h) over the 2^m hidden states (binary_states order)."""
    h = binary_states(rbm.n_hidden, dtype=torch.float64)
    W, b, c = (t.to(torch.float64) for t in (rbm.W, rbm.b, rbm.c))
    logp = h @ c + torch.nn.functional.softplus(b + h @ W.T).sum(1)
    return torch.softmax(logp, 0)


def hidden_estimate(rbm: RBM, v: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """mean over reads of p(h | v) on the 2^m hidden states."""
    h = binary_states(rbm.n_hidden, dtype=torch.float64)
    W, c = rbm.W.to(torch.float64), rbm.c.to(torch.float64)
    a = v.to(torch.float64) @ W + c
    out = torch.zeros(h.shape[0], dtype=torch.float64)
    for part in a.split(chunk):
        logq = h @ torch.nn.functional.logsigmoid(part).T + (1 - h) @ \
            torch.nn.functional.logsigmoid(-part).T
        out += logq.exp().sum(1)
    return out / a.shape[0]


def hidden_tv(rbm: RBM, v: torch.Tensor) -> float:
    return total_variation(hidden_estimate(rbm, v), hidden_law(rbm))


def hidden_floor(rbm: RBM, n: int, seed: int) -> float:
    """hidden_tv of n exact reads: h ~ p(h), then v ~ p(v | h)."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.multinomial(hidden_law(rbm), n, replacement=True, generator=g)
    h = binary_states(rbm.n_hidden, dtype=torch.float64)[idx]
    pv = torch.sigmoid(rbm.b.to(torch.float64) + h @ rbm.W.to(torch.float64).T)
    return hidden_tv(rbm, torch.bernoulli(pv, generator=g))


def visible_floor(rbm: RBM, n: int, seed: int) -> float:
    """tv of n exact reads of the visible law."""
    g = torch.Generator().manual_seed(seed)
    p = visible_law(rbm)[1].to(torch.float64)
    q = torch.bincount(torch.multinomial(p, n, replacement=True, generator=g),
                       minlength=p.numel())
    return total_variation(q / n, p)


def row(name: str, rbm: RBM, n: int, seed: int, emb_dir: str) -> dict:
    out: dict = {"model": name, "reads": n}
    hidden = rbm.n_visible > 20
    tv = hidden_tv if hidden else globals()["tv"]
    out["floor"] = (hidden_floor if hidden else visible_floor)(rbm, n, seed)
    out["gibbs"] = tv(rbm, get("gibbs", num_sweeps=1000).sample(rbm.to(torch.float32), n,
                                                            seed=seed).v)
    out["anneal"] = tv(rbm, get("anneal", num_sweeps=1000).sample(rbm, n, seed=seed).v)
    for kind in ("thermal", "annealer"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            s = get("qpu", mock=kind, embedding_dir=emb_dir).sample(rbm, n, seed=seed)
        out[f"qpu_{kind}"] = tv(rbm, s.v)
        out[kind] = {k: s.info[k] for k in QPU_FIELDS}
        out[kind]["warnings"] = [str(w.message) for w in caught]
    return out


MODELS = (("bas4x4_dense", "bas-4x4 dense (KL 0.075)", 2000),
          ("bas4x4_dense_ml1000", "bas-4x4 dense (KL 0.010)", 2000),
          ("bas4x4_zephyr", "bas-4x4 zephyr-native (KL 0.373)", 2000),
          ("digits16_dense", "digits 64×16 dense (hidden TV)", 1000),
          ("digits16_zephyr", "digits 64×16 zephyr-native (hidden TV)", 1000))


def _chain(q: dict) -> str:
    """'0.818 (1.8)': chain strength and its factor, '2.000 (cap)' for the solver's strongest
    chain; 'no chains' for one qubit per unit."""
    if q["chain_length_max"] == 1:
        return "no chains"
    factor = q["chain_strength_factor"]
    return f"{q['chain_strength']:.3f} ({'cap' if factor is None else format(factor, 'g')})"


def _verdict(q: dict) -> str:
    """'pass' or 'fail: <E>' (the worst statistic) of the route's test against the model."""
    return "pass" if q["fidelity_ok"] else f"fail: {q['fidelity_worst']}"


def table(rows: list[dict]) -> str:
    lines = ["| model | reads | TV exact reads | TV gibbs-1000 | TV anneal-1000 | TV qpu thermal "
             "| TV qpu annealer "
             "| β_model (th / an) | broken chains (th / an) | prefactor (th / an) | chain "
             "strength (factor) (th / an) | rounds (th / an) | verdict (th / an) "
             "| QPU access µs (an) |",
             "|" + "---|" * 14]
    for r in rows:
        t, a = r["thermal"], r["annealer"]
        lines.append(
            f"| {r['model']} | {r['reads']} | {r['floor']:.3f} | {r['gibbs']:.3f} | "
            f"{r['anneal']:.3f} | "
            f"{r['qpu_thermal']:.3f} | {r['qpu_annealer']:.3f} | {t['beta_model']:.3f} / "
            f"{a['beta_model']:.3f} | {100 * t['chain_break_fraction']:.2f} % / "
            f"{100 * a['chain_break_fraction']:.2f} % | {t['prefactor']:.3f} / "
            f"{a['prefactor']:.3f} | {_chain(t)} / {_chain(a)} | {t['rounds']} / "
            f"{a['rounds']} | {_verdict(t)} / {_verdict(a)} | "
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
        for stem, label, reads in MODELS:
            path = args.models / f"{stem}.pt"
            if path.is_file():
                rows.append(row(label, RBM.load(path), reads if args.quick else n, args.seed,
                                emb))
                print(rows[-1]["model"], "done", flush=True)
    (ROOT / "results").mkdir(exist_ok=True)
    (ROOT / "results" / "qpu_route.json").write_text(json.dumps(rows, indent=1, default=str))
    print(table(rows))
    for r in rows:
        for kind in ("thermal", "annealer"):
            for w in r[kind]["warnings"]:
                print(f"{r['model']} {kind}: {w}")


if __name__ == "__main__":
    main()
