"""The compiled half of block Gibbs: σ, the random bits and the comparison in one pass per
layer (:meth:`Kernel.bernoulli_`), or whole sweeps, products included, in one call
(:meth:`Kernel.gibbs`, AVX2 and small models: :meth:`Kernel.fuses`).

``_native/bernoulli.c`` is compiled on first use with the system C compiler (``$CC``, else
``cc``) into ``$XDG_CACHE_HOME/rbmdiff/native`` (default ``~/.cache/rbmdiff/native``), under
a name that hashes the source, the flags and the platform, and loaded with ctypes.  Where no
compiler works (or the CPU has neither AVX2+FMA nor a fused multiply-add instruction for the
portable C), :func:`kernel` returns None after one warning and :meth:`rbmdiff.RBM.gibbs` uses
its torch kernel: same law, another random stream, 1.2–4× slower at one thread
(``benchmarks/throughput.py``).
``RBMDIFF_NATIVE=0`` turns the compiled kernel off.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import operator
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

SOURCE = Path(__file__).parent / "_native" / "bernoulli.c"
FLAGS = ("-O3", "-shared", "-fPIC", "-std=gnu11", "-ffp-contract=off", "-pthread")
# Tried in order: OpenMP, whose threads are torch's own pool when torch's libgomp is loaded
# (the Linux wheels; fresh pthreads lose the cores to that pool's spinning workers after
# torch's parallel work), then plain pthreads where the compiler has no OpenMP or its library
# does not load.
VARIANTS: tuple[tuple[str, ...], ...] = (("-fopenmp",), ())
# rbmdiff_gibbs (whole sweeps, fused) runs where the weights stay close to the core: up to
# this many (n·m ≤ 2^14, 64 KB of float32 per copy; it keeps W and Wᵀ).  Above it the sweep
# reads W from L2 or beyond once per block of 4 chains and mm + the pass wins: fused over
# mm + pass measured 1.1–1.3× up to 64×64, 0.95–1.12× at 128×128 and 0.6–0.7× at 256×256
# and 784×500 (benchmarks/throughput.py, 1,024 chains, 1 thread).
FUSED_MAX_WEIGHTS = 1 << 14
# Threads only where a call has enough work to pay for starting them (~30 µs each).
THREAD_MIN_MULTIPLY_ADDS = 1 << 22
# RBM.gibbs splits a long fused run into calls of about this many multiply-adds (≈ 30–60 ms
# here): the GIL is released inside a call, and Ctrl-C is only seen between calls.
SLICE_MULTIPLY_ADDS = 1 << 30
CHUNK = 64  # chains per random stream in rbmdiff_gibbs (its CHUNK)
COMPILE_TIMEOUT_S = 120

_lock = threading.Lock()
_loaded: dict[tuple, Kernel | None] = {}  # by ($CC, $XDG_CACHE_HOME)
# GNU OpenMP's thread pool does not survive fork(): once a parallel region has run, by us or
# by torch, a forked child's next one waits for ever (torch's own parallel work hangs there
# too).  Which regions ran cannot be seen from here, so a forked child starts pthreads (same
# chains) unless its parent says, by openmp_usable_after_fork(), that it computed nothing
# before forking (the warm stage server does).
_openmp_unusable = False


def _after_fork_in_child() -> None:
    global _openmp_unusable
    _openmp_unusable = True


def openmp_usable_after_fork() -> None:
    """Call in a child forked from a process that has run no parallel work (neither torch's
    nor this library's): the fused sweep may then use OpenMP's threads, torch's pool."""
    global _openmp_unusable
    _openmp_unusable = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Kernel:
    """The loaded library: ``bernoulli_`` draws units in place, ``seed_state`` makes the
    generator state it advances (16 xoshiro128+ lanes, 64 uint32 words); ``gibbs`` runs
    whole sweeps from a seed."""

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
                                ctypes.c_void_p, ctypes.c_int64, ctypes.c_uint64, ctypes.c_int,
                                ctypes.c_int, ctypes.c_int]
        self._gibbs.restype = ctypes.c_int
        self.state_words = int(lib.rbmdiff_state_words())
        self.openmp = bool(lib.rbmdiff_openmp())
        runtime = lib.rbmdiff_openmp_runtime
        runtime.restype = ctypes.c_char_p
        # the OpenMP runtime file the loader bound this library to ("" without OpenMP)
        self.openmp_runtime = os.fsdecode(runtime() or b"")
        # how the fused sweep's threads start: "openmp", or "pthreads" and why not OpenMP
        self._threading = "openmp" if self.openmp else "pthreads"
        self.simd = bool(lib.rbmdiff_simd())
        self.fast = self.simd or bool(lib.rbmdiff_portable_fast())
        self.name = "native-avx2" if self.simd else "native-portable"

    @property
    def threading(self) -> str:
        """How the fused sweep starts its threads here: "openmp", or "pthreads (why)"."""
        if self.openmp and _openmp_unusable:
            return "pthreads (a forked child: its parent's OpenMP pool may not survive)"
        return self._threading

    @threading.setter
    def threading(self, value: str) -> None:
        self._threading = value

    def seed_state(self, seed: int) -> np.ndarray:
        """A fresh generator state from a non-negative integer seed (NumPy's SeedSequence
        spreads it over the words; a lane that came out all zero, which xoshiro cannot
        leave, gets a 1)."""
        state = np.random.SeedSequence(seed).generate_state(self.state_words, np.uint32)
        lanes = state.reshape(4, -1)
        lanes[0, ~lanes.any(axis=0)] = 1
        return state

    def fuses(self, n: int, m: int) -> bool:
        """Whether :meth:`gibbs` is the fast way to sweep an n×m RBM here: AVX2+FMA and
        weights that fit a core's caches (:data:`FUSED_MAX_WEIGHTS`)."""
        return self.simd and n * m <= FUSED_MAX_WEIGHTS

    def gibbs(self, v: torch.Tensor, W: torch.Tensor, b: torch.Tensor, c: torch.Tensor,
              sweeps: int, seed: int, *, threads: int = 1, portable: bool = False) -> None:
        """``sweeps`` block-Gibbs sweeps on the chains v (B, n), in place, in one call:
        h ~ σ(c + vW), v ~ σ(b + hWᵀ).  W (n, m); c (m,); b (n,) or (B, n), one row per
        chain.  All contiguous float32 CPU tensors.  The random streams come from ``seed``
        (0 ≤ seed < 2^64), one per block of 64 chains, so the result depends on the seed
        and not on ``threads`` (workers, at most one per block of chains, as many as asked
        for otherwise; pthreads in a forked child, see :func:`openmp_usable_after_fork`).
        ``portable`` runs the plain C that the AVX2 path matches bit for bit (slow; for
        tests)."""
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
        threads = max(1, min(operator.index(threads), -(-B // CHUNK)))
        openmp = self.openmp and not _openmp_unusable
        rc = self._gibbs(v.data_ptr(), B, n, m, W.data_ptr(), b.data_ptr(),
                         1 if b.dim() == 1 else B, c.data_ptr(), sweeps, seed, threads,
                         int(openmp), int(portable))
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
        conversion done once: for a buffer redrawn in place many times (``RBM.gibbs`` draws
        its two layers' buffers every sweep; checking and converting per call cost ~8 µs, about
        5 % of a 64×16 sweep over 1,024 chains).  The call keeps x, bias and state alive;
        x must keep its storage (``out=`` of the right shape does)."""
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


def cache_dir() -> Path:
    """$XDG_CACHE_HOME/rbmdiff/native (default ~/.cache/rbmdiff/native)."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "rbmdiff" / "native"


def _compiler() -> list[str]:
    return shlex.split(os.environ.get("CC") or "") or ["cc"]


def library_path(directory: Path | None = None, *, extra: tuple[str, ...]) -> Path:
    """Where the library for this source, compiler command, flags (``FLAGS`` + ``extra``)
    and platform lives."""
    key = hashlib.sha256()
    for part in (SOURCE.read_bytes(), repr((_compiler(), FLAGS + extra)).encode(),
                 f"{sys.platform}-{platform.machine()}".encode()):
        key.update(part)
    return (directory or cache_dir()) / f"bernoulli-{key.hexdigest()[:16]}.so"


def _compile(target: Path, extra: tuple[str, ...]) -> None:
    """Compile to a temporary name beside ``target``, then rename: concurrent processes
    each finish their own file and the last rename wins, never a half-written library."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=target.stem + ".", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        cmd = [*_compiler(), *FLAGS, *extra, "-o", tmp, str(SOURCE), "-lm"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S)
        if proc.returncode != 0:
            first = (proc.stderr.strip().splitlines() or ["no message"])[0]
            raise RuntimeError(f"`{shlex.join(cmd[:1])}` failed: {first}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _load(path: Path, extra: tuple[str, ...]) -> Kernel:
    """Load the library at ``path``, compiling it first where it is missing or does not
    load (a truncated or foreign file).  A library that was just compiled and still does not
    load (a runtime library missing, say) is marked, so that later processes do not compile
    it again: they try to load it, raise with the same reason if it still fails, and drop
    the mark once it loads."""
    unusable = path.with_suffix(".unusable")
    if path.is_file():
        try:
            kern = Kernel(ctypes.CDLL(str(path)), path)
        except (OSError, AttributeError) as exc:
            if unusable.is_file():  # marked: do not compile it again
                raise RuntimeError(f"{unusable.read_text().strip()} (again: {_first_line(exc)}; "
                                   f"delete {unusable} to compile it again)") from None
            path.unlink(missing_ok=True)
        else:
            unusable.unlink(missing_ok=True)  # it loads now (a library installed since)
            return kern
    _compile(path, extra)
    try:
        return Kernel(ctypes.CDLL(str(path)), path)
    except (OSError, AttributeError) as exc:
        reason = (f"{path.name} compiled with {shlex.join(extra) or 'no extra flags'} but "
                  f"does not load: {_first_line(exc)}")
        try:
            unusable.write_text(reason + "\n")
        except OSError:
            pass
        raise RuntimeError(reason) from None


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _build_variant(extra: tuple[str, ...]) -> Kernel:
    try:
        return _load(library_path(extra=extra), extra)
    except OSError as exc:  # a read-only cache folder: build into this user's temp folder
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        return _load(library_path(_private_temp_folder(), extra=extra), extra)


_OPENMP_RUNTIME = re.compile(r"/lib(gomp|omp|iomp5)([-.][^/]*)?\.so[^/]*$")


def openmp_runtimes() -> set[str]:
    """The OpenMP runtime libraries mapped into this process (Linux; elsewhere, empty)."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return set()
    paths = (line.split(maxsplit=5)[-1] for line in maps.splitlines())
    return {os.path.realpath(p) for p in paths if p.startswith("/") and _OPENMP_RUNTIME.search(p)}


# the OpenMP runtimes in the process when this module was imported, just after torch
RUNTIMES_AT_IMPORT = frozenset(openmp_runtimes())


def _build() -> Kernel:
    """The first of :data:`VARIANTS` that compiles and loads; the last one's error if none.
    The OpenMP build is kept only where its runtime is one that was in the process when this
    module was imported, just after torch (torch's, on the Linux wheels), or where there was
    none: another runtime (clang's libomp beside torch's libgomp, say) would run a second pool
    of spinning threads against torch's.  A compiler that times out is not asked again."""
    reasons = []
    for extra in VARIANTS[:-1]:
        try:
            built = _build_variant(extra)
        except subprocess.TimeoutExpired:
            raise
        except (OSError, AttributeError, RuntimeError, subprocess.SubprocessError) as exc:
            reasons.append(f"{shlex.join(extra)}: {exc}")
            continue
        ours = os.path.realpath(built.openmp_runtime) if built.openmp_runtime else ""
        if built.openmp and RUNTIMES_AT_IMPORT and ours not in RUNTIMES_AT_IMPORT:
            reasons.append(f"{shlex.join(extra)}: binds {ours or 'an unknown runtime'}, not "
                           f"{', '.join(sorted(RUNTIMES_AT_IMPORT))}")
            continue
        return built
    built = _build_variant(VARIANTS[-1])
    if reasons:
        built.threading = f"pthreads ({'; '.join(reasons)})"
    return built


def _private_temp_folder() -> Path:
    """This user's rbmdiff-native folder in the temp folder, made 0700; a fresh private one
    when that name exists but belongs to someone else or others can write to it (a library
    planted there would run in this process)."""
    uid = os.getuid() if hasattr(os, "getuid") else None
    folder = Path(tempfile.gettempdir()) / f"rbmdiff-native-{uid if uid is not None else 'user'}"
    folder.mkdir(mode=0o700, exist_ok=True)
    st = folder.lstat()
    if uid is not None and (st.st_uid != uid or st.st_mode & 0o022 or folder.is_symlink()):
        folder = Path(tempfile.mkdtemp(prefix="rbmdiff-native-"))
    return folder


def kernel() -> Kernel | None:
    """The compiled kernel, built on the first call; None when RBMDIFF_NATIVE=0 or when it
    cannot be built (one RuntimeWarning per process says why and what to do)."""
    if os.environ.get("RBMDIFF_NATIVE", "1").strip() == "0":
        return None
    key = (os.environ.get("CC"), os.environ.get("XDG_CACHE_HOME"))
    with _lock:
        if key not in _loaded:
            try:
                built = _build()
                if not built.fast:
                    raise RuntimeError("this CPU has no AVX2+FMA and no fast fmaf, on which "
                                       "the portable C is slower than torch")
                _loaded[key] = built
            except (OSError, AttributeError, RuntimeError, subprocess.SubprocessError) as exc:
                _loaded[key] = None
                warnings.warn(
                    f"rbmdiff: the compiled Gibbs kernel is unavailable ({exc}); using the "
                    "torch kernel (same law, another stream, 1.2-4x slower). Install a C "
                    "compiler or set CC to one; RBMDIFF_NATIVE=0 silences this.",
                    RuntimeWarning, stacklevel=2,
                )
        return _loaded[key]
