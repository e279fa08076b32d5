from __future__ import annotations

import atexit
import math
import os
import shutil
import tempfile

import pytest
import torch

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# Prefect in tests: a throw-away home (its profiles and the ephemeral API's database) and no
# API of the user's, so tests reach no network and leave the user's Prefect alone.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="rbmdiff-prefect-home-")
for _key in ("PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_PROFILE", "PREFECT_PROFILES_PATH"):
    os.environ.pop(_key, None)
# Caches kept under the home folder (our embeddings) go to a throw-away folder, for this
# process and the subprocesses it starts.
_HOME = tempfile.mkdtemp(prefix="rbmdiff-test-home-")
os.environ["XDG_DATA_HOME"] = os.path.join(_HOME, "data")
os.environ["XDG_CACHE_HOME"] = os.path.join(_HOME, "cache")
# removed when the test process exits (after Prefect's own atexit stops its server: LIFO)
for _folder in (os.environ["PREFECT_HOME"], _HOME):
    atexit.register(shutil.rmtree, _folder, ignore_errors=True)
torch.set_num_threads(1)

from rbmdiff import RBM  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def busclique_cache_in_tmp(tmp_path_factory):
    """busclique keeps its biclique tables beside the interpreter (not under XDG_DATA_HOME):
    point it at a temp folder for every test in this process."""
    from minorminer.busclique import busgraph_cache

    root = tmp_path_factory.mktemp("busclique")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(busgraph_cache, "cache_rootdir", staticmethod(lambda version=0: str(root)))
        yield


@pytest.fixture
def tiny_rbm() -> RBM:
    """6 visible × 4 hidden, strong enough couplings that the law is far from uniform."""
    return RBM.random(6, 4, scale=1.0, seed=3, dtype=torch.float64)


def expected_tv(p: torch.Tensor, num: int) -> float:
    """E TV(p̂_N, p) ≈ ½ Σ_i E|p̂_i - p_i| ≈ ½ Σ_i √(2 p_i (1 - p_i) / (π N))  (normal approx.)."""
    p = p.double()
    return float(0.5 * torch.sqrt(2 * p * (1 - p) / (math.pi * num)).sum())


def brute_log_z(rbm: RBM) -> float:
    """log Σ_{v,h} e^{-E(v,h)} over all 2^(n+m) joint states."""
    from rbmdiff.exact import binary_states

    s = binary_states(rbm.n_visible + rbm.n_hidden, dtype=torch.float64)
    v, h = s[:, : rbm.n_visible], s[:, rbm.n_visible:]
    return float(torch.logsumexp(-rbm.energy(v, h), 0))
