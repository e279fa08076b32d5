"""reports/metrics.json: the few numbers people compare across runs (``dvc exp show``).

The report stage's reports/statistics.json holds every statistic; this file, DVC's metrics
file, keeps the ones a reader scans first, few enough that ``dvc exp show --only-changed``
fits 120 columns: the final training loss, the model's exact mean test log-likelihood where
it is defined (higher is better), each sampler's MMD² to the test data (docs/math.md §7; lower
is better) and to a perfect sample of the model (its sampler error, flows.yardstick), and the
noise of both: ``mmd_sd``, the spread of MMD² over perfect samples of the same size, so that
a difference between runs smaller than a few of it is noise.
"""

from __future__ import annotations

import math
from typing import Any

from flows.artefacts import read_json, write_json
from flows.layout import Layout


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of the report's statistics; undefined ones (null) are left out."""
    out: dict[str, Any] = {}
    loss = metrics.get("train", {}).get("loss")
    test_ll = metrics.get("model", {}).get("test_log_likelihood")
    if not _number(test_ll):  # the training history's estimate, where the report has none
        test_ll = metrics.get("train", {}).get("test_ll")
    for name, value in (("loss", loss), ("test_ll", test_ll)):
        if _number(value):
            out[name] = value
    mmd = {route: s["mmd"] for route, s in metrics.get("samplers", {}).items()
           if _number(s.get("mmd"))}
    if mmd:
        out["mmd"] = mmd
    to_model = {route: s["mmd_model"] for route, s in metrics.get("samplers", {}).items()
                if _number(s.get("mmd_model"))}
    if to_model:
        out["mmd_model"] = to_model
    floors = metrics.get("yardstick", {}).get("floor", {})
    if len(floors) == 1:  # one sample size: one noise level for every route
        floor = next(iter(floors.values()))
        out["mmd_sd"] = {"data": floor["to_data"]["mmd"]["sd"],
                         "model": floor["to_model"]["mmd"]["sd"]}
    return out


def write_headline(layout: Layout) -> dict[str, Any]:
    """Write reports/metrics.json from reports/statistics.json; -> its content."""
    numbers = headline(read_json(layout.metrics))
    write_json(layout.headline, numbers)
    return numbers


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
