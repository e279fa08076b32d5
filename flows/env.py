"""Environment defaults for Prefect and DVC, set before either is imported.

A bare ``import prefect`` writes ``~/.prefect`` unless ``PREFECT_HOME`` is set; both tools try
to send analytics unless told not to; the ephemeral Prefect API needs more than its default
20 s to start on a loaded two-core machine.  Values already in the environment win.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULTS = {
    "DVC_NO_ANALYTICS": "1",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "flows",
    # the "flows" logger also logs outside flow runs (dvc repro's stage commands, tests)
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",  # DVC owns the artefacts, not Prefect
}


def configure_environment(root: Path | None = None) -> None:
    """Set the defaults above, and ``PREFECT_HOME`` to ``<root>/.prefect`` (root: the
    current directory), unless the environment already sets them."""
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("PREFECT_HOME", str((root or Path.cwd()) / ".prefect"))
