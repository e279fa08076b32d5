"""The power of the QPU route's verdict (rbmdiff.samplers.qpu.check): how often it says "no"
to reads that are not the model's law, at the read counts people use, and how often it says
"no" to exact reads (its false-alarm rate, at most alpha = 1 % by construction).

    python benchmarks/qpu_verdict.py [--quick]

Reads are exact draws from a perturbed model: the model at β = 1 − δ (too hot), or with
N(0, σ²) added to every W_ij (control errors of the size a QPU's are). Each cell is the
fraction of R replicates the verdict rejects, beside the exact TV between the perturbed and
the true law (the visible law for the 8×6 model, the hidden law for digits 64×16) and the TV
floor of N perfect reads. Writes benchmarks/results/qpu_verdict.json and prints the table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from rbmdiff import RBM
from rbmdiff.exact import binary_states, total_variation, visible_law
from rbmdiff.samplers.qpu.check import fidelity, reference

ROOT = Path(__file__).resolve().parent


def exact_draws(rbm: RBM, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n exact (v, h) of ``rbm``: the smaller layer from its exact law, the other given it."""
    W, b, c = (t.detach().to(torch.float64) for t in rbm.parameters())
    if rbm.n_visible <= rbm.n_hidden:
        states, p = visible_law(rbm.to(torch.float64))
        v = states[torch.multinomial(p, n, replacement=True, generator=g)]
        return v, torch.bernoulli(torch.sigmoid(c + v @ W), generator=g)
    p = layer_law(rbm)
    h = binary_states(rbm.n_hidden, dtype=torch.float64)[
        torch.multinomial(p, n, replacement=True, generator=g)]
    return torch.bernoulli(torch.sigmoid(b + h @ W.T), generator=g), h


def layer_law(rbm: RBM) -> torch.Tensor:
    """The exact law of the smaller layer (binary_states order)."""
    if rbm.n_visible <= rbm.n_hidden:
        return visible_law(rbm.to(torch.float64))[1]
    W, b, c = (t.detach().to(torch.float64) for t in rbm.parameters())
    h = binary_states(rbm.n_hidden, dtype=torch.float64)
    return torch.softmax(h @ c + torch.nn.functional.softplus(b + h @ W.T).sum(1), 0)


def perturbed(rbm: RBM, kind: str, size: float, seed: int) -> RBM:
    W, b, c = (t.detach().to(torch.float64) for t in rbm.parameters())
    if kind == "hot":
        return RBM((1 - size) * W, (1 - size) * b, (1 - size) * c)
    g = torch.Generator().manual_seed(seed)
    return RBM(W + size * torch.randn(W.shape, generator=g, dtype=torch.float64), b, c)


def rejection_rate(rbm: RBM, law_of: RBM, n: int, reps: int, seed: int) -> float:
    ref = reference(rbm)
    g = torch.Generator().manual_seed(seed)
    rejected = 0
    for r in range(reps):
        v, h = exact_draws(law_of, n, g)
        rejected += not fidelity(rbm, v, h, ref, seed=seed + r)["fidelity_ok"]
    return rejected / reps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    reps = 10 if args.quick else 40
    models = {"random 8×6": RBM.random(8, 6, scale=1.0, seed=11, dtype=torch.float64)}
    digits = ROOT.parent / "tests" / "data" / "digits16_dense.pt"
    if digits.is_file():
        models["digits 64×16 dense"] = RBM.load(digits).to(torch.float64)
    cases = [("exact", 0.0), ("hot", 0.02), ("hot", 0.05), ("hot", 0.1),
             ("noise", 0.02), ("noise", 0.05), ("noise", 0.1)]
    rows = []
    for name, rbm in models.items():
        law = layer_law(rbm)
        for n in (1000, 4000):
            g = torch.Generator().manual_seed(1)
            idx = torch.multinomial(law, n, replacement=True, generator=g)
            floor = total_variation(torch.bincount(idx, minlength=law.numel()) / n, law)
            for kind, size in cases:
                other = rbm if kind == "exact" else perturbed(rbm, kind, size, seed=7)
                rows.append({"model": name, "reads": n, "departure": kind, "size": size,
                             "tv_to_model": total_variation(layer_law(other), law),
                             "floor": floor,
                             "rejected": rejection_rate(rbm, other, n, reps, seed=3)})
                print(rows[-1], flush=True)
    (ROOT / "results").mkdir(exist_ok=True)
    (ROOT / "results" / "qpu_verdict.json").write_text(json.dumps(rows, indent=1))
    print(f"\n{reps} replicates per cell\n")
    print("| model | reads | departure | exact TV of the departure | TV floor of N reads "
          "| rejected |\n|---|---|---|---|---|---|")
    for r in rows:
        what = "none (exact reads)" if r["departure"] == "exact" else (
            f"β = {1 - r['size']:g}" if r["departure"] == "hot" else f"W + N(0, {r['size']:g}²)")
        print(f"| {r['model']} | {r['reads']} | {what} | {r['tv_to_model']:.3f} | "
              f"{r['floor']:.3f} | {100 * r['rejected']:.0f} % |")


if __name__ == "__main__":
    main()
