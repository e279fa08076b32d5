"""Sampler error against model error (BENCHMARKS.md §2): each route's distance to the model's
law beside its distance to the data, and the floor a perfect sample of the same size scores.

    to model:  d(route's samples, R),  R a perfect sample of p_θ (REFERENCE_ROWS rows)
    floor:     d(P_k, R) over FLOOR_DRAWS independent perfect samples P_k of the route's size
    model:     d(P_k, held-out data): the model's own error, which no sampler removes
               (and the mean free energy of P_k, which every sampler of p_θ should match)

A route whose distance to the model is within the floor's mean + FLOOR_SD sd samples the
model as well as a perfect sampler of that size can show; the excess is its sampler error.
"""

from __future__ import annotations

import math
import statistics

import torch

from rbmdiff.exact import EXACT_LAW_BITS, empirical_law, total_variation, visible_law
from rbmdiff.metrics import corr_rmse, mean_abs_err, mmd_hamming, sample_record
from rbmdiff.rbm import RBM
from rbmdiff.reference import perfect_sampler
from rbmdiff.samplers.base import Samples
from rbmdiff.seeds import SEED_BITS, derive

DISTANCES = ("mmd", "corr_rmse", "mean_abs_err")  # the §7 distances, taken to data and model
FLOOR_DRAWS = 20  # perfect samples behind each floor (its mean and sd)
REFERENCE_ROWS = 10_000  # rows of the perfect sample R (MMD subsamples 2,000, metrics.py)
# "At the floor": every distance within the floor's mean + 4 sd.  Three or four statistics per
# route, each an excess over a mean and sd estimated from 20 draws (Student t, 19 dof):
# P(t > 4) ≈ 4e-4 each, so a perfect sampler is called off the floor in ~0.1 % of routes; at
# 3 sd (and 10 draws) that was ~5 %: the default run's anneal route was flagged on noise
# (mean_abs_err +3.5 sd against one 10-draw floor, +2.3 against another; seeds 11, 12: +1.1,
# −0.3; 1,000 sweeps: +0.8).
FLOOR_SD = 4.0


def to_model(v: torch.Tensor, ref: torch.Tensor, law: torch.Tensor | None) -> dict[str, float]:
    """Distances of samples v (B, n) to the model: against the perfect sample ref (R, n) and,
    where the law p_θ (2^n,) is enumerable, the exact total variation."""
    out = {"mmd": mmd_hamming(v, ref), "corr_rmse": corr_rmse(v, ref),
           "mean_abs_err": mean_abs_err(v, ref)}
    if law is not None:
        out["tv_exact"] = total_variation(empirical_law(v), law)
    return out


def _spread(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values)}


def yardstick(rbm: RBM, train: torch.Tensor, test: torch.Tensor,
              draws: dict[str, torch.Tensor], *, seed: int,
              floor_draws: int = FLOOR_DRAWS, reference_rows: int = REFERENCE_ROWS) -> dict:
    """The to-model distances of each route's draws (route -> (B, n) of 0/1), the floor at
    each sample size, and the model's own distance to the held-out rows ``test``.

    -> {"reference": how R was drawn, "floor": {str(N): {"to_model", "to_data"}: stat ->
    {mean, sd}}, "routes": route -> {"to_model": stat -> value, "excess_sd": stat -> z,
    "at_floor": bool}}."""
    perfect = perfect_sampler(rbm, init_data=train)
    below = 2**SEED_BITS
    ref = perfect.draw(reference_rows, derive(seed, 1, below=below)).double()
    law = visible_law(rbm)[1] if rbm.n_visible <= EXACT_LAW_BITS else None
    floors = {}
    for size in sorted({len(v) for v in draws.values()}):
        model_d, data_d = [], []
        for k in range(floor_draws):
            p_k = perfect.draw(size, derive(seed, 2 + k + floor_draws * size, below=below))
            model_d.append(to_model(p_k, ref, law))
            record = sample_record(Samples(v=p_k, info={}), rbm, test, log_z=math.nan)
            data_d.append({s: record[s] for s in (*DISTANCES, "mean_free_energy")})
        floors[str(size)] = {
            "to_model": {s: _spread([d[s] for d in model_d]) for s in model_d[0]},
            "to_data": {s: _spread([d[s] for d in data_d]) for s in data_d[0]}}
    routes = {}
    for route, v in draws.items():
        d = to_model(v.double(), ref, law)
        floor = floors[str(len(v))]["to_model"]
        z = {s: (d[s] - floor[s]["mean"]) / floor[s]["sd"] if floor[s]["sd"] > 0 else math.nan
             for s in d}
        routes[route] = {"to_model": d, "excess_sd": z,
                         "at_floor": all(not (x > FLOOR_SD) for x in z.values())}
    return {"reference": {"method": perfect.method, "exact": perfect.exact,
                          "rows": reference_rows, "floor_draws": floor_draws, "seed": seed,
                          "at_floor_sd": FLOOR_SD},
            "floor": floors, "routes": routes}
