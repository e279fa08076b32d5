"""Does the device buy anything over random starts? Block-Gibbs post-processing of a QPU run's
reads (``postprocess_sweeps=k``) against Gibbs from random starts and Gibbs from the data, at
equal sweeps, with exact TV to the model's law.

    python benchmarks/qpu_remedy.py [--quick]

Devices: the annealer mock (freeze-out, β unknown), and a noisy thermal device — the thermal
mock with N(0, σ²) control noise added to every programmed h and J on each call (σ = 0.03 in
programmed units, the order of Advantage's published control errors). Models (tests/data,
benchmarks/qpu_models.py): bas-4x4 16×16 (bimodal; TV of the visible law) and digits 64×16
dense (TV of the hidden law, Rao–Blackwellised as in benchmarks/qpu_route.py). Each start
set has the run's N rows; k sweeps of the logical RBM follow. Writes
benchmarks/results/qpu_remedy.json and prints the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path

import dimod
import numpy as np
import torch

from rbmdiff import RBM
from rbmdiff.data import load_dataset
from rbmdiff.samplers.qpu import QPUSampler

sys.path.insert(0, str(Path(__file__).parent))
from qpu_route import hidden_tv, tv

ROOT = Path(__file__).resolve().parent
SWEEPS = (0, 1, 3, 10, 30, 100, 1000)
MODELS = (("bas4x4_dense_ml1000", "bas-4x4 16×16 (KL 0.010)", "bas-4x4"),
          ("digits16_dense", "digits 64×16 dense", "digits"))


class ControlNoise(dimod.Sampler):
    """``child`` (a mock's substitute sampler) on the problem with N(0, sigma²) added to every
    h and J, drawn afresh each call from the call's seed."""

    def __init__(self, child: dimod.Sampler, sigma: float) -> None:
        self.child, self.sigma = child, sigma

    @property
    def parameters(self) -> dict:
        return self.child.parameters

    @property
    def properties(self) -> dict:
        return self.child.properties

    def sample(self, bqm, *, seed: int | None = None, **kw):
        rng = np.random.default_rng([7, seed or 0])
        noisy = bqm.copy()
        for v in noisy.variables:
            noisy.add_linear(v, self.sigma * rng.normal())
        for u, v in list(noisy.quadratic):
            noisy.add_quadratic(u, v, self.sigma * rng.normal())
        ss = self.child.sample(noisy, seed=seed, **kw)
        return dimod.SampleSet.from_samples_bqm((ss.record.sample, ss.variables), bqm)


class NoisyThermal(QPUSampler):
    """The thermal mock with control noise (:class:`ControlNoise`)."""

    def __init__(self, sigma: float, **kw) -> None:
        super().__init__(mock="thermal", **kw)
        self.sigma = sigma

    def device(self, *args, **kw):
        dev = super().device(*args, **kw)
        dev.sampler.substitute_sampler = ControlNoise(dev.sampler.substitute_sampler, self.sigma)
        dev.name += f" + control noise σ {self.sigma:g}"
        return dev


def starts(kind: str, reads: torch.Tensor, data: torch.Tensor, g: torch.Generator):
    n = len(reads)
    if kind == "device":
        return reads
    if kind == "random":
        return torch.bernoulli(torch.full_like(reads, 0.5), generator=g)
    idx = torch.randint(len(data), (n,), generator=g)
    return torch.bernoulli(data[idx].to(torch.float64), generator=g)  # grey levels: a draw


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n = 1000 if args.quick else 4000
    rows = []
    with tempfile.TemporaryDirectory() as emb:
        for stem, label, data_name in MODELS:
            rbm = RBM.load(ROOT.parent / "tests" / "data" / f"{stem}.pt").to(torch.float64)
            dist = hidden_tv if rbm.n_visible > 20 else tv
            data = load_dataset(data_name).train
            devices = {"annealer mock": QPUSampler(mock="annealer", embedding_dir=emb),
                       "noisy thermal (σ 0.03)": NoisyThermal(0.03, embedding_dir=emb)}
            for dev_name, sampler in devices.items():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    s = sampler.sample(rbm, n, seed=0)
                info = s.info
                for kind in ("device", "random", "data"):
                    g = torch.Generator().manual_seed(1)
                    v0 = starts(kind, s.v.to(torch.float64), data, g)
                    for k in SWEEPS:
                        v = rbm.gibbs(v0, k, generator=torch.Generator().manual_seed(2))
                        rows.append({"model": label, "device": dev_name, "start": kind,
                                     "sweeps": k, "tv": dist(rbm, v), "reads": n,
                                     "raw_verdict": info["fidelity_ok"],
                                     "raw_worst": info["fidelity_worst"],
                                     "beta_model": info["beta_model"]})
                print(label, dev_name, "done", flush=True)
    (ROOT / "results").mkdir(exist_ok=True)
    (ROOT / "results" / "qpu_remedy.json").write_text(json.dumps(rows, indent=1))
    print(table(rows))


def table(rows: list[dict]) -> str:
    head = " | ".join(f"k={k}" for k in SWEEPS)
    lines = [f"| model | device | start | {head} |", "|" + "---|" * (3 + len(SWEEPS))]
    keys = sorted({(r["model"], r["device"], r["start"]) for r in rows},
                  key=lambda t: (t[0], t[1], ("device", "random", "data").index(t[2])))
    for key in keys:
        tvs = {r["sweeps"]: r["tv"] for r in rows if (r["model"], r["device"], r["start"]) == key}
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | "
                     + " | ".join(f"{tvs[k]:.3f}" for k in SWEEPS) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
