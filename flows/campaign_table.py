"""The campaign's table (reports/campaign.parquet, one row per setting attempt), its locks, and
its figure (reports/figures/campaign.png: quality against QPU access time per setting).

Rows are appended under a file lock (read, concatenate, atomic replace), so concurrent
writers never lose a row; a campaign is run by one process at a time (:func:`campaign_lock`),
so two resumes of one campaign cannot both spend.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flows.budget import file_lock
from rbmdiff.errors import RbmdiffError
from rbmdiff.files import atomic_write_bytes
from rbmdiff.io import write_parquet
from rbmdiff.records import TYPES

SETTING_TYPES = {"index": "Int64", "num_reads": "Int64", "annealing_time": "float64",
                 "chain_strength": "string", "mock": "string", "calibration_rounds": "Int64",
                 "status": "string", "error": "string", "estimate_us": "float64",
                 "qpu_access_us": "float64", "reads_per_call": "Int64",
                 "calibration_reads": "Int64", "reused_calls": "Int64", "qpu_calls": "Int64",
                 "calibration_key": "string", "model_sha": "string", "factor": "float64",
                 "calibration_planned_reads": "Int64",
                 # the run's record and QPU facts, typed where they are declared
                 **{k: TYPES[k] for k in ("num_qubits", "calibration_reused", "target_reached",
                                          "fidelity_ok", "fidelity_worst", "beta_model",
                                          "chain_break_fraction", "mmd", "corr_rmse")}}


def _lock_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.lock")


def append_row(path: Path, row: dict) -> None:
    """Append one row to the table under its lock (the table is rewritten whole, atomically),
    with fixed types, so that a None in the first row does not make an untyped column."""
    frame = pd.DataFrame([row])
    frame = frame.astype({k: v for k, v in SETTING_TYPES.items() if k in frame})
    with file_lock(_lock_path(path)):
        if path.is_file():
            frame = pd.concat([pd.read_parquet(path), frame], ignore_index=True)
        write_parquet(frame, path)


def read_rows(path: Path, campaign: str | None = None) -> pd.DataFrame:
    """The table's rows (of one campaign); an empty frame when there is none."""
    if not path.is_file():
        return pd.DataFrame()
    with file_lock(_lock_path(path)):
        rows = pd.read_parquet(path)
    return rows if campaign is None else rows[rows["campaign"] == campaign]


def setting_key(setting: dict) -> tuple:
    """A setting as comparable values (a table's <NA>, float and string columns alike)."""
    return tuple((k, _comparable(v)) for k, v in sorted(setting.items()))


def _comparable(value: Any) -> Any:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, bool) or value in ("True", "False"):
        return str(value)
    try:
        return float(value)
    except ValueError:
        return str(value)


def done_settings(rows: pd.DataFrame, keys: list[str]) -> set:
    """The settings with a 'done' row."""
    if rows.empty:
        return set()
    done = rows[rows["status"] == "done"]
    return {setting_key(r) for r in done[keys].to_dict("records")}


# -- one process per campaign ---------------------------------------------------------------
def lock_file(table: Path, campaign: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", campaign)
    return table.parent / ".campaign-locks" / f"{safe}.lock"


@contextlib.contextmanager
def campaign_lock(table: Path, campaign: str) -> Iterator[None]:
    """Hold campaign ``campaign`` for this run: a second process (or thread) asking for it
    while it is held gets a one-line error instead of spending the same budget."""
    path = lock_file(table, campaign)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RbmdiffError(
                f"campaign {campaign!r} is being run by another process (lock {path}); wait "
                f"for it to finish, then `rbmdiff-pipeline campaign --resume {campaign}`"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def check_free(table: Path, campaign: str) -> None:
    """Fail now, in one line, if another process holds the campaign."""
    with campaign_lock(table, campaign):
        pass


# -- the figure -----------------------------------------------------------------------------
def plot(rows: pd.DataFrame, path: Path, keys: list[str]) -> Path | None:
    """MMD² and correlation RMSE to held-out data (lower is better) against the QPU access
    time each done setting was charged (its estimate, square markers, where every read was
    read back from the store), one marker per setting, the legend naming it (values left at
    the default omitted); filled markers where the route's fidelity verdict passed, open where
    it failed or is unknown.  None when no setting is done."""
    from matplotlib.figure import Figure

    done = rows[rows["status"] == "done"].drop_duplicates(subset=["index"], keep="last")
    if done.empty:
        return None
    fig = Figure(figsize=(11, 4.2))
    axes = fig.subplots(1, 2)
    for i, (_, r) in enumerate(done.iterrows()):
        charged = float(r["qpu_access_us"])
        reused = charged == 0 and not _missing(r.get("reused_calls")) and r["reused_calls"] > 0
        label = f"#{r['index']}: " + ", ".join(
            f"{k}={r[k]}" for k in keys if k in r and not _missing(r[k])) + (
            " (reads reused: x = their estimate)" if reused else "")
        ok = r.get("fidelity_ok")
        face = f"C{i % 10}" if (not _missing(ok) and bool(ok)) else "none"
        x = float(r["estimate_us"]) if reused else charged
        for ax, metric in zip(axes, ("mmd", "corr_rmse"), strict=True):
            y = float(r.get(metric, math.nan))
            ax.plot([x / 1000], [max(y, 1e-6)], marker="s" if reused else "o",
                    ms=8, ls="", mec=f"C{i % 10}", mfc=face, label=label if ax is axes[0]
                    else None)
    for ax, title in zip(axes, ("MMD² (Hamming kernel) to held-out data",
                                "pairwise correlation RMSE to held-out data"), strict=True):
        ax.set_xlabel("QPU access time charged (ms)")
        ax.set_yscale("log")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    fig.legend(loc="lower center", ncol=1, fontsize=7, frameon=False)
    fig.suptitle("QPU campaign: quality against access time per setting (filled: fidelity "
                 "verdict passed)", fontsize=10)
    fig.subplots_adjust(bottom=0.16 + 0.045 * len(done), top=0.86)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _missing(value: Any) -> bool:
    return value is None or (not isinstance(value, str) and bool(np.all(pd.isna(value))))


# -- the request, checked before Prefect starts ---------------------------------------------
def check_request(root: str | Path, budget_us: float | None, resume: str | None
                  ) -> tuple[Any, float]:
    """params.yaml, the budget and the campaign to resume, checked without Prefect: any
    problem is one line (RbmdiffError).  -> (params, budget µs)."""
    from flows.budget import SpendLedger
    from flows.config import ParamsError, check_samplers, load_params
    from flows.layout import Layout

    layout = Layout(Path(root))
    params = load_params(layout.params)
    check_samplers(params, layout.params)
    p = params.campaign
    budget = p.budget_us if budget_us is None else float(budget_us)
    if not (math.isfinite(budget) and budget > 0):
        raise RbmdiffError(f"the QPU time budget must be a positive number of µs, got "
                           f"{budget_us}")
    for i, s in enumerate(p.sweep.settings()):
        if s["mock"] == "thermal" and s["annealing_time"] is not None:
            raise ParamsError(
                f"{layout.params}: campaign.sweep: setting {i} ({s}) gives the thermal mock an "
                "annealing_time, which an ideal device has no model of; sweep annealing_time "
                "on the annealer mock or the QPU only")
    if resume is not None:
        ledger = SpendLedger(layout.campaign.with_name("campaign-spend.jsonl"))
        if read_rows(layout.campaign, resume).empty and not ledger.entries(resume):
            raise RbmdiffError(f"no campaign {resume!r} in {layout.campaign} or its ledger; "
                               "pass an id from the table's 'campaign' column")
        check_free(layout.campaign, resume)
    return params, budget
