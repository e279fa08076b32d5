"""Block-Gibbs sweep kernels behind one signature (docs/design.md §9).

A kernel is called as ``kernel(v, W, b, c, sweeps, seed)`` and runs ``sweeps`` sweeps
h ~ σ(c + vW), v ~ σ(b + hWᵀ) on the chains v (B, n) in place; W (n, m), c (m,), b (n,) or
(B, n), all contiguous, of one dtype and on one device; ``seed`` (0 ≤ seed < 2^63) names its
random stream.  Per layer each unit is set to 1 iff U < σ(x) for a uniform U.  Every kernel
samples the same law; each has its own stream (``stream``).  :func:`select` picks one:
the compiled kernel (:mod:`rbmdiff.native`) for float32 CPU tensors where it was built,
the device kernel for chains on an accelerator, else the torch kernel (float64, or no
compiled library).
"""

from __future__ import annotations

import torch

from rbmdiff import native, seeds

GIBBS_BLOCK = 1 << 20  # uniforms the torch kernel draws per call (4 MiB in float32)
# The fused kernel runs a long job as calls of about this many multiply-adds: the GIL is
# released inside a call, and Ctrl-C is seen between calls.
SLICE_MULTIPLY_ADDS = 1 << 30
# Threads only for calls with enough work to pay for starting them.
THREAD_MIN_MULTIPLY_ADDS = 1 << 22


class TorchKernel:
    """x by ``addmm(out=)``, then ``sigmoid_`` and ``gt_`` against 24-bit (float32) or 53-bit
    (float64) uniforms from :func:`rbmdiff.seeds.generator` (NumPy's PCG64), drawn for a block
    of sweeps (up to :data:`GIBBS_BLOCK` units) at a time: CPU chains."""

    name = "torch"
    stream = "numpy-pcg64"

    def threads(self) -> int:
        return torch.get_num_threads()

    def __call__(self, v: torch.Tensor, W: torch.Tensor, b: torch.Tensor, c: torch.Tensor,
                 sweeps: int, seed: int) -> None:
        B, n, m = v.shape[0], W.shape[0], W.shape[1]
        h = torch.empty(B, m, dtype=v.dtype, device=v.device)
        per_sweep = B * (n + m)
        block = max(1, min(sweeps, GIBBS_BLOCK // per_sweep))
        u_dtype = torch.float64 if v.dtype == torch.float64 else torch.float32
        uniforms = torch.empty(block, per_sweep, dtype=u_dtype)
        rng = seeds.generator(seed)
        for first in range(0, sweeps, block):
            count = min(block, sweeps - first)
            rng.random(out=uniforms[:count].numpy(), dtype=uniforms.numpy().dtype)
            for u in uniforms[:count].to(v.device):
                # h_j = 1 iff U < σ(c_j + (vW)_j);  then v_i = 1 iff U' < σ(b_i + (W h)_i)
                torch.addmm(c, v, W, out=h).sigmoid_().gt_(u[: B * m].view(B, m))
                torch.addmm(b, h, W.T, out=v).sigmoid_().gt_(u[B * m:].view(B, n))


class DeviceKernel:
    """x by ``addmm(out=)``, then ``sigmoid_`` and ``gt_`` against uniforms drawn where the
    chains are, by a torch generator of that device seeded with ``seed`` (Philox on CUDA):
    for chains on an accelerator, where drawing on the CPU and copying would dominate."""

    name = "torch-device"
    stream = "torch generator of the chains' device"

    def threads(self) -> int:
        return 1

    def __call__(self, v: torch.Tensor, W: torch.Tensor, b: torch.Tensor, c: torch.Tensor,
                 sweeps: int, seed: int) -> None:
        h = torch.empty(v.shape[0], W.shape[1], dtype=v.dtype, device=v.device)
        u_h, u_v = torch.empty_like(h), torch.empty_like(v)
        g = torch.Generator(device=v.device).manual_seed(seed)
        for _ in range(sweeps):
            torch.addmm(c, v, W, out=h).sigmoid_().gt_(u_h.uniform_(generator=g))
            torch.addmm(b, h, W.T, out=v).sigmoid_().gt_(u_v.uniform_(generator=g))


class PassKernel:
    """vW by ``mm(out=)`` and one compiled pass per layer that adds the bias and draws the
    units (:meth:`rbmdiff.native.Kernel.bound`), in preallocated buffers: for models whose
    weights do not fit a core's caches."""

    stream = "xoshiro128+ (16 lanes, state from rbmdiff.seeds.words)"

    def __init__(self, kern: native.Kernel) -> None:
        self.kern, self.name = kern, kern.name

    def threads(self) -> int:
        return torch.get_num_threads()  # torch's mm; the pass runs on one thread

    def __call__(self, v: torch.Tensor, W: torch.Tensor, b: torch.Tensor, c: torch.Tensor,
                 sweeps: int, seed: int) -> None:
        h = torch.empty(v.shape[0], W.shape[1], dtype=v.dtype)
        state = self.kern.seed_state(seed)
        draw_h, draw_v = self.kern.bound(state, h, c), self.kern.bound(state, v, b)
        WT = W.T
        for _ in range(sweeps):
            torch.mm(v, W, out=h)  # same shape: h keeps its storage
            draw_h()
            torch.mm(h, WT, out=v)
            draw_v()


class FusedKernel:
    """Whole sweeps in compiled calls (:meth:`rbmdiff.native.Kernel.gibbs`) of about
    :data:`SLICE_MULTIPLY_ADDS` each.  Call 0 takes ``seed``, call i the derived seed
    ``seeds.derive(seed, i)``; torch's thread count for calls large enough to share."""

    stream = "xoshiro128+ (16 lanes per 64 chains, states from rbmdiff.seeds.words)"

    def __init__(self, kern: native.Kernel) -> None:
        self.kern, self.name = kern, kern.name + "-fused"

    def threads(self) -> int:
        return torch.get_num_threads() if self.kern.openmp else 1

    def __call__(self, v: torch.Tensor, W: torch.Tensor, b: torch.Tensor, c: torch.Tensor,
                 sweeps: int, seed: int) -> None:
        per_sweep = 2 * v.shape[0] * W.shape[0] * W.shape[1]  # multiply-adds, both layers
        step = max(1, SLICE_MULTIPLY_ADDS // per_sweep)
        threads = self.threads() if min(step, sweeps) * per_sweep >= THREAD_MIN_MULTIPLY_ADDS \
            else 1
        for i, first in enumerate(range(0, sweeps, step)):
            self.kern.gibbs(v, W, b, c, min(step, sweeps - first), seeds.derive(seed, i),
                            threads=threads)


GibbsKernel = TorchKernel | DeviceKernel | PassKernel | FusedKernel
_TORCH = TorchKernel()
_DEVICE = DeviceKernel()


def select(W: torch.Tensor) -> GibbsKernel:
    """The kernel for an RBM with weights W (n, m): compiled for float32 CPU tensors where
    the library is available (fused when it fits the caches), the device kernel for tensors on
    an accelerator, torch otherwise."""
    if W.device.type != "cpu":
        return _DEVICE
    if W.dtype != torch.float32:
        return _TORCH
    kern = native.kernel()
    if kern is None:
        return _TORCH
    return FusedKernel(kern) if kern.fuses(*W.shape) else PassKernel(kern)


def provenance(W: torch.Tensor) -> dict:
    """What :func:`select` picks for weights W, for a sampler's info: the kernel's name, its
    random stream and the threads it may use."""
    kernel = select(W)
    return {"kernel": kernel.name, "kernel_stream": kernel.stream,
            "kernel_threads": kernel.threads()}
