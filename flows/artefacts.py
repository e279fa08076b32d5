"""Reading and writing the pipeline's artefacts: whole files or nothing (atomic renames)."""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flows.layout import Layout
from rbmdiff.data import validate_array
from rbmdiff.errors import RbmdiffError
from rbmdiff.rbm import atomic_write_bytes

log = logging.getLogger("flows")


def fresh_dir(path: Path) -> Path:
    """Empty ``path`` (a stage's output folder) so that no stale file survives a rerun."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def plain(obj: Any) -> Any:
    """JSON-safe copy: NaN/inf become None, tensors and numpy scalars become numbers."""
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    if isinstance(obj, torch.Tensor | np.generic | np.ndarray):
        return plain(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented, strict JSON (NaN as null), keys in their order, atomically."""
    text = json.dumps(plain(obj), indent=2, allow_nan=False, default=str)
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
