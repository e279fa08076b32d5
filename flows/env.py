"""Environment defaults for Prefect and DVC, set before either is imported.

Prefect is left to its own conventions: its home (``PREFECT_HOME``, ``~/.prefect`` by
default), the active profile and, where that profile or the environment sets
``PREFECT_API_URL``, that API (a ``prefect server start`` or Prefect Cloud); otherwise an
ephemeral API.  The defaults below apply only where neither the environment nor the active
profile sets the key: analytics off for both tools, a longer start-up timeout for the
ephemeral API on a loaded machine, the "flows" logger in Prefect's run logs, and no Prefect
result persistence (DVC owns the artefacts).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

DEFAULTS = {
    "DVC_NO_ANALYTICS": "1",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "flows",
    # the "flows" logger also logs outside flow runs (dvc repro's stage commands, tests)
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",
    # Dask's own INFO lines (cluster and worker start-up) stay out of the run's output
    "DASK_LOGGING__DISTRIBUTED": "warning",
}
# Prefect's own default home, which flows does not change (.dvcignore and .gitignore only
# guard against a PREFECT_HOME set inside the project)
PREFECT_DEFAULT_HOME = "~/.prefect"


def profile_settings() -> dict:
    """The settings of the active Prefect profile, read from Prefect's profiles file
    (``PREFECT_PROFILES_PATH``, else ``$PREFECT_HOME/profiles.toml``); {} without one."""
    home = Path(os.environ.get("PREFECT_HOME", PREFECT_DEFAULT_HOME)).expanduser()
    path = Path(os.environ.get("PREFECT_PROFILES_PATH", home / "profiles.toml")).expanduser()
    try:
        profiles = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}
    active = os.environ.get("PREFECT_PROFILE") or profiles.get("active")
    chosen = profiles.get("profiles", {}).get(active, {})
    return chosen if isinstance(chosen, dict) else {}


def configure_environment() -> None:
    """Set each default above unless the environment or the active Prefect profile sets it."""
    profile = profile_settings()
    for key, value in DEFAULTS.items():
        if key not in profile:
            os.environ.setdefault(key, value)
