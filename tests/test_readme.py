"""The README's command-line examples, run verbatim as a new user would run them.

Every line of a ```bash block in the README's "The command line" section that starts with
``rbmdiff `` is run, in order, in one temporary working folder (the examples write under
``scratch/``, so that folder is created there).  Each must exit 0 within a few minutes, print
strict JSON on stdout, and leave the files it names as outputs.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## The command line"
OUTPUT_FLAGS = ("--out", "--stats", "--history", "--checkpoint")
TIMEOUT_S = 300


def cli_section(text: str) -> str:
    """The README's text from the command-line heading to the next ``## `` heading."""
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return text[start:] if end < 0 else text[start:end]


def readme_commands(text: str) -> list[str]:
    """Lines starting with 'rbmdiff ' in the section's ```bash blocks (continuations joined)."""
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", cli_section(text), flags=re.M | re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line.startswith("rbmdiff "):
                commands.append(line)
    return commands


def output_paths(command: str) -> list[str]:
    """The files a command names after --out, --stats, --history or --checkpoint."""
    words = shlex.split(command, comments=True)
    return [words[i + 1] for i, w in enumerate(words[:-1]) if w in OUTPUT_FLAGS]


def strict_json(text: str) -> object:
    """json.loads that refuses NaN and ±Infinity (not JSON)."""
    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


COMMANDS = readme_commands(README.read_text(encoding="utf-8"))


def test_readme_examples_cover_the_cli_and_write_only_under_scratch() -> None:
    """Every subcommand has an example, and no example can overwrite a DVC-tracked output."""
    assert {c.split()[1] for c in COMMANDS} >= {"train", "sample", "evaluate"}
    for command in COMMANDS:
        outs = output_paths(command)
        assert all(p.startswith("scratch/") for p in outs), command
        if command.split()[1] in ("train", "sample"):
            assert outs, f"{command}: names no output"


def test_strict_json_refuses_nan() -> None:
    assert strict_json('{"a": null}') == {"a": None}
    with pytest.raises(ValueError):
        strict_json('{"a": NaN}')


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for all examples: later ones read what earlier ones wrote."""
    return tmp_path_factory.mktemp("readme")


def user_env(home: Path) -> dict[str, str]:
    """The test's environment with this interpreter's scripts first on PATH and no D-Wave
    token or configuration (the QPU examples must use the offline mock)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DWAVE_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(home)
    env["XDG_CONFIG_HOME"] = str(home / "config")  # where `dwave config create` writes
    env["DVC_NO_ANALYTICS"] = "1"
    return env


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_runs(command: str, workdir: Path) -> None:
    """Run the example verbatim; exit 0, strict JSON on stdout, its output files written."""
    try:
        done = subprocess.run(command, shell=True, executable="/bin/bash", cwd=workdir,
                              env=user_env(workdir), capture_output=True, text=True,
                              timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{command!r} ran longer than {TIMEOUT_S} s")
    assert done.returncode == 0, f"{command!r} exited {done.returncode}:\n{done.stderr[-2000:]}"
    strict_json(done.stdout)
    for path in output_paths(command):
        out = workdir / path
        assert out.is_file() and out.stat().st_size > 0, f"{command!r} did not write {path}"
