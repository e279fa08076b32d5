"""rbmdiff: a restricted Boltzmann machine whose free energy is a diffusion model's score."""

from __future__ import annotations

from rbmdiff.errors import RbmdiffError, TransientError
from rbmdiff.rbm import RBM
from rbmdiff.sde import VPSDE

__all__ = ["RBM", "VPSDE", "RbmdiffError", "TransientError"]
__version__ = "0.1.0"
