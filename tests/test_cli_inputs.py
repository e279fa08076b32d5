"""What a user meets at the command line: each bad input is one line on stderr (exit 2, no
traceback, earlier outputs intact), outputs get the umask's mode, bars only on a terminal,
help on every option, --version."""

from __future__ import annotations

import errno
import os
import stat
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from flows.artefacts import staged_dir
from rbmdiff import RBM
from rbmdiff.cli import build_parser, main
from rbmdiff.files import atomic_write_bytes

SENTINEL = b"previous output, must survive"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def model(tmp_path) -> Path:
    path = tmp_path / "m.pt"
    RBM.random(9, 4, scale=0.5, seed=0).save(path)
    return path


def one_line(capsys, argv: list) -> str:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse
        code = exc.code
    out, err = capsys.readouterr()
    assert code == 2 and out == "", (argv, code, out)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(("value", "message"), [
    ("2.5", "num_sweeps: must be a whole number, got 2.5"),
    ("abc", "num_sweeps: must be a whole number, got 'abc'"),
    ("1e400", "num_sweeps: must be a whole number, got inf"),
    ("true", "num_sweeps: must be a whole number, got True"),
])
def test_sampler_parameters_of_the_wrong_type_are_one_line(tmp_path, capsys, model, value,
                                                           message) -> None:
    out = tmp_path / "s.parquet"
    out.write_bytes(SENTINEL)
    err = one_line(capsys, ["sample", "--model", model, "--sampler", "gibbs", "--num-samples",
                            5, "--out", out, "--set", f"num_sweeps={value}"])
    assert message in err and out.read_bytes() == SENTINEL


def test_params_yaml_with_a_fractional_sweep_count_fails_at_preflight(tmp_path) -> None:
    from flows.config import ParamsError, check_samplers, load_params
    from tests.project import make_project, write_params

    root = make_project(tmp_path / "p", routes=["gibbs"])
    write_params(root, {"sample": {"gibbs": {"num_sweeps": 2.5}}})
    with pytest.raises(ParamsError, match=r"sample\.gibbs: .*num_sweeps: must be a whole"):
        check_samplers(load_params(root / "params.yaml"), root / "params.yaml")


@pytest.mark.parametrize("name", ["W", "meta", "dtype"])
def test_a_model_file_that_loads_but_has_wrong_types_is_one_line(tmp_path, capsys, model,
                                                                 name) -> None:
    payload = torch.load(model, weights_only=True)
    payload.update({"W": {"W": payload["W"].long()}, "meta": {"meta": [1, 2]},
                    "dtype": {"b": payload["b"].double()}}[name])
    bad = tmp_path / "bad.pt"
    torch.save(payload, bad)
    err = one_line(capsys, ["sample", "--model", bad, "--sampler", "gibbs", "--num-samples", 5,
                            "--out", tmp_path / "s.parquet"])
    assert "is corrupt" in err and not (tmp_path / "s.parquet").exists()


def test_disk_full_while_sampling_is_one_line_and_keeps_the_old_file(tmp_path, capsys, model,
                                                                     monkeypatch) -> None:
    out = tmp_path / "s.parquet"
    out.write_bytes(SENTINEL)

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pq.ParquetWriter, "write_table", full)
    err = one_line(capsys, ["sample", "--model", model, "--sampler", "gibbs", "--num-samples",
                            5, "--out", out, "--quiet"])
    assert "No space left on device" in err and out.read_bytes() == SENTINEL
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt", "s.parquet"]  # no temp file


def test_a_csv_name_is_refused_not_written_as_parquet(tmp_path, capsys, model) -> None:
    err = one_line(capsys, ["sample", "--model", model, "--sampler", "gibbs", "--num-samples",
                            5, "--out", tmp_path / "x.csv"])
    assert "name the file *.parquet" in err and not (tmp_path / "x.csv").exists()


def test_version_and_help_on_every_option(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("rbmdiff 0.")
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    missing = [f"{name} {opt.option_strings[0]}" for name, p in sub.choices.items()
               for opt in p._actions if opt.option_strings and not opt.help]
    assert missing == []


def test_outputs_get_the_umasks_mode(tmp_path) -> None:
    before = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "f.bin", b"x")
        with staged_dir(tmp_path / "out") as staging:
            atomic_write_bytes(staging / "g.bin", b"y")
        os.umask(0o077)
        atomic_write_bytes(tmp_path / "private.bin", b"z")
    finally:
        os.umask(before)
    assert stat.S_IMODE((tmp_path / "f.bin").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "out" / "g.bin").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "private.bin").stat().st_mode) == 0o600


def test_no_progress_bars_when_stderr_is_a_file(tmp_path, monkeypatch) -> None:
    """tqdm draws ~100 redraws per bar; a log file gets none."""
    log = tmp_path / "stderr.log"
    with open(log, "w") as stderr:
        monkeypatch.setattr(sys, "stderr", stderr)  # a file, not a terminal
        code = main(["train", "--data", "bas-3x3", "--n-hidden", "4", "--steps", "100",
                     "--out", str(tmp_path / "m.pt")])
    text = log.read_text()
    assert code == 0, text[-2000:]
    assert "it/s" not in text and "\r" not in text
    assert len(text.splitlines()) == 1  # the run's one summary line


def test_the_help_example_init_data_works_with_data_and_says_what_it_needs_without(
        tmp_path, capsys, model) -> None:
    argv = ["sample", "--model", model, "--sampler", "gibbs", "--num-samples", 20, "--out",
            tmp_path / "s.parquet", "--set", 'init="data"', "--set", "num_sweeps=0", "--quiet"]
    err = one_line(capsys, argv)
    assert "name the data with --data" in err
    assert main([str(a) for a in [*argv, "--data", "bas-3x3"]]) == 0
    import pandas as pd

    from rbmdiff.data import load_dataset

    v = pd.read_parquet(tmp_path / "s.parquet").to_numpy()
    rows = {tuple(r) for r in load_dataset("bas-3x3").train.numpy().astype("uint8")}
    assert all(tuple(r) in rows for r in v)  # 0 sweeps: the chains' start, training rows


def test_pipeline_refuses_a_huge_num_samples_and_a_read_only_project(tmp_path, monkeypatch,
                                                                     capsys) -> None:
    import errno as errnos
    import tempfile

    from flows.cli import main as pipeline_main
    from tests.project import make_project, write_params

    root = make_project(tmp_path / "p", routes=["gibbs"])
    write_params(root, {"sample": {"gibbs": {"num_samples": 10**13}}})
    assert pipeline_main(["--root", str(root), "run"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "sample.gibbs.num_samples: 10,000,000,000,000 samples of 9 units" in err
    write_params(root, {"sample": {"gibbs": {"num_samples": 300}}})

    def read_only(*args, **kwargs):  # as a read-only mount answers (tests may run as root)
        raise OSError(errnos.EROFS, os.strerror(errnos.EROFS))

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    assert pipeline_main(["--root", str(root), "run"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Read-only file system" in err
    assert "run it in a writable clone" in err and not (root / "dvc.lock").exists()


def test_deploy_on_a_temporary_api_is_refused_in_one_line(capsys, monkeypatch) -> None:
    from flows.cli import main as pipeline_main

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert pipeline_main(["deploy", "--cron", "0 3 * * *"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "forgets the schedule" in err


def test_the_sample_stage_command_refuses_a_huge_num_samples_in_one_line(tmp_path,
                                                                         capsys) -> None:
    """What `dvc repro` runs (python -m flows.stages sample ROUTE), without the preflight."""
    from flows.stages.__main__ import main as stage_main
    from tests.project import make_project, write_params

    root = make_project(tmp_path / "p", routes=["gibbs"])
    assert stage_main(["prepare", "--params", str(root / "params.yaml")]) == 0
    write_params(root, {"sample": {"gibbs": {"num_samples": 10**13}}})
    capsys.readouterr()
    assert stage_main(["sample", "gibbs", "--params", str(root / "params.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sample.gibbs.num_samples: 10,000,000,000,000" in err[0]
