"""One pure function per DVC stage; ``python -m flows.stages NAME`` is each stage's ``cmd``.

The same functions run as Prefect tasks in :mod:`flows.pipeline`, so ``dvc repro`` alone and a
Prefect run produce the same artefacts.  None of these modules imports Prefect or DVC.
"""

from __future__ import annotations

STAGES = ("prepare", "train", "embed", "sample", "report")
