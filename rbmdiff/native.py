"""The compiled half of block Gibbs: σ, the random bits and the comparison in one pass per
layer (:meth:`Kernel.bernoulli_`), or whole sweeps, products included, in one call
(:meth:`Kernel.gibbs`; AVX2 and small models: :meth:`Kernel.fuses`).

``_native/bernoulli.c`` is built into ``_native/_bernoulli*.so`` when the package is
installed (``setup.py``; optional) and loaded here with ctypes; nothing is compiled at run
time.  :func:`kernel` returns None where the library was not built (one warning), where the
CPU has neither AVX2+FMA nor a fused multiply-add instruction, or where ``RBMDIFF_NATIVE=0``:
:mod:`rbmdiff.gibbs_kernels` then uses its torch kernel.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.machinery
import operator
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from rbmdiff import seeds

LIBRARY_DIR = Path(__file__).parent / "_native"
LIBRARY_STEM = "_bernoulli"
# rbmdiff_gibbs (whole sweeps, fused) runs where the weights stay close to the core: up to
# this many (n·m ≤ 2^14, 64 KB of float32 per copy; it keeps W and Wᵀ).  Above it the sweep
# reads W from beyond L2 and mm + the pass is faster (benchmarks/throughput.py).
FUSED_MAX_WEIGHTS = 1 << 14
CHUNK = 64  # chains per generator state in rbmdiff_gibbs (its CHUNK)


class Kernel:
    """The loaded library: ``bernoulli_`` draws units in place from a generator state
    (16 xoshiro128+ lanes, 64 uint32 words, :meth:`seed_state`); ``gibbs`` runs whole
    sweeps, one state per chunk of :data:`CHUNK` chains."""

    def __init__(self, lib: ctypes.CDLL, path: Path) -> None:
        self.path = path
        self._bernoulli = lib.rbmdiff_bernoulli
        self._bernoulli.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p,
                                    ctypes.c_int64, ctypes.c_void_p, ctypes.c_int]
        self._bernoulli.restype = None
        self._exp_neg = lib.rbmdiff_exp_neg
        self._exp_neg.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                  ctypes.c_int]
        self._exp_neg.restype = None
        self._gibbs = lib.rbmdiff_gibbs
        self._gibbs.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                                ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int,
                                ctypes.c_int]
        self._gibbs.restype = ctypes.c_int
        self.state_words = int(lib.rbmdiff_state_words())
        self.openmp = bool(lib.rbmdiff_openmp())  # whether gibbs can use several threads
        self.simd = bool(lib.rbmdiff_simd())
        self.fast = self.simd or bool(lib.rbmdiff_portable_fast())
        self.name = "native-avx2" if self.simd else "native-portable"

    def seed_state(self, seed: int) -> np.ndarray:
        """A generator state from a non-negative integer seed: :func:`rbmdiff.seeds.words`
        (a lane that came out all zero, which xoshiro cannot leave, gets a 1)."""
        return self._states(seed, 1)[0]

    def _states(self, seed: int, count: int) -> np.ndarray:
        """``count`` generator states, (count, state_words): consecutive words of seed's
        stream, so state i does not depend on ``count``."""
        states = seeds.words(seed, count * self.state_words).reshape(count, 4, -1)
        lanes = states[:, 0]
        lanes[~states.any(axis=1)] = 1
        return states.reshape(count, -1)

    def fuses(self, n: int, m: int) -> bool:
        """Whether :meth:`gibbs` is the fast way to sweep an n×m RBM here: AVX2+FMA and
        weights that fit a core's caches (:data:`FUSED_MAX_WEIGHTS`)."""
        return self.simd and n * m <= FUSED_MAX_WEIGHTS

    def gibbs(self, v: torch.Tensor, W: torch.Tensor, b: torch.Tensor, c: torch.Tensor,
              sweeps: int, seed: int, *, threads: int = 1, portable: bool = False) -> None:
        """``sweeps`` block-Gibbs sweeps on the chains v (B, n), in place, in one call:
        h ~ σ(c + vW), v ~ σ(b + hWᵀ).  W (n, m); c (m,); b (n,) or (B, n), one row per
        chain.  All contiguous float32 CPU tensors.  Chunk k of 64 chains draws from the
        k-th generator state of ``seed``'s stream (0 ≤ seed < 2^64), so the result depends on
        the seed and not on ``threads`` (OpenMP threads sharing the chunks; one without
        OpenMP).  ``portable`` runs the plain C that the AVX2 path matches bit for bit
        (slow; for tests)."""
        B, n = v.shape if v.dim() == 2 else (-1, -1)
        m = W.shape[1] if W.dim() == 2 else -1
        if not (_plain_f32(v) and _plain_f32(W) and _plain_f32(c) and _plain_f32(b)) or (
                W.shape != (n, m) or c.shape != (m,) or b.shape not in ((n,), (B, n))):
            raise ValueError("gibbs takes contiguous float32 CPU tensors v (B, n), W (n, m), "
                             "b (n,) or (B, n), c (m,)")
        seed, sweeps = operator.index(seed), operator.index(sweeps)
        if not 0 <= seed < 2**64:
            raise ValueError(f"seed must lie in [0, 2^64), got {seed}")
        if sweeps <= 0:
            return
        states = self._states(seed, -(-B // CHUNK))
        rc = self._gibbs(v.data_ptr(), B, n, m, W.data_ptr(), b.data_ptr(),
                         1 if b.dim() == 1 else B, c.data_ptr(), sweeps, states.ctypes.data,
                         max(1, operator.index(threads)), int(portable))
        if rc != 0:
            raise MemoryError(f"the compiled Gibbs sweep could not allocate its buffers for "
                              f"{B} chains of a {n}×{m} RBM")

    def bernoulli_(self, x: torch.Tensor, state: np.ndarray, bias: torch.Tensor | None = None,
                   *, portable: bool = False) -> None:
        """x <- 1 where U < σ(x + bias), else 0, in place.  x: contiguous float32 CPU tensor;
        bias: None, a row (x's last dimension, broadcast over the rows) or x's shape.  Writes
        through x's pointer: not for tensors autograd tracks (their version counter is not
        bumped)."""
        self.bound(state, x, bias, portable=portable)()

    def bound(self, state: np.ndarray, x: torch.Tensor, bias: torch.Tensor | None = None, *,
              portable: bool = False) -> Callable[[], None]:
        """``bernoulli_(x, state, bias)`` as a call without arguments, every check and
        conversion done once, for a buffer redrawn in place every sweep.  The call keeps x,
        bias and state alive; x must keep its storage (``out=`` of the right shape does)."""
        if state.dtype != np.uint32 or state.size != self.state_words or not (
                state.flags.c_contiguous and state.flags.writeable):
            raise ValueError(f"state must be {self.state_words} writable uint32 words")
        if not _plain_f32(x):
            raise ValueError("the compiled kernel takes a contiguous float32 CPU tensor")
        if bias is not None and not (_plain_f32(bias) and bias.shape in (x.shape, x.shape[-1:])):
            raise ValueError(f"bias of shape {tuple(bias.shape)} for units of shape "
                             f"{tuple(x.shape)}: need a contiguous float32 row or the same shape")
        args = (ctypes.c_void_p(x.data_ptr()), ctypes.c_int64(x.numel()),
                ctypes.c_void_p(None if bias is None else bias.data_ptr()),
                ctypes.c_int64(0 if bias is None else bias.numel()),
                ctypes.c_void_p(state.ctypes.data), ctypes.c_int(int(portable)))
        draw, keep = self._bernoulli, (x, bias, state)

        def call() -> None:
            draw(*args)
            _ = keep  # the pointers stay valid while this closure lives

        return call

    def exp_neg(self, x: np.ndarray, *, portable: bool = False) -> np.ndarray:
        """e^{-x} as the kernel computes it (x clamped to [-88, 87]); for its accuracy test."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        out = np.empty_like(x)
        self._exp_neg(x.ctypes.data, out.ctypes.data, x.size, int(portable))
        return out


def _plain_f32(t: torch.Tensor) -> bool:
    return (t.dtype == torch.float32 and t.device.type == "cpu" and t.is_contiguous()
            and t.numel() > 0)


def library_path() -> Path | None:
    """The built library in the package folder (``_bernoulli`` + this Python's extension
    suffix), or None where the package was installed without it."""
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = LIBRARY_DIR / f"{LIBRARY_STEM}{suffix}"
        if path.is_file():
            return path
    return None


@functools.cache
def _load() -> Kernel | None:
    """The library loaded once per process; None, after one RuntimeWarning, where it is
    missing or unusable on this CPU."""
    path = library_path()
    try:
        if path is None:
            raise OSError("rbmdiff was installed without it (no C compiler, or "
                          "RBMDIFF_BUILD_NATIVE=0)")
        built = Kernel(ctypes.CDLL(str(path)), path)
        if not built.fast:
            raise OSError("this CPU has no AVX2+FMA and no fast fmaf, on which the portable "
                          "C is slower than torch")
    except (OSError, AttributeError) as exc:
        warnings.warn(
            f"rbmdiff: the compiled Gibbs kernel is unavailable ({exc}); using the torch "
            "kernel (same law, another random stream, slower). Reinstall rbmdiff with a C "
            "compiler present for it; RBMDIFF_NATIVE=0 silences this.",
            RuntimeWarning, stacklevel=3,
        )
        return None
    return built


def kernel() -> Kernel | None:
    """The compiled kernel, or None when RBMDIFF_NATIVE=0 or it is unavailable here."""
    if os.environ.get("RBMDIFF_NATIVE", "1").strip() == "0":
        return None
    return _load()
