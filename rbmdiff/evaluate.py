"""Model metrics on held-out data: exact where enumerable, AIS beyond (docs/math.md §1, §7)."""

from __future__ import annotations

import torch

from rbmdiff.ais import log_partition_ais
from rbmdiff.data import is_binary
from rbmdiff.device import resolve, to_device
from rbmdiff.exact import kl_data_model, log_partition
from rbmdiff.rbm import RBM
from rbmdiff.train import EXACT_EVAL_BITS


def evaluate(
    rbm: RBM, test: torch.Tensor, *, ais_chains: int = 200, ais_betas: int = 2000, seed: int = 0,
    device: str = "cpu",
) -> dict:
    """Metrics of ``rbm`` on test: (N, n) in [0, 1].

    ``test_log_likelihood`` (mean log p(v), nats) is exact when min(n, m) ≤ 20; beyond, log Z
    comes from AIS and the value is reported as ``test_log_likelihood_ais`` with its error.
    Grey-level test data are scored by their mean free energy only (log p needs binary v).
    ``device``: "auto", "cpu" or "cuda" (:func:`rbmdiff.device.resolve`); it is reported.
    """
    dev = resolve(device)
    rbm, test = to_device(rbm, dev), test.to(dev)
    binary = is_binary(test)
    v = test.to(rbm.dtype)
    with torch.no_grad():
        mean_f = float(rbm.free_energy(v).mean())
    out: dict = {
        "n_visible": rbm.n_visible, "n_hidden": rbm.n_hidden, "num_rows": int(test.shape[0]),
        "binary_data": binary, "mean_free_energy": mean_f,
        "score": rbm.meta.get("score"), "training": rbm.meta.get("training", {}).get("method"),
        "device": str(dev),
    }
    if min(rbm.n_visible, rbm.n_hidden) <= EXACT_EVAL_BITS:
        log_z = log_partition(rbm)
        out.update(log_partition=log_z, log_partition_method="exact")
        if binary:
            out["test_log_likelihood"] = -mean_f - log_z
            out["kl_data_model"] = kl_data_model(rbm, test)
    else:
        log_z, stderr = log_partition_ais(rbm, num_chains=ais_chains, num_betas=ais_betas,
                                          seed=seed)
        out.update(log_partition=log_z, log_partition_stderr=stderr, log_partition_method="ais")
        if binary:
            out["test_log_likelihood_ais"] = -mean_f - log_z
    return out
