"""rbmdiff: a restricted Boltzmann machine whose free energy is a diffusion model's score."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rbmdiff.errors import RbmdiffError

if TYPE_CHECKING:
    from rbmdiff.rbm import RBM
    from rbmdiff.sde import VPSDE

__all__ = ["RBM", "VPSDE", "RbmdiffError"]
__version__ = "0.1.0"


def __getattr__(name: str):
    """``RBM`` and ``VPSDE`` on first use: ``import rbmdiff.errors`` or ``rbmdiff.data`` alone
    does not pay torch's ~2 s import (the pipeline's data stage runs without it)."""
    if name == "RBM":
        from rbmdiff.rbm import RBM

        return RBM
    if name == "VPSDE":
        from rbmdiff.sde import VPSDE

        return VPSDE
    raise AttributeError(f"module 'rbmdiff' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
