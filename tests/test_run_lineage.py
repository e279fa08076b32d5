"""params.yaml edited while a run is in progress: the outputs made from the old params are
not recorded as fresh under the new ones (the run reads params once; ``dvc commit`` would
hash the edited file)."""

from __future__ import annotations

import pytest
import yaml

pytest.importorskip("prefect")
pytest.importorskip("dvc")

from flows.ledger import Ledger, Snapshot
from tests.project import make_project, write_params

pytestmark = pytest.mark.slow


def test_snapshot_names_the_files_that_changed(tmp_path) -> None:
    root = make_project(tmp_path / "p", routes=["gibbs"])
    snap = Snapshot.take(root)
    assert snap.changed() == [] and "flows/pipeline.py" in snap.hashes
    write_params(root, {"train": {"seed": 33}})
    (root / "rbmdiff" / "rbm.py").write_text((root / "rbmdiff" / "rbm.py").read_text() + "\n")
    assert snap.changed() == ["params.yaml", "rbmdiff/rbm.py"]


def test_params_edited_mid_run_are_not_recorded_as_fresh(tmp_path, monkeypatch) -> None:
    from prefect.testing.utilities import prefect_test_harness

    import flows.stages.train as train_stage
    from flows.pipeline import PipelineError, pipeline

    root = make_project(tmp_path / "p", routes=["gibbs"])
    original = train_stage.train

    def train_then_edit(*args, **kwargs):
        out = original(*args, **kwargs)  # trained with seed 0, as read at the start
        write_params(root, {"train": {"seed": 33}})  # the user edits params.yaml meanwhile
        return out

    monkeypatch.setattr(train_stage, "train", train_then_edit)
    with prefect_test_harness(server_startup_timeout=None), \
            pytest.raises(PipelineError, match=r"params\.yaml changed during the run"):
        pipeline(root=str(root), progress=False)
    assert yaml.safe_load((root / "params.yaml").read_text())["train"]["seed"] == 33
    lock = root / "dvc.lock"
    recorded = yaml.safe_load(lock.read_text())["stages"] if lock.exists() else {}
    assert "train" not in recorded  # the model made under seed 0 is not filed under seed 33
    assert "prepare" in recorded  # recorded before the edit, from the params it read
    plan = Ledger(root).plan()
    assert {"train", "sample@gibbs", "report"} <= set(plan.stale)
