"""rbmdiff's pipeline: DVC owns freshness and lineage, Prefect owns execution (docs/design.md §10).

``flows.stages`` holds one pure function per DVC stage (prepare, train, embed, sample, report)
and the ``python -m flows.stages NAME`` entry point each ``dvc.yaml`` stage runs;
``flows.pipeline`` runs the stale stages as Prefect tasks in one flow run and records them
with ``dvc commit``; ``flows.campaign`` sweeps QPU settings under a QPU-time budget.

Importing this package sets environment defaults for both tools (analytics off, Prefect's
logging and start-up timeout; see :mod:`flows.env`) before anything imports Prefect or DVC;
the user's environment and active Prefect profile take precedence.
"""

from __future__ import annotations

import logging

from flows.env import configure_environment

configure_environment()
# Stage progress ("… wrote reports/…", stage times) is INFO; Prefect shows the "flows" logger
# in its run logs (PREFECT_LOGGING_EXTRA_LOGGERS), the stage CLI on stderr.
logging.getLogger("flows").setLevel(logging.INFO)
