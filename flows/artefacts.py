"""Reading and writing the pipeline's artefacts: whole files or nothing (atomic renames)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from flows.layout import Layout
from rbmdiff.data import validate_array
from rbmdiff.errors import RbmdiffError
from rbmdiff.files import atomic_write_bytes, default_mode
from rbmdiff.jsonsafe import plain

if TYPE_CHECKING:  # torch only where tensors are read: the prepare stage runs without it
    import torch

log = logging.getLogger("flows")


@contextlib.contextmanager
def staged_dir(path: Path) -> Iterator[Path]:
    """A private, empty folder beside ``path`` (a stage's output folder) to write into; when
    the block ends without an error it replaces ``path`` whole, else it is removed.

    Writers of one folder take turns (:func:`_writer_lock`): of two concurrent runs of a
    stage, the one that finishes last wins, whole.  The previous folder is renamed aside, the
    new one into place, then the previous one is removed: a reader sees the previous folder or
    the new one, never a mix, except in the instant between the two renames, when there is
    none.  A writer killed before that leaves only its staging folder; one killed between the
    renames leaves the previous folder under a temporary name and no ``path``, so DVC finds
    the stage stale and reruns it (committed outputs stay in DVC's cache).  Those
    ``.<name>.*.tmp`` leftovers are removed by the next writer, which holds the lock, so none
    of them is a live writer's.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with _writer_lock(path):
        for orphan in path.parent.glob(f".{path.name}.*.tmp"):  # of a writer killed earlier
            shutil.rmtree(orphan, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.",
                                        suffix=".tmp"))
        try:
            staging.chmod(default_mode(folder=True))  # the published folder: umask's mode
            yield staging
            _publish(staging, path)
        finally:  # gone after a publish; else a failed block's output
            shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def _writer_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on writing folder ``path``, across threads and processes: a
    ``flock`` on a file named by the folder's absolute path, in the system's temporary folder
    (outside every folder DVC hashes).  Released when the file is closed, also by a kill."""
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"rbmdiff-{digest}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _publish(staging: Path, path: Path) -> None:
    """Rename ``path`` (if any) aside and ``staging`` into its place, sync the parent folder
    so the new entry survives a crash, then remove the previous folder."""
    old = staging.with_suffix(".old.tmp")  # .<name>.<random>.old.tmp: the next write's orphan
    if path.exists():
        os.replace(path, old)
    os.replace(staging, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    shutil.rmtree(old, ignore_errors=True)


# A sampler's info fields that differ between two runs with the same inputs: timings on this
# machine, the solver's random problem ids, and what this run found already done or paid
# (the embedding searched or read from the cache, a calibration or solver calls reused, the
# calls and reads it made).  The result's own cost (``qpu_access_time``, ``cost_units``:
# calibration and final reads, whoever paid them) and the calibration's history are kept.  Tracked
# outputs leave them out; the stage logs them.
VOLATILE_INFO = ("wall_s", "samples_per_s", "timing", "problem_ids", "embedding_method",
                 "calibration_reused", "reused_calls", "calibration_reads", "qpu_calls",
                 "sampler_seeds")


TIMINGS = ("wall_s", "samples_per_s")  # a §7 record's timings on this machine


def write_timings(layout: Layout, route: str, record: Path, timings: dict) -> None:
    """Keep a route's timings on this machine in reports/timings/<route>.json, an untracked
    log, keyed by the tracked record they belong to (the SHA-256 of its bytes)."""
    digest = hashlib.sha256(record.read_bytes()).hexdigest()
    write_json(layout.timings(route), {"record_sha256": digest, **timings})


def read_timings(layout: Layout, route: str) -> dict:
    """The timings of the run that wrote the route's current record.json; {} when this
    machine has none for it (the record was fetched with ``dvc pull``, or made elsewhere)."""
    path, record = layout.timings(route), layout.run(route) / "record.json"
    try:
        log_ = json.loads(path.read_text())
        digest = hashlib.sha256(record.read_bytes()).hexdigest()
    except (OSError, ValueError):
        return {}
    if not isinstance(log_, dict) or log_.get("record_sha256") != digest:
        return {}
    return {k: log_[k] for k in TIMINGS if k in log_}


def tracked_info(info: dict, root: Path) -> tuple[dict, dict]:
    """A sampler's ``info`` split into (what a tracked output may hold: a function of the
    run's inputs, paths relative to ``root``; the volatile rest, for the log)."""
    root = Path(root).resolve()
    info = settled(info)
    kept, volatile = {}, {}
    for key, value in info.items():
        if key in VOLATILE_INFO:
            volatile[key] = value
        elif isinstance(value, str) and os.path.isabs(value):
            path = Path(value)
            kept[key] = (str(path.relative_to(root)) if path.is_relative_to(root)
                         else path.name)
        else:
            kept[key] = value
    return kept, volatile


# Significant digits of a float in a tracked output.  The last bits of a float reduction
# depend on how many threads shared it, which is not an input; 10 digits are far beyond any
# statistic's precision and keep those bits out of dvc.lock.
DIGITS = 10


def settled(obj: Any) -> Any:
    """:func:`plain` (obj) with every float rounded to :data:`DIGITS` significant digits."""
    return _rounded(plain(obj))


def _rounded(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rounded(v) for v in obj]
    return float(f"{obj:.{DIGITS}g}") if isinstance(obj, float) else obj


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented, strict JSON (NaN as null; floats :func:`settled`), keys in
    their order, atomically."""
    text = json.dumps(settled(obj), indent=2, allow_nan=False, default=str)
    atomic_write_bytes(path, (text + "\n").encode())


def read_json(path: Path) -> Any:
    if not path.is_file():
        raise RbmdiffError(f"{path} is missing; run the stage that writes it (dvc repro)")
    return json.loads(path.read_text())


def write_array(path: Path, x: torch.Tensor | np.ndarray) -> None:
    import io

    buf = io.BytesIO()
    np.save(buf, np.asarray(x, dtype=np.float32), allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def read_prepared(layout: Layout) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """The prepare stage's output: (train (N, n), test (N', n), dataset info)."""
    info = read_json(layout.dataset_info)
    arrays = []
    for part in ("train", "test"):
        path = layout.prepared / f"{part}.npy"
        if not path.is_file():
            raise RbmdiffError(f"{path} is missing; run the prepare stage first (dvc repro)")
        arrays.append(validate_array(np.load(path, allow_pickle=False), str(path)))
    return arrays[0], arrays[1], info


def wrote(stage: str, *paths: Path) -> None:
    """Log where a stage's outputs went."""
    log.info("%s wrote %s", stage, ", ".join(str(p) for p in paths))
