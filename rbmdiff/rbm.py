"""Binary restricted Boltzmann machine: E(v, h) = -vᵀWh - bᵀv - cᵀh (docs/math.md §1)."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch
from torch.nn.functional import softplus

from rbmdiff import gibbs_kernels, seeds
from rbmdiff.errors import RbmdiffError
from rbmdiff.files import atomic_write_bytes
from rbmdiff.jsonsafe import plain

MAGIC = "rbmdiff-model"
FORMAT_VERSION = 1


class RBM:
    """Binary RBM with visible v ∈ {0,1}^n and hidden h ∈ {0,1}^m.

    W: (n, m), b: (n,), c: (m,). ``mask``: None (dense) or a bool (n, m) connectivity mask
    (a hardware-native RBM, :mod:`rbmdiff.topology`): W is 0 wherever the mask is False.
    ``meta`` carries what the model was trained with (score kind, ε, noise schedule,
    provenance, the native layout); it is saved beside the parameters.
    """

    def __init__(
        self, W: torch.Tensor, b: torch.Tensor, c: torch.Tensor, *,
        mask: torch.Tensor | None = None, meta: dict | None = None,
    ) -> None:
        if W.dim() != 2 or b.shape != (W.shape[0],) or c.shape != (W.shape[1],):
            raise RbmdiffError(
                f"RBM shapes disagree: W {tuple(W.shape)}, b {tuple(b.shape)}, c {tuple(c.shape)};"
                " need W (n, m), b (n,), c (m,)"
            )
        for name, p in (("W", W), ("b", b), ("c", c)):
            if not torch.isfinite(p).all():
                raise RbmdiffError(f"RBM parameter {name} holds NaN or inf values")
        if mask is not None:
            if mask.dtype != torch.bool or mask.shape != W.shape:
                raise RbmdiffError(f"RBM mask must be a bool tensor of W's shape {tuple(W.shape)},"
                                   f" got {mask.dtype} {tuple(mask.shape)}")
            if (W.detach()[~mask.to(W.device)] != 0).any():
                raise RbmdiffError("RBM weights are nonzero outside the connectivity mask")
        self.W, self.b, self.c, self.mask = W, b, c, mask
        self.meta: dict[str, Any] = dict(meta or {})

    # -- construction ------------------------------------------------------------------
    @classmethod
    def random(
        cls,
        n_visible: int,
        n_hidden: int,
        *,
        scale: float = 0.01,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
    ) -> RBM:
        """W, b, c ~ N(0, scale²), drawn from an explicit generator."""
        if n_visible < 1 or n_hidden < 1:
            raise RbmdiffError(f"an RBM needs ≥ 1 unit per layer, got {n_visible}×{n_hidden}")
        g = torch.Generator().manual_seed(seed)
        return cls(
            scale * torch.randn(n_visible, n_hidden, generator=g, dtype=dtype),
            scale * torch.randn(n_visible, generator=g, dtype=dtype),
            scale * torch.randn(n_hidden, generator=g, dtype=dtype),
        )

    @property
    def n_visible(self) -> int:
        return self.W.shape[0]

    @property
    def n_hidden(self) -> int:
        return self.W.shape[1]

    @property
    def dtype(self) -> torch.dtype:
        return self.W.dtype

    def parameters(self) -> list[torch.Tensor]:
        return [self.W, self.b, self.c]

    def to(self, dtype: torch.dtype) -> RBM:
        return RBM(self.W.to(dtype), self.b.to(dtype), self.c.to(dtype), mask=self.mask,
                   meta=self.meta)

    def detach(self) -> RBM:
        """A copy sharing no autograd graph (requires_grad off)."""
        W, b, c = (p.detach().clone() for p in self.parameters())
        return RBM(W, b, c, mask=self.mask, meta=self.meta)

    def requires_grad_(self, flag: bool = True) -> RBM:
        for p in self.parameters():
            p.requires_grad_(flag)
        return self

    # -- energies ----------------------------------------------------------------------
    def energy(self, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """E(v, h) = -vᵀWh - bᵀv - cᵀh.  v: (..., n), h: (..., m) -> (...)."""
        v, h = v.to(self.dtype), h.to(self.dtype)
        return -((v @ self.W) * h).sum(-1) - v @ self.b - h @ self.c

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """F(v) = -bᵀv - Σ_j softplus(c_j + (Wᵀv)_j) = -log Σ_h e^{-E(v,h)}.  (..., n) -> (...).

        Defined for mean-field v ∈ [0,1]^n too.
        """
        v = v.to(self.dtype)
        return -(v @ self.b) - softplus(self.c + v @ self.W).sum(-1)

    def hidden_free_energy(self, h: torch.Tensor) -> torch.Tensor:
        """G(h) = -cᵀh - Σ_i softplus(b_i + (Wh)_i) = -log Σ_v e^{-E(v,h)}.  (..., m) -> (...)."""
        h = h.to(self.dtype)
        return -(h @ self.c) - softplus(self.b + h @ self.W.T).sum(-1)

    # -- conditionals ------------------------------------------------------------------
    def hidden_mean(self, v: torch.Tensor, *, beta: float = 1.0) -> torch.Tensor:
        """p(h_j = 1 | v) = σ(β(c + Wᵀv)_j).  (..., n) -> (..., m)."""
        return torch.sigmoid(beta * (self.c + v.to(self.dtype) @ self.W))

    def visible_mean(
        self, h: torch.Tensor, *, beta: float = 1.0, field: torch.Tensor | None = None
    ) -> torch.Tensor:
        """p(v_i = 1 | h) = σ(β(b + u + Wh)_i), u an optional extra field.  (..., m) -> (..., n)."""
        pre = self.b + h.to(self.dtype) @ self.W.T
        if field is not None:
            pre = pre + field
        return torch.sigmoid(beta * pre)

    def sample_hidden(
        self, v: torch.Tensor, *, generator: torch.Generator | None = None, beta: float = 1.0
    ) -> torch.Tensor:
        """h ~ p(h | v) at inverse temperature β.  (..., n) -> (..., m) of 0/1."""
        return torch.bernoulli(self.hidden_mean(v, beta=beta), generator=generator)

    def sample_visible(
        self,
        h: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        beta: float = 1.0,
        field: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """v ~ p(v | h) at inverse temperature β.  (..., m) -> (..., n) of 0/1."""
        return torch.bernoulli(self.visible_mean(h, beta=beta, field=field), generator=generator)

    def gibbs(
        self,
        v: torch.Tensor,
        sweeps: int,
        *,
        beta: float = 1.0,
        field: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """``sweeps`` block-Gibbs sweeps h ~ σ(β(c + Wᵀv)), v ~ σ(β(b + u + Wh)) at inverse
        temperature β, with an optional extra visible field u (n,) or (B, n).  (B, n) ->
        (B, n) of 0/1, no gradient.  Deterministic for a fixed ``generator`` state, which it
        advances by one draw (the seed of the kernel's stream).  The sweep runs in the kernel
        :func:`rbmdiff.gibbs_kernels.select` picks (:meth:`gibbs_kernel` names it): every
        kernel samples the same law, each from its own random stream.
        """
        if sweeps < 0:
            raise RbmdiffError(f"sweeps must be ≥ 0, got {sweeps}")
        with torch.no_grad():
            shape = v.shape
            v = v.to(self.W.device, self.dtype).reshape(-1, self.n_visible)
            v = v.clone(memory_format=torch.contiguous_format)
            if sweeps == 0 or v.shape[0] == 0:
                return v.reshape(shape)
            W, b, c = self._tempered(beta, field, v.shape[0])
            gibbs_kernels.select(W)(v, W, b, c, sweeps, seeds.from_generator(generator))
        return v.reshape(shape)

    def _tempered(self, beta: float, field: torch.Tensor | None,
                  chains: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """βW, β(b + u), βc, contiguous and detached; b (n,), or (chains, n) for a field with
        one row per chain."""
        W, b, c = self.W.detach(), self.b.detach(), self.c.detach()
        if field is not None:
            b = b + field.detach().to(b.device, self.dtype).reshape(-1, self.n_visible)
            if b.shape[0] == 1:
                b = b[0]
            elif b.shape[0] != chains:
                raise RbmdiffError(f"field has {b.shape[0]} rows for {chains} chains; give one "
                                   "row or one per chain")
        if beta != 1.0:
            W, b, c = beta * W, beta * b, beta * c
        return W.contiguous(), b.contiguous(), c.contiguous()

    def gibbs_kernel(self) -> str:
        """Which kernel :meth:`gibbs` uses for this model here: "native-avx2-fused" (whole
        sweeps in one call), "native-avx2" or "native-portable" (mm + a compiled pass; the
        two passes are bit-identical), "torch", or "torch-device" (chains on an accelerator)."""
        return gibbs_kernels.select(self.W).name

    # -- persistence -------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write atomically (temp file, then rename): the file is whole or absent."""
        payload = {
            "magic": MAGIC,
            "version": FORMAT_VERSION,
            "n_visible": self.n_visible,
            "n_hidden": self.n_hidden,
            "W": self.W.detach().cpu().clone(),
            "b": self.b.detach().cpu().clone(),
            "c": self.c.detach().cpu().clone(),
            "mask": None if self.mask is None else self.mask.cpu().clone(),
            "meta": plain(self.meta),
        }
        buf = io.BytesIO()
        torch.save(payload, buf)
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike) -> RBM:
        """Read a file written by :meth:`save`; refuses anything else with a clear error."""
        path = Path(path)
        if not path.is_file():
            raise RbmdiffError(f"model file {path} does not exist; train one with `rbmdiff train`")
        if path.stat().st_size == 0:
            raise RbmdiffError(f"model file {path} is empty")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several types for foreign or cut files
            raise RbmdiffError(
                f"model file {path} is truncated or not an rbmdiff model ({type(exc).__name__})"
            ) from None
        if not isinstance(payload, dict) or payload.get("magic") != MAGIC:
            raise RbmdiffError(f"model file {path} is not an rbmdiff model (no rbmdiff header)")
        if payload.get("version") != FORMAT_VERSION:
            raise RbmdiffError(
                f"model file {path} has format version {payload.get('version')}, "
                f"this rbmdiff reads version {FORMAT_VERSION}"
            )
        W, b, c = payload.get("W"), payload.get("b"), payload.get("c")
        for name, p in (("W", W), ("b", b), ("c", c)):
            if not isinstance(p, torch.Tensor) or not p.is_floating_point():
                kind = p.dtype if isinstance(p, torch.Tensor) else type(p).__name__
                raise RbmdiffError(f"model file {path} is corrupt: {name} is {kind}, "
                                   "not a floating-point tensor")
        if not W.dtype == b.dtype == c.dtype:
            raise RbmdiffError(f"model file {path} is corrupt: W, b, c have different dtypes "
                               f"({W.dtype}, {b.dtype}, {c.dtype})")
        if not isinstance(payload.get("meta", {}), dict):
            raise RbmdiffError(f"model file {path} is corrupt: its meta is "
                               f"{type(payload['meta']).__name__}, not a mapping")
        if tuple(W.shape) != (payload.get("n_visible"), payload.get("n_hidden")):
            raise RbmdiffError(f"model file {path} is corrupt: W shape disagrees with its header")
        mask = payload.get("mask")
        if mask is not None and (mask.dtype != torch.bool or mask.shape != W.shape):
            raise RbmdiffError(f"model file {path} is corrupt: its mask does not match W")
        return cls(W, b, c, mask=mask, meta=payload.get("meta", {}))

    def __repr__(self) -> str:
        return f"RBM(n_visible={self.n_visible}, n_hidden={self.n_hidden}, dtype={self.dtype})"
