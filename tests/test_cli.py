from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch

from rbmdiff import RBM
from rbmdiff.cli import main

SENTINEL = b"previous output, must survive"


@pytest.fixture
def model_path(tmp_path):
    path = tmp_path / "model.pt"
    rbm = RBM.random(9, 4, scale=0.5, seed=0)
    rbm.meta = {"score": "posterior", "eps": 1e-3, "beta_min": 0.1, "beta_max": 20.0}
    rbm.save(path)
    return path


def run(argv, capsys) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


HELP_THEN_MODULES = """
import sys
from rbmdiff.cli import main
try:
    main(["--help"])
except SystemExit as exc:
    assert exc.code == 0
print("torch" in sys.modules, "torch loaded")
"""


def test_console_script_lists_commands_without_importing_torch():
    # a fresh interpreter: `rbmdiff --help` lists the commands and never loads torch
    out = subprocess.run([sys.executable, "-c", HELP_THEN_MODULES], capture_output=True,
                         text=True, check=True).stdout
    for command in ("train", "sample", "evaluate"):
        assert command in out
    assert out.strip().splitlines()[-1] == "False torch loaded"


def test_train_then_evaluate_then_sample(tmp_path, capsys):
    model = tmp_path / "m.pt"
    code, out, _ = run(["train", "--data", "bas-3x3", "--n-hidden", 4, "--method", "ml",
                        "--seed", 1, "--out", model, "--steps", 50, "--batch-size", 14,
                        "--lr", 0.05, "--quiet", "--history", tmp_path / "h.parquet"], capsys)
    assert code == 0 and json.loads(out)["model"] == str(model)
    assert len(pd.read_parquet(tmp_path / "h.parquet")) == 50
    code, out, _ = run(["evaluate", "--model", model, "--data", "bas-3x3"], capsys)
    metrics = json.loads(out)
    assert code == 0 and metrics["log_partition_method"] == "exact"
    # log p summed over the 14 patterns can't exceed 1: mean log p ≤ −log 14.
    assert metrics["test_log_likelihood"] <= -np.log(14) + 1e-6
    samples = tmp_path / "s.parquet"
    code, out, _ = run(["sample", "--model", model, "--sampler", "gibbs", "--num-samples", 300,
                        "--seed", 2, "--out", samples, "--data", "bas-3x3",
                        "--set", "num_sweeps=20", "--stats", tmp_path / "stats.parquet"], capsys)
    assert code == 0
    frame = pd.read_parquet(samples)
    assert frame.shape == (300, 9) and set(np.unique(frame.to_numpy())) <= {0, 1}
    stats = pd.read_parquet(tmp_path / "stats.parquet")
    assert stats.loc[0, "sampler"] == "gibbs" and 0 <= stats.loc[0, "tv_exact"] <= 1


def _bad_file(tmp_path, kind):
    path = tmp_path / {"nan": "x.npy", "range": "x.npy", "flat": "x.npy", "empty": "x.csv",
                       "truncated": "x.npy", "wide": "x.npy"}[kind]
    if kind == "nan":
        np.save(path, np.full((20, 9), np.nan))
    elif kind == "range":
        np.save(path, np.full((20, 9), 2.0))
    elif kind == "flat":
        np.save(path, np.zeros(9))
    elif kind == "empty":
        path.write_text("")
    elif kind == "truncated":
        np.save(path, np.zeros((20, 9)))
        path.write_bytes(path.read_bytes()[:90])
    else:
        np.save(path, np.zeros((20, 5)))
    return path


@pytest.mark.parametrize("kind, message", [
    ("nan", "NaN"), ("range", "[0, 1]"), ("flat", "2-D"), ("empty", "empty"),
    ("truncated", "truncated"),
])
def test_train_bad_data_is_one_line_and_keeps_old_output(tmp_path, capsys, kind, message):
    out_file = tmp_path / "model.pt"
    out_file.write_bytes(SENTINEL)
    data = _bad_file(tmp_path, kind)
    code, _, err = run(["train", "--data", data, "--n-hidden", 3, "--out", out_file,
                        "--batch-size", 10, "--steps", 5, "--quiet"], capsys)
    assert code != 0
    assert message in err and str(data) in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert out_file.read_bytes() == SENTINEL


@pytest.mark.parametrize("extra, message", [
    (["--steps", "-5"], "argument --steps: input should be greater than 0, got '-5'"),
    (["--steps", "abc"], "--steps: input should be a valid integer"),
    (["--eps", "0.7"], "--eps: input should be less than 0.5"),
    (["--eps", "nan"], "--eps: input should be a finite number"),
    (["--beta-min", "30"], "--beta-max: must be at least beta_min (30.0)"),
    (["--method", "magic"], "--method: input should be 'dsm', 'cd', 'pcd' or 'ml'"),
    (["--batch-size", "100"], "--batch-size: 100 exceeds the 14 training rows of bas-3x3"),
    (["--method", "ml", "--n-hidden", "40", "--data", "digits-binary"], "exact ML"),
    (["--data", "cifar10"], "neither a built-in"),
])
def test_train_impossible_parameters(tmp_path, capsys, extra, message):
    out_file = tmp_path / "model.pt"
    out_file.write_bytes(SENTINEL)
    argv = ["train", "--data", "bas-3x3", "--n-hidden", 3, "--out", out_file, "--steps", 5,
            "--batch-size", 14, "--quiet"]
    code, _, err = run(argv + extra, capsys)
    assert code != 0 and message in err, err
    assert len(err.strip().splitlines()) == 1
    assert out_file.read_bytes() == SENTINEL


def test_evaluate_and_sample_refuse_bad_models_and_mismatched_data(tmp_path, capsys,
                                                                   model_path):
    cut = tmp_path / "cut.pt"
    cut.write_bytes(model_path.read_bytes()[:200])
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    out_file = tmp_path / "s.parquet"
    out_file.write_bytes(SENTINEL)
    cases = [
        (["evaluate", "--model", cut, "--data", "bas-3x3"], "truncated"),
        (["evaluate", "--model", foreign, "--data", "bas-3x3"], "not an rbmdiff model"),
        (["evaluate", "--model", model_path, "--data", "digits"], "64 units per row"),
        (["sample", "--model", cut, "--sampler", "gibbs", "--num-samples", 5,
          "--out", out_file], "truncated"),
        (["sample", "--model", model_path, "--sampler", "gibbs", "--num-samples", 0,
          "--out", out_file], "positive integer"),
        (["sample", "--model", model_path, "--sampler", "gibbs", "--num-samples", 5,
          "--out", out_file, "--set", "colour=blue"], "no parameter colour"),
        (["sample", "--model", model_path, "--sampler", "sde", "--num-samples", 5,
          "--out", out_file, "--set", "steps=-3"], "steps"),
        (["sample", "--model", model_path, "--sampler", "gibbs", "--num-samples", 5,
          "--out", out_file, "--data", "digits"], "64 units per row"),
    ]
    for argv, message in cases:
        code, _, err = run(argv, capsys)
        assert code != 0 and message in err, (argv, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert out_file.read_bytes() == SENTINEL


def test_recommended_dsm_recipe_beats_the_plain_one(tmp_path, capsys):
    """bas-3x3, 9 hidden, 300 steps, seed 0: measured KL 1.41 (recommended) vs 3.53 (plain,
    docs/math.md §5 as written); the recipe is recorded in the model's provenance."""
    kls = {}
    for recipe in ("recommended", "plain"):
        out = tmp_path / f"{recipe}.pt"
        code, text, _ = run(["train", "--data", "bas-3x3", "--n-hidden", 9, "--out", out,
                             "--steps", 300, "--batch-size", 14, "--lr", 0.1, "--quiet",
                             "--recipe", recipe], capsys)
        assert code == 0
        kls[recipe] = json.loads(text)["kl_data_model"]
        assert RBM.load(out).meta["training"]["recipe"] == recipe
    assert kls["recommended"] < 2.0 and kls["plain"] > kls["recommended"] + 1.0, kls


def _one_line_error(code, err, *needles):
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


def test_forced_exact_m_that_would_take_hours_is_refused(tmp_path, capsys):
    """digits-binary with 16 hidden: exact m enumerates 2^16 hidden states per noised row."""
    out_file = tmp_path / "model.pt"
    out_file.write_bytes(SENTINEL)
    code, _, err = run(["train", "--data", "digits-binary", "--n-hidden", 16, "--out", out_file,
                        "--m-method", "exact", "--quiet"], capsys)
    _one_line_error(code, err, "exact m would take ~", " h and ", "--m-method tap")
    assert out_file.read_bytes() == SENTINEL


def test_diverging_run_fails_and_keeps_the_old_model(tmp_path, capsys):
    out_file = tmp_path / "model.pt"
    out_file.write_bytes(SENTINEL)
    for method in ("dsm", "cd", "ml"):
        code, out, err = run(["train", "--data", "bas-3x3", "--n-hidden", 4, "--out", out_file,
                              "--method", method, "--steps", 50, "--lr", "1e12", "--quiet"],
                             capsys)
        _one_line_error(code, err, "training diverged at step 1", "lower the learning rate")
        assert out == "" and out_file.read_bytes() == SENTINEL
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]  # no temp file left


def test_unwritable_output_is_refused_before_training(tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    for out_file in (blocker / "model.pt", "/proc/rbmdiff-test/model.pt", tmp_path):
        start = time.perf_counter()
        code, _, err = run(["train", "--data", "bas-3x3", "--n-hidden", 4, "--out", out_file,
                            "--quiet"], capsys)
        _one_line_error(code, err, str(out_file))
        assert time.perf_counter() - start < 5  # refused before the 1,000 training steps
    code, _, err = run(["train", "--data", "bas-3x3", "--n-hidden", 4, "--out", tmp_path / "m.pt",
                        "--steps", 3, "--quiet", "--history", blocker / "h.parquet"], capsys)
    _one_line_error(code, err, "cannot write")
    assert not (tmp_path / "m.pt").exists()


def _reject_constant(name):
    raise AssertionError(f"non-strict JSON constant {name}")


def test_sample_prints_strict_json(tmp_path, capsys):
    """n = 64: the exact TV is undefined (NaN in the record), so the JSON holds null."""
    model = tmp_path / "wide.pt"
    RBM.random(64, 4, scale=0.1, seed=0).save(model)
    code, out, err = run(["sample", "--model", model, "--sampler", "gibbs", "--num-samples", 50,
                          "--out", tmp_path / "s.parquet", "--data", "digits-binary",
                          "--set", "num_sweeps=2", "--quiet"], capsys)
    assert code == 0, err
    summary = json.loads(out, parse_constant=_reject_constant)
    assert "tv_exact" in summary and summary["tv_exact"] is None


def test_default_batch_is_clamped_to_the_rows(tmp_path, capsys):
    out_file = tmp_path / "m.pt"
    code, _, err = run(["train", "--data", "bas-3x3", "--n-hidden", 3, "--out", out_file,
                        "--steps", 5, "--quiet"], capsys)
    assert code == 0, err
    training = RBM.load(out_file).meta["training"]
    assert training["batch_size"] == 14 and training["n_noise"] == 16  # 14 patterns; exact m
    code, _, err = run(["train", "--data", "bas-3x3", "--n-hidden", 3, "--out", out_file,
                        "--steps", 5, "--method", "cd", "--quiet"], capsys)
    assert code == 0 and RBM.load(out_file).meta["training"]["batch_size"] == 14


@pytest.mark.parametrize("method", ["dsm", "cd", "pcd", "ml"])
def test_topology_trains_a_masked_rbm(tmp_path, capsys, method):
    from rbmdiff.topology import native_layout

    out_file = tmp_path / "native.pt"
    code, _, err = run(["train", "--data", "bas-3x3", "--n-hidden", 6, "--out", out_file,
                        "--method", method, "--steps", 30, "--lr", 0.05, "--topology", "zephyr",
                        "--quiet"], capsys)
    assert code == 0, err
    rbm = RBM.load(out_file)
    mask, layout = native_layout(9, 6, "zephyr")
    assert rbm.meta["layout"] == layout and torch.equal(rbm.mask, mask)
    assert 0 < int(mask.sum()) < mask.numel()
    assert (rbm.W[~mask] == 0).all() and (rbm.W[mask] != 0).all()


def test_topology_shape_picks_the_graph(tmp_path, capsys):
    from rbmdiff.topology import native_layout

    out_file = tmp_path / "native.pt"
    code, _, err = run(["train", "--data", "bas-3x3", "--n-hidden", 6, "--out", out_file,
                        "--method", "cd", "--steps", 5, "--topology", "zephyr",
                        "--topology-shape", "[7,4]", "--quiet"], capsys)
    assert code == 0, err
    assert RBM.load(out_file).meta["layout"] == native_layout(9, 6, "zephyr", [7, 4])[1]
    for argv, match in ((["--topology", "zephyr", "--topology-shape", "[0]"], "graph shape"),
                        (["--topology-shape", "[7,4]"], "needs --topology")):
        code, _, err = run(["train", "--data", "bas-3x3", "--n-hidden", 6, "--out", out_file,
                            "--steps", 5, "--quiet", *argv], capsys)
        assert code != 0 and match in err and err.strip().count("\n") == 0, err


def test_sample_help_lists_each_samplers_parameters(capsys):
    code, out, _ = run(["sample", "--help"], capsys)
    assert code == 0
    lines = {line.split(":")[0].strip(): line for line in out.splitlines() if ": " in line}
    for name in ("sde", "ode", "gibbs", "anneal", "qpu"):
        assert name in lines, out
    assert "num_sweeps=100" in lines["gibbs"] and "num_sweeps=1000" in lines["anneal"]
    assert "--set KEY=VALUE" in out


def test_pcd_with_an_annealing_negative_phase(tmp_path, capsys):
    out_file = tmp_path / "m.pt"
    code, out, err = run(["train", "--data", "bas-3x3", "--n-hidden", 4, "--out", out_file,
                          "--method", "pcd", "--negative", "anneal", "--negative-set",
                          "num_sweeps=10", "--steps", 5, "--quiet"], capsys)
    assert code == 0, err
    training = RBM.load(out_file).meta["training"]
    assert training["negative"] == "anneal" and training["negative_params"] == {"num_sweeps": 10}
    assert json.loads(out)["step"] == 5
    code, _, err = run(["train", "--data", "bas-3x3", "--n-hidden", 4, "--out", out_file,
                        "--method", "cd", "--negative", "anneal", "--quiet"], capsys)
    _one_line_error(code, err, "needs --method pcd")


def test_m_method_choices_follow_the_score_module():
    from rbmdiff.cli import build_parser
    from rbmdiff.score import PosteriorScore

    train_parser = build_parser()._subparsers._group_actions[0].choices["train"]
    action = next(a for a in train_parser._actions if a.dest == "m_method")
    assert list(action.choices) == [m for m in PosteriorScore.M_METHODS if m != "gibbs"]
