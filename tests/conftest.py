from __future__ import annotations

import atexit
import math
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
for _key in ("PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_PROFILE", "PREFECT_PROFILES_PATH"):
    os.environ.pop(_key, None)

# Every pytest process keeps its throw-away folders in TEST_TMP/<its pid>
TEST_TMP = Path(tempfile.gettempdir()) / "rbmdiff-tests"


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_dead_runs(parent: Path) -> list[Path]:
    """Remove the folders in ``parent`` whose pytest process is gone (one killed before its
    exit handlers ran); -> the folders removed."""
    gone = [d for d in parent.glob("*") if d.name.isdigit() and not alive(int(d.name))]
    for folder in gone:
        shutil.rmtree(folder, ignore_errors=True)
    return gone


def pytest_configure(config: pytest.Config) -> None:
    """Before any test module imports Prefect: a throw-away Prefect home (its profiles and the
    ephemeral API's database) and no API of the user's, so tests reach no network and leave
    the user's Prefect alone; caches kept under the home folder (our embeddings) go to a
    throw-away folder too, for this process and the subprocesses it starts."""
    TEST_TMP.mkdir(exist_ok=True)
    remove_dead_runs(TEST_TMP)
    mine = TEST_TMP / str(os.getpid())
    shutil.rmtree(mine, ignore_errors=True)  # a reused pid's stale folder
    for name in ("prefect", "data", "cache"):
        (mine / name).mkdir(parents=True)
    os.environ["PREFECT_HOME"] = str(mine / "prefect")
    os.environ["XDG_DATA_HOME"] = str(mine / "data")
    os.environ["XDG_CACHE_HOME"] = str(mine / "cache")
    # removed when the test process exits, after Prefect's own exit handler has stopped its
    # temporary server (exit handlers run last registered first)
    atexit.register(shutil.rmtree, mine, ignore_errors=True)


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
