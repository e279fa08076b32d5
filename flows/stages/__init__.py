"""The pipeline's stages, declared once: one function per DVC stage, and :func:`run`.

``python -m flows.stages NAME [ROUTE]`` (each stage's ``cmd`` in dvc.yaml) and the Prefect
tasks of :mod:`flows.pipeline` both call :func:`run`, so ``dvc repro`` alone and a Prefect run
produce the same artefacts.  None of these modules imports Prefect or DVC.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flows.config import Params
    from flows.layout import Layout

STAGES = ("prepare", "train", "embed", "sample", "report")  # in order; sample: one per route

# Each stage's upstream stages: those whose outputs it reads (its deps in dvc.yaml, which
# tests/test_pipeline_lineage.py checks against this).
UPSTREAM: dict[str, tuple[str, ...]] = {
    "prepare": (),
    "train": ("prepare",),
    "embed": ("prepare",),
    "sample": ("prepare", "train", "embed"),
    "report": ("prepare", "train", "sample"),
}
assert tuple(UPSTREAM) == STAGES


def dag(routes: Iterable[str]) -> dict[str, list[str]]:
    """dvc.yaml's stages, upstream first (``sample@<route>`` for each route), each with the
    stages it reads from: ``dag(["sde"])["report"] == ["prepare", "train", "sample@sde"]``."""
    names = {step: [step] for step in STAGES} | {"sample": [f"sample@{r}" for r in routes]}
    return {name: [up for step_up in UPSTREAM[step] for up in names[step_up]]
            for step in STAGES for name in names[step]}


def _function(name: str) -> Callable[..., dict]:
    """The stage's function, ``flows.stages.<name>.<name>`` (imported when first run)."""
    return getattr(importlib.import_module(f"flows.stages.{name}"), name)


def _sample(params: Params, layout: Layout, route: str, progress: bool) -> dict:
    from flows.artefacts import read_json
    from flows.config import ParamsError
    from flows.preflight import check_route_size

    if route not in params.sample:
        raise ParamsError(f"{layout.params}: sample.{route}: no such route; routes are "
                          f"{', '.join(params.sample)}")
    n_visible = int(read_json(layout.dataset_info)["n_visible"])
    check_route_size(route, params.sample[route].num_samples, n_visible, layout.params)
    if route == "qpu":
        from flows.preflight import check_embeddable_on_mock

        check_embeddable_on_mock(params, n_visible, layout.params)
        refused = read_json(layout.solver_info).get("refused")
        if refused:  # the embed stage found the model too large for the solver's graph
            raise ParamsError(f"sample.qpu: {refused}; or drop the qpu route (sample.qpu)")
    return _function("sample")(route, params.sample[route], layout)


def _report(params: Params, layout: Layout, route: None, progress: bool) -> dict:
    from flows.headline import write_headline

    out = _function("report")(params.report, list(params.sample), layout)
    write_headline(layout)  # the report's few numbers for `dvc exp show`
    return out


# Each stage with the params.yaml sections it reads: (params, layout, route, progress) -> dict
CALLS: dict[str, Callable[[Params, Layout, Any, bool], dict]] = {
    "prepare": lambda params, layout, route, progress: _function("prepare")(params.data, layout),
    "train": lambda params, layout, route, progress: _function("train")(
        params.train, layout, progress=progress),
    "embed": lambda params, layout, route, progress: _function("embed")(
        params.embed, params.train.n_hidden, layout),
    "sample": _sample,
    "report": _report,
}
assert tuple(CALLS) == STAGES


def run(name: str, params: Params, layout: Layout, *, route: str | None = None,
        progress: bool = True) -> dict:
    """Run stage ``name`` (``route``: the sample stage's sampler, and only its) on the
    validated params; -> the stage's summary (the sample stage: the route's §7 record)."""
    from rbmdiff.errors import RbmdiffError

    if name not in CALLS:
        raise RbmdiffError(f"no stage {name!r}; stages are {', '.join(STAGES)}")
    if (name == "sample") != (route is not None):
        raise RbmdiffError("give a route with the sample stage, and only with it")
    return CALLS[name](params, layout, route, progress)
