"""The models the QPU-route benchmark and tests sample: bars-and-stripes 4×4 RBMs (16×16), dense
and Zephyr-native, fitted by exact maximum likelihood (log Z by enumeration, full batch, Adam).

    python benchmarks/qpu_models.py OUT_DIR [--steps 200] [--only dense] [--suffix S]

writes bas4x4_dense{S}.pt and bas4x4_zephyr{S}.pt (the native one keeps its mask and
meta["layout"], so the ``qpu`` sampler embeds it with one qubit per unit).

tests/data holds: bas4x4_dense.pt and bas4x4_zephyr.pt (``--steps 200``: KL 0.075 and 0.373)
and bas4x4_dense_ml1000.pt (``--steps 1000 --only dense --suffix _ml1000``: KL 0.010,
max |W| 10.7), the model of the annealer-mock test; digits16_dense.pt and digits16_zephyr.pt,
DSM with mean-field m, 2,000 steps, on digits-binary with 16 hidden units:
``rbmdiff train --data digits-binary --n-hidden 16 --m-method meanfield --steps 2000
[--topology zephyr] --threads 1 --out F``
(exact test LL −19.20 dense, −23.37 Zephyr-native with 224 of 1,024 couplings).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from rbmdiff import RBM
from rbmdiff.data import bars_and_stripes
from rbmdiff.exact import kl_data_model, log_partition_tensor
from rbmdiff.topology import native_layout


def fit_ml(x: torch.Tensor, n_hidden: int, *, steps: int, lr: float = 0.1, seed: int = 0,
           mask: torch.Tensor | None = None) -> RBM:
    """Exact maximum likelihood: minimise mean F(x) + log Z; W stays 0 outside ``mask``."""
    g = torch.Generator().manual_seed(seed)
    keep = torch.ones(x.shape[1], n_hidden, dtype=torch.bool) if mask is None else mask
    W = (0.01 * torch.randn(x.shape[1], n_hidden, generator=g, dtype=torch.float64) * keep)
    W.requires_grad_()
    b = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    c = torch.zeros(n_hidden, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([W, b, c], lr=lr)
    for _ in range(steps):
        rbm = RBM(W * keep, b, c)
        loss = rbm.free_energy(x).mean() + log_partition_tensor(rbm)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return RBM((W * keep).detach(), b.detach(), c.detach(), mask=mask)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--only", choices=("dense", "zephyr"), default=None)
    ap.add_argument("--suffix", default="")
    args = ap.parse_args()
    x = torch.tensor(bars_and_stripes(4), dtype=torch.float64)
    args.out.mkdir(parents=True, exist_ok=True)
    mask, layout = native_layout(16, 16, "zephyr")
    for name, m in (("dense", None), ("zephyr", mask)):
        if args.only not in (None, name):
            continue
        rbm = fit_ml(x, 16, steps=args.steps, mask=m)
        if m is not None:
            rbm.meta["layout"] = layout
        rbm.meta["kl_data_model"] = kl_data_model(rbm, x)
        rbm.save(args.out / f"bas4x4_{name}{args.suffix}.pt")
        print(name, "KL", rbm.meta["kl_data_model"], "couplings", int((rbm.W != 0).sum()))


if __name__ == "__main__":
    main()
