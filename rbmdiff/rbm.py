"""Binary restricted Boltzmann machine: E(v, h) = -vᵀWh - bᵀv - cᵀh (DESIGN §1)."""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.functional import softplus

from rbmdiff import native
from rbmdiff.errors import RbmdiffError
from rbmdiff.files import atomic_write_bytes

MAGIC = "rbmdiff-model"
FORMAT_VERSION = 1
GIBBS_BLOCK = 1 << 20  # uniforms drawn per call while sweeping (4 MiB in float32)


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
        temperature β, with an optional extra visible field u.  (B, n) -> (B, n) of 0/1, no
        gradient.  Deterministic for a fixed ``generator`` state, which it advances by one
        draw (the seed of its own stream).

        Per layer each unit is set to 1 iff U < σ(x), x = c + vW, for a uniform U.  float32
        models use the compiled kernel (:mod:`rbmdiff.native`: the bias, 23 random bits,
        e^{-x} and a comparison per unit, no tensor of uniforms): with AVX2 and weights that
        fit a core's caches every sweep runs in one call, blocks of 4 chains at a time with
        their fields in registers (threads share the blocks when the call is large, as
        torch's thread count allows); otherwise vW by ``mm(out=)`` and a compiled pass per
        layer, in preallocated buffers.  float64 models, or any model when no C compiler is
        available, use torch: x by ``addmm(out=)``, then ``sigmoid_`` and ``gt_`` against
        24-bit (float32) or 53-bit (float64) uniforms, drawn for a block of sweeps (up to
        :data:`GIBBS_BLOCK` units) per call from NumPy's PCG64.  Same law, different
        streams: :meth:`gibbs_kernel` names the one in use.
        """
        if sweeps < 0:
            raise RbmdiffError(f"sweeps must be ≥ 0, got {sweeps}")
        with torch.no_grad():
            shape = v.shape
            v = v.to(self.dtype).reshape(-1, self.n_visible)
            v = v.clone(memory_format=torch.contiguous_format)
            if sweeps == 0 or v.shape[0] == 0:
                return v.reshape(shape)
            W, b, c = self.W.detach(), self.b.detach(), self.c.detach()
            if field is not None:
                b = b + field.detach().to(self.dtype).reshape(-1, self.n_visible)
            if beta != 1.0:
                W, b, c = beta * W, beta * b, beta * c
            B, n, m = v.shape[0], self.n_visible, self.n_hidden
            if b.dim() == 2 and b.shape[0] == 1:
                b = b[0]
            if b.dim() == 2 and b.shape[0] != B:
                raise RbmdiffError(f"field has {b.shape[0]} rows for {B} chains; give one row "
                                   "or one per chain")
            if v.device.type != "cpu":  # off the CPU: torch, drawing from the caller's generator
                for _ in range(sweeps):
                    h = torch.bernoulli(torch.sigmoid(torch.addmm(c, v, W)), generator=generator)
                    v = torch.bernoulli(torch.sigmoid(b + h @ W.T), generator=generator)
                return v.reshape(shape)
            seed = _seed(generator)
            kern = self._compiled_kernel()
            if kern is not None and kern.fuses(n, m):
                self._fused_gibbs(kern, v, W, b, c, sweeps, seed)
                return v.reshape(shape)
            h = torch.empty(B, m, dtype=self.dtype)
            if kern is not None:  # the biases are added in the pass: mm, not addmm
                state = kern.seed_state(seed)
                draw_h = kern.bound(state, h, c.contiguous())
                draw_v = kern.bound(state, v, b.contiguous())
                WT = W.T
                for _ in range(sweeps):
                    torch.mm(v, W, out=h)  # same shape: h keeps its storage
                    draw_h()
                    torch.mm(h, WT, out=v)
                    draw_v()
                return v.reshape(shape)
            per_sweep = B * (n + m)
            block = max(1, min(sweeps, GIBBS_BLOCK // per_sweep))
            u_dtype = torch.float64 if self.dtype == torch.float64 else torch.float32
            uniforms = torch.empty(block, per_sweep, dtype=u_dtype)
            rng = np.random.Generator(np.random.PCG64(seed))
            for first in range(0, sweeps, block):
                count = min(block, sweeps - first)
                rng.random(out=uniforms[:count].numpy(), dtype=uniforms.numpy().dtype)
                for u in uniforms[:count]:
                    # h_j = 1 iff U < σ(c_j + (vW)_j);  then v_i = 1 iff U' < σ(b_i + (W h)_i)
                    torch.addmm(c, v, W, out=h).sigmoid_().gt_(u[: B * m].view(B, m))
                    torch.addmm(b, h, W.T, out=v).sigmoid_().gt_(u[B * m:].view(B, n))
        return v.reshape(shape)

    @staticmethod
    def _fused_gibbs(kern: native.Kernel, v: torch.Tensor, W: torch.Tensor, b: torch.Tensor,
                     c: torch.Tensor, sweeps: int, seed: int) -> None:
        """Every sweep in compiled calls of about :data:`native.SLICE_MULTIPLY_ADDS` each
        (tens of ms), so that Ctrl-C is seen between them.  The first call takes ``seed``,
        call i > 0 a hash of (seed, i): not seed + i, whose streams the run from seed + 1
        would replay (from other states, so that two runs seeded s and s + 1 could couple).
        Threads (torch's count) only for slices large enough to pay for starting them."""
        per_sweep = 2 * v.shape[0] * W.shape[0] * W.shape[1]  # multiply-adds, both layers
        step = max(1, native.SLICE_MULTIPLY_ADDS // per_sweep)
        threads = torch.get_num_threads() if (
            min(step, sweeps) * per_sweep >= native.THREAD_MIN_MULTIPLY_ADDS) else 1
        W, b, c = W.contiguous(), b.contiguous(), c.contiguous()
        for i, first in enumerate(range(0, sweeps, step)):
            call_seed = seed if i == 0 else int(
                np.random.SeedSequence([seed, i]).generate_state(1, np.uint64)[0])
            kern.gibbs(v, W, b, c, min(step, sweeps - first), call_seed, threads=threads)

    def gibbs_kernel(self) -> str:
        """Which kernel :meth:`gibbs` uses for this model here: "native-avx2-fused" (whole
        sweeps in one call), "native-avx2" or "native-portable" (mm + a compiled pass; the
        two passes are bit-identical) or "torch"."""
        kern = self._compiled_kernel()
        if kern is None:
            return "torch"
        return kern.name + ("-fused" if kern.fuses(self.n_visible, self.n_hidden) else "")

    def _compiled_kernel(self) -> native.Kernel | None:
        """The compiled Gibbs pass, for float32 models where it builds (float64: torch)."""
        return native.kernel() if self.dtype == torch.float32 else None

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
            "meta": _plain(self.meta),
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
        W, b, c = payload["W"], payload["b"], payload["c"]
        if tuple(W.shape) != (payload["n_visible"], payload["n_hidden"]):
            raise RbmdiffError(f"model file {path} is corrupt: W shape disagrees with its header")
        mask = payload.get("mask")
        if mask is not None and (mask.dtype != torch.bool or mask.shape != W.shape):
            raise RbmdiffError(f"model file {path} is corrupt: its mask does not match W")
        return cls(W, b, c, mask=mask, meta=payload.get("meta", {}))

    def __repr__(self) -> str:
        return f"RBM(n_visible={self.n_visible}, n_hidden={self.n_hidden}, dtype={self.dtype})"


def _seed(generator: torch.Generator | None) -> int:
    """One 63-bit draw from ``generator`` (torch's default generator when None): the seed of
    a Gibbs call's own stream, so the same torch state gives the same samples."""
    return int(torch.randint(0, 2**63 - 1, (), generator=generator))


def _plain(obj: Any) -> Any:
    """Meta as plain Python types (what ``torch.load(weights_only=True)`` accepts)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, bool | int | str) or obj is None:
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else str(obj)
    if isinstance(obj, torch.Tensor) and obj.numel() == 1:
        return obj.item()
    try:  # numpy scalars
        return obj.item()
    except AttributeError:
        return str(obj)
