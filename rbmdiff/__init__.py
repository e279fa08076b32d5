"""rbmdiff: a restricted Boltzmann machine whose free energy is a diffusion model's score."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rbmdiff.errors import RbmdiffError, TransientError

if TYPE_CHECKING:
    from rbmdiff.rbm import RBM
    from rbmdiff.sde import VPSDE

__all__ = ["RBM", "VPSDE", "RbmdiffError", "TransientError"]
__version__ = "0.1.0"

# RBM and VPSDE import torch: loaded on first use, so that `rbmdiff --help` and the error
# types import no torch
_LAZY = {"RBM": "rbmdiff.rbm", "VPSDE": "rbmdiff.sde"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rbmdiff' has no attribute {name!r}")
