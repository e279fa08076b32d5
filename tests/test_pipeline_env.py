"""Prefect the Prefect way: ``import flows`` keeps Prefect's own home and the user's active
profile (and its API); its defaults apply only where nothing else sets the key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flows.env import DEFAULTS, configure_environment

SETTINGS = ("from prefect.settings import get_current_settings as g; s = g(); "
            "import json; print(json.dumps({'home': str(s.home), 'api': s.api.url}))")


def write_profile(home: Path, **settings: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    lines = ['active = "mine"', "[profiles.mine]", *(f'{k} = "{v}"' for k, v in settings.items())]
    (home / "profiles.toml").write_text("\n".join(lines) + "\n")


def test_defaults_yield_to_the_environment_and_the_active_profile(tmp_path, monkeypatch):
    for key in [*DEFAULTS, "PREFECT_PROFILE", "PREFECT_PROFILES_PATH"]:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    monkeypatch.setenv("PREFECT_RESULTS_PERSIST_BY_DEFAULT", "true")
    write_profile(tmp_path, PREFECT_LOGGING_EXTRA_LOGGERS="mine",
                  PREFECT_API_URL="http://127.0.0.1:4200/api")
    configure_environment()
    assert os.environ["PREFECT_HOME"] == str(tmp_path)
    assert "PREFECT_LOGGING_EXTRA_LOGGERS" not in os.environ  # the profile's value stands
    assert os.environ["PREFECT_RESULTS_PERSIST_BY_DEFAULT"] == "true"  # the environment's
    assert os.environ["DVC_NO_ANALYTICS"] == "1" and os.environ["DO_NOT_TRACK"] == "1"
    monkeypatch.setenv("PREFECT_PROFILE", "other")  # a profile that sets nothing
    monkeypatch.delenv("DVC_NO_ANALYTICS")
    configure_environment()
    assert os.environ["PREFECT_LOGGING_EXTRA_LOGGERS"] == "flows"
    assert os.environ["DVC_NO_ANALYTICS"] == "1"


@pytest.mark.slow  # two fresh interpreters importing Prefect
@pytest.mark.parametrize("profile", [False, True], ids=["ephemeral", "profile-api"])
def test_import_flows_keeps_prefects_home_and_the_profiles_api(tmp_path, profile) -> None:
    """In a fresh process with HOME set and no PREFECT_HOME: Prefect's home stays
    ``~/.prefect`` (no ./.prefect in the working folder), and its API is the active
    profile's where one is set, else none (an ephemeral API)."""
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    url = "http://127.0.0.1:9/api"  # never contacted: only the settings are read
    if profile:
        write_profile(home / ".prefect", PREFECT_API_URL=url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(HOME=str(home), PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    done = subprocess.run([sys.executable, "-c", f"import flows; {SETTINGS}"], cwd=work,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got == {"home": str(home / ".prefect"), "api": url if profile else None}
    assert not (work / ".prefect").exists()


def test_a_killed_test_runs_folders_are_removed_by_the_next(tmp_path) -> None:
    """Each pytest process keeps its Prefect home under TEST_TMP/<pid>, removed at exit; the
    folders of a process killed before its exit handlers ran go at the next start."""
    from tests.conftest import TEST_TMP, remove_dead_runs

    assert Path(os.environ["PREFECT_HOME"]) == TEST_TMP / str(os.getpid()) / "prefect"
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead, live = tmp_path / done.stdout.strip(), tmp_path / str(os.getpid())
    for folder in (dead, live, tmp_path / "other"):
        (folder / "prefect").mkdir(parents=True)
    assert remove_dead_runs(tmp_path) == [dead]
    assert not dead.exists() and live.exists() and (tmp_path / "other").exists()
