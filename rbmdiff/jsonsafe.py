"""JSON-safe values: the one conversion rbmdiff applies before writing JSON or model meta."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import numpy as np


def plain(obj: Any) -> Any:
    """A copy of ``obj`` made of dicts (str keys), lists, str, int, finite float, bool and
    None: tensors and NumPy values become numbers or lists, NaN and ±inf become None, any
    other object its ``str``."""
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    torch = sys.modules.get("torch")  # not loaded: obj is no tensor
    if isinstance(obj, np.generic | np.ndarray) or (torch and isinstance(obj, torch.Tensor)):
        return plain(obj.tolist())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, bool | int | str) or obj is None:
        return obj
    return str(obj)


def dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`plain` (obj), strict JSON (no NaN tokens)."""
    return json.dumps(plain(obj), allow_nan=False, **kwargs)
