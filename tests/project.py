"""A tiny, self-contained copy of the project for tests and benchmarks (bars-and-stripes 3×3).

``make_project(dest)`` copies what the pipeline needs (dvc.yaml, params.yaml, .dvc/, flows/,
rbmdiff/) from this checkout into ``dest``, shrinks params.yaml by :data:`TINY`, and makes it
a git repository with one commit, as a fresh clone would be.  :func:`dvc_env` is the
environment to run ``dvc`` in it.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

SOURCE = Path(__file__).resolve().parent.parent
FILES = ("dvc.yaml", "params.yaml", ".dvcignore", ".gitignore", ".dvc/config", ".dvc/.gitignore",
         "data/.gitignore")
PACKAGES = ("flows", "rbmdiff")

# Every route still runs; each in well under a second.  bas-3x3: n = 9 ≤ 20, so the exact
# test log-likelihood and TV distance are in every record.
TINY: dict[str, Any] = {
    "data": {"name": "bas-3x3"},
    "train": {"n_hidden": 4, "steps": 60, "batch_size": 14, "m_method": "exact", "lr": 0.04},
    "embed": {"mock": True, "mock_shape": [4]},  # the mock even where a token is configured
    "sample": {
        "sde": {"num_samples": 300, "steps": 20},
        "ode": {"num_samples": 300, "steps": 5},
        "gibbs": {"num_samples": 300, "num_sweeps": 20},
        "anneal": {"num_samples": 300, "num_sweeps": 20},
        "qpu": {"num_samples": 300, "calibration_rounds": 1, "calibration_reads": 100,
                "mock_sweeps": 50},
    },
    "report": {"grid_samples": 4},
    "campaign": {"num_samples": 100, "max_call_fraction": 1.0,
                 "fixed": {"calibration_reads": 100, "mock_sweeps": 50},
                 "sweep": {"num_reads": [None], "annealing_time": [20, 50],
                           "chain_strength": [None], "calibration_rounds": [0],
                           "mock": ["annealer"]}},
}


def merge(base: dict, overrides: dict) -> dict:
    """``base`` with ``overrides`` merged in, nested mappings key by key."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def git(root: Path, *args: str) -> str:
    """Run git in ``root`` with a fixed identity; -> its stdout."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "rbmdiff", "GIT_AUTHOR_EMAIL": "rbmdiff@localhost",
           "GIT_COMMITTER_NAME": "rbmdiff", "GIT_COMMITTER_EMAIL": "rbmdiff@localhost"}
    return subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True,
                          text=True).stdout


def dvc_env() -> dict:
    """The environment for ``dvc repro``: no analytics, this interpreter first on PATH (the
    stages' ``python``)."""
    return {**os.environ, "DVC_NO_ANALYTICS": "1",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def write_params(root: Path, overrides: dict) -> None:
    """Merge ``overrides`` into ``root``/params.yaml."""
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(merge(yaml.safe_load(path.read_text()), overrides),
                                   sort_keys=False))


def make_project(dest: Path, *, overrides: dict | None = None, routes: list[str] | None = None,
                 source: Path = SOURCE) -> Path:
    """A committed git repository at ``dest`` holding the pipeline, params shrunk by
    ``overrides`` (default :data:`TINY`), keeping only the sample ``routes`` (default all).
    -> dest."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for package in PACKAGES:
        shutil.copytree(source / package, dest / package, ignore=ignore)
    write_params(dest, TINY if overrides is None else overrides)
    if routes is not None:
        path = dest / "params.yaml"
        params = yaml.safe_load(path.read_text())
        params["sample"] = {r: params["sample"][r] for r in routes}
        path.write_text(yaml.safe_dump(params, sort_keys=False))
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "tiny rbmdiff project")
    return dest
