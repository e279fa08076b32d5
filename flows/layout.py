"""Where every artefact lives: the paths ``dvc.yaml`` declares, relative to the project root.

One table so that the stage functions, the flows and the tests agree with ``dvc.yaml``
(``tests/test_dvc_pipeline.py`` checks that they do).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    """Artefact paths under ``root`` (the directory holding ``dvc.yaml``)."""

    root: Path = Path(".")

    @property
    def params(self) -> Path:
        return self.root / "params.yaml"

    @property
    def prepared(self) -> Path:
        """prepare's output: train.npy, test.npy (N, n) float32 in [0, 1], dataset.json."""
        return self.root / "data" / "prepared"

    @property
    def dataset_info(self) -> Path:
        return self.prepared / "dataset.json"

    @property
    def model(self) -> Path:
        return self.root / "models" / "rbm.pt"

    @property
    def training(self) -> Path:
        return self.root / "reports" / "training.parquet"

    @property
    def embedding(self) -> Path:
        """embed's output folder: the cached K_{n,m} embedding JSON and solver.json."""
        return self.root / "models" / "embedding"

    @property
    def solver_info(self) -> Path:
        return self.embedding / "solver.json"

    @property
    def runs(self) -> Path:
        return self.root / "reports" / "runs"

    def run(self, route: str) -> Path:
        """sample@route's output folder: samples.parquet (the draws) and record.json (§7)."""
        return self.runs / route

    def timings(self, route: str) -> Path:
        """sample@route's timings on this machine: a log, not a DVC output (not tracked)."""
        return self.root / "reports" / "timings" / f"{route}.json"

    @property
    def samples_table(self) -> Path:
        """The §7 table, records joined with this machine's timings: not a DVC output."""
        return self.root / "reports" / "samples.parquet"

    @property
    def metrics(self) -> Path:
        """Every statistic of the report stage (model, training, each sampler, reference)."""
        return self.root / "reports" / "statistics.json"

    @property
    def headline(self) -> Path:
        """DVC's metrics file: the few numbers ``dvc exp show`` lists (flows.headline)."""
        return self.root / "reports" / "metrics.json"

    @property
    def figures(self) -> Path:
        return self.root / "reports" / "figures"

    @property
    def campaign(self) -> Path:
        """Not a DVC output: a campaign appends to it as results arrive."""
        return self.root / "reports" / "campaign.parquet"

    @property
    def read_store(self) -> Path:
        """Not a DVC output: every paid QPU call's reads, one folder per device, so that a
        rerun or a resumed campaign never buys a call's reads twice."""
        return self.root / "reports" / "qpu-reads"

    @property
    def calibration(self) -> Path:
        """Not a DVC output (so re-embedding does not delete it): the QPU route's calibrations,
        keyed by model, embedding, device and settings, reused by later runs and campaigns."""
        return self.root / "models" / "calibration"
