"""DVC as the pipeline's ledger: which stages are stale, and recording what a run produced.

Which stages are stale is DVC's answer (``dvc status``); their order and what lies downstream
of a stale stage come from the pipeline's own stage DAG (:func:`flows.stages.dag`, which a
test checks against dvc.yaml's deps and outs), not from DVC's internal graph.

Everything goes through DVC's Python API in this process, one call at a time (a lock here,
and DVC's own repository lock): DVC commands never run concurrently, and never while a
stage's task is running.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rbmdiff.errors import RbmdiffError

log = logging.getLogger("flows")
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Plan:
    """Stages in dependency order (upstream first), and those that must run, with why."""

    order: list[str]
    stale: list[str]
    reasons: dict[str, list] = field(default_factory=dict)

    @property
    def fresh(self) -> list[str]:
        return [s for s in self.order if s not in self.stale]


CODE = ("flows", "rbmdiff")  # the project code every stage runs (dvc.yaml's deps)


@dataclass(frozen=True)
class Snapshot:
    """What a run read at its start: params.yaml and the project code, by content hash.

    ``dvc commit`` hashes the files on disk when it records a stage; a file edited during
    the run would be recorded as the input of outputs made from the old one.  The pipeline
    compares the files with this snapshot before each commit and refuses to record on a
    change (the outputs stay on disk, and ``dvc status`` keeps calling their stages stale)."""

    root: Path
    hashes: dict[str, str]

    @classmethod
    def take(cls, root: str | Path) -> Snapshot:
        root = Path(root).resolve()
        return cls(root, _hashes(root))

    def changed(self) -> list[str]:
        """Files added, removed or edited since the snapshot, relative to the root."""
        now = _hashes(self.root)
        return sorted(k for k in self.hashes.keys() | now.keys()
                      if self.hashes.get(k) != now.get(k))


def _hashes(root: Path) -> dict[str, str]:
    files = [root / "params.yaml", root / "dvc.yaml"]
    for package in CODE:
        files += [p for p in (root / package).rglob("*") if p.is_file()
                  and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".so", ".o")]
    out = {}
    for path in files:
        with contextlib.suppress(FileNotFoundError):
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


class Ledger:
    """The DVC repository at ``root``."""

    def __init__(self, root: str | Path = ".") -> None:
        self.root = Path(root).resolve()
        if not (self.root / ".dvc").is_dir():
            raise RbmdiffError(f"{self.root} is not a DVC project (no .dvc/); run `dvc init`")

    @contextlib.contextmanager
    def _repo(self) -> Iterator[Any]:
        """The repository, opened with the root as working directory: parts of DVC's API
        (the stage cache) resolve paths against the cwd.  Safe here because DVC calls happen
        only between steps, when no task is running."""
        from dvc.repo import Repo

        with _LOCK, contextlib.chdir(self.root), warnings.catch_warnings():
            # pygtrie deprecations inside DVC, not ours to fix
            warnings.simplefilter("ignore", DeprecationWarning)
            with Repo(str(self.root)) as repo:
                yield repo

    def plan(self, *, targets: Iterable[str] | None = None, force: bool = False) -> Plan:
        """Stale stages: those ``dvc status`` reports, plus every stage downstream of one
        (their inputs are about to change), in the order of :func:`flows.stages.dag`.
        ``targets`` limits the plan to those stages and what they depend on; ``force`` marks
        all of them stale."""
        from flows.config import load_params
        from flows.stages import dag

        upstream = dag(load_params(self.root / "params.yaml").sample)  # dvc.yaml's foreach
        order = list(upstream)
        wanted = set(order) if targets is None else set(targets)
        if unknown := wanted - set(order):
            raise RbmdiffError(f"no stage {sorted(unknown)[0]!r} in dvc.yaml; stages: {order}")
        for name in reversed(order):  # and what they read from
            if name in wanted:
                wanted |= set(upstream[name])
        reasons: dict[str, list] = {}
        if not force:
            with self._repo() as repo:  # keys are 'name', or 'path/dvc.yaml:name'
                reasons = {key.rsplit(":", 1)[-1]: why for key, why in repo.status().items()}
        if unknown := set(reasons) - set(order):
            raise RbmdiffError(f"dvc.yaml stage {sorted(unknown)[0]!r} is not one of the "
                               f"pipeline's {order} (flows/stages/__init__.py)")
        stale = set(wanted) if force else set(reasons)
        for name in order:  # upstream first: one pass marks everything downstream
            if any(up in stale for up in upstream[name]):
                stale.add(name)
        order = [s for s in order if s in wanted]
        return Plan(order, [s for s in order if s in stale],
                    {s: reasons.get(s, ["downstream of a stale stage" if not force else "forced"])
                     for s in order if s in stale})

    def commit(self, stages: Iterable[str]) -> None:
        """Record the stages' outputs, deps and params in dvc.lock and the cache (dvc commit)."""
        stages = list(stages)
        if not stages:
            return
        dvc_log = logging.getLogger("dvc")
        level = dvc_log.level
        dvc_log.setLevel(logging.WARNING)  # one line below instead of one per stage
        try:
            with self._repo() as repo:
                for name in stages:
                    repo.commit(name, force=True)
        finally:
            dvc_log.setLevel(level)
        log.info("dvc commit: recorded %s in dvc.lock", ", ".join(stages))
