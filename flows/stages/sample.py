"""sample@<route>: draw from the trained RBM with one sampler, score the draws (docs/math.md §7)."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from flows.artefacts import (
    VOLATILE_INFO,
    read_json,
    read_prepared,
    settled,
    staged_dir,
    tracked_info,
    write_json,
    write_timings,
    wrote,
)
from flows.config import RouteParams
from flows.layout import Layout
from rbmdiff import samplers
from rbmdiff.io import samples_frame, write_parquet
from rbmdiff.metrics import sample_record
from rbmdiff.rbm import RBM
from rbmdiff.samplers.base import Samples

log = logging.getLogger("flows")


def sampler_kwargs(route: str, p: RouteParams, layout: Layout, train: Any) -> dict:
    """The route's sampler parameters, plus what the pipeline supplies: the embed stage's
    solver and embedding, the read store and the calibration cache, for ``qpu``; the
    training rows for ``gibbs`` with init 'data'."""
    kwargs = p.sampler_params()
    if route == "qpu":
        from rbmdiff.samplers.qpu import has_token

        solver = read_json(layout.solver_info)
        kwargs.update(topology=solver["topology"], embedding_dir=str(layout.embedding))
        if solver["mock"]:
            kwargs["mock_shape"] = solver["shape"]
            if has_token():  # embedded on the mock: stay on a mock, the one named if any
                kwargs["mock"] = kwargs.get("mock") or True  # (`dvc repro -f embed` to switch)
        else:
            kwargs["mock"] = False
        kwargs.setdefault("read_store", str(read_store(layout, kwargs)))
        kwargs.setdefault("calibration_dir", str(layout.calibration))
    if route == "gibbs" and kwargs.get("init") == "data":
        kwargs["init_data"] = train
    return kwargs


def read_store(layout: Layout, kwargs: dict) -> Path:
    """The read store of a QPU run: one folder per device (a QPU solver, or a mock kind with
    its β, sweeps and graph), since a call's key names the problem but not the device."""
    from rbmdiff.samplers.qpu import QPUSampler

    sampler = QPUSampler(**{k: v for k, v in kwargs.items()
                            if k not in ("budget", "read_store", "calibration_dir")})
    kind, s = sampler.mock_kind()[0], sampler.settings
    device = f"mock-{kind}" if kind else f"qpu-{s.solver or s.topology}"
    facts = [s.topology, s.mock_shape, s.mock_beta, s.mock_sweeps] if kind else [s.solver]
    tag = hashlib.sha256(json.dumps(facts, default=str).encode()).hexdigest()[:8]
    return layout.read_store / f"{device}-{tag}"


def draw(route: str, p: RouteParams, layout: Layout) -> tuple[Samples, dict]:
    """Run the route's sampler on the trained model; -> (samples, the §7 record)."""
    rbm = RBM.load(layout.model)
    train, test, info = read_prepared(layout)
    sampler = samplers.get(route, **sampler_kwargs(route, p, layout, train))
    result = sampler.sample(rbm, p.num_samples, seed=p.seed)
    record = {"route": route, "data": info["name"], "n_visible": rbm.n_visible,
              "n_hidden": rbm.n_hidden, **sample_record(result, rbm, test)}
    return result, record


def sample(route: str, p: RouteParams, layout: Layout) -> dict:
    """Write reports/runs/<route>/samples.parquet (v0…, x0… columns; the sampler's info in the
    schema metadata) and record.json (the §7 statistics); -> the record, timings included.

    Both are written in a private folder that replaces the route's folder whole
    (:func:`~flows.artefacts.staged_dir`), so a run killed part-way never leaves a mix of two.
    Both are a function of the run's inputs: the timings, solver ids and what this run found
    already done go to the log and to reports/timings/<route>.json (not a tracked output).
    """
    with staged_dir(layout.run(route)) as staging:
        result, record = draw(route, p, layout)
        info, volatile = tracked_info(result.info, layout.root)  # tracked: inputs' function
        write_parquet(samples_frame(result), staging / "samples.parquet",
                      metadata={"rbmdiff_info": info})
        # the record's timings are the info's (VOLATILE_INFO): logged with the rest
        write_json(staging / "record.json",
                   {k: v for k, v in record.items() if k not in VOLATILE_INFO})
    out = layout.run(route)
    write_timings(layout, route, out / "record.json", volatile)
    log.info("sample@%s: %s (timings and ids of this run, not in its outputs)", route,
             json.dumps(volatile, default=str))
    wrote(f"sample@{route}", out / "samples.parquet", out / "record.json")
    return settled(record)  # its numbers as the record.json just written holds them
