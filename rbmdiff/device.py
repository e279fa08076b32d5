"""Where tensors live: resolve a device name once, at the edge, and move models there."""

from __future__ import annotations

import torch

from rbmdiff.choices import DEVICES
from rbmdiff.errors import RbmdiffError
from rbmdiff.rbm import RBM


def resolve(name: str = "auto") -> torch.device:
    """"auto" -> cuda when a CUDA GPU is available, else cpu; "cpu"; "cuda" (a GPU is required)."""
    if name not in DEVICES:
        raise RbmdiffError(f"unknown device {name!r}; choose one of {DEVICES}")
    if name == "cpu":
        return torch.device("cpu")
    available = torch.cuda.is_available()
    if name == "cuda" and not available:
        raise RbmdiffError("device 'cuda' was asked for but no CUDA GPU is available to torch "
                           "(a CPU-only torch build, or no GPU): use --device cpu or auto")
    return torch.device("cuda" if available else "cpu")


def to_device(rbm: RBM, device: torch.device | str) -> RBM:
    """The same model (parameters, mask, meta) with its tensors on ``device``."""
    device = torch.device(device)
    if rbm.W.device == device:
        return rbm
    W, b, c = (p.detach().to(device) for p in rbm.parameters())
    mask = None if rbm.mask is None else rbm.mask.to(device)
    return RBM(W, b, c, mask=mask, meta=rbm.meta)


def generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch.Generator on ``device`` seeded with ``seed`` (draws for tensors on that device)."""
    return torch.Generator(device=torch.device(device)).manual_seed(seed)
