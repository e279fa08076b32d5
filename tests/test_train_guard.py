"""A training run that ends far below where it started, and below the uniform model, has
diverged: it is refused (one line) and the previous model file is kept.  The model file is a
function of the inputs: training twice gives identical bytes."""

from __future__ import annotations

import pytest
import torch

from rbmdiff import RBM
from rbmdiff.cli import main
from rbmdiff.data import load_dataset
from rbmdiff.errors import RbmdiffError
from rbmdiff.train import check_not_diverged, train

SENTINEL = b"previous output, must survive"


def test_finite_divergence_is_refused_and_keeps_the_old_model(tmp_path, capsys) -> None:
    """lr 1e3 on bas-3x3 stays finite but ends tens of thousands of nats below the uniform
    model (−9 ln 2 = −6.24 nats per row): refused before the save."""
    out_file = tmp_path / "model.pt"
    out_file.write_bytes(SENTINEL)
    code = main(["train", "--data", "bas-3x3", "--n-hidden", "4", "--out", str(out_file),
                 "--method", "ml", "--steps", "200", "--lr", "1e3", "--quiet"])
    out, err = capsys.readouterr()
    assert code != 0 and out == "" and out_file.read_bytes() == SENTINEL
    assert len(err.strip().splitlines()) == 1 and "training diverged" in err
    assert "uniform model" in err and "not saved" in err


def test_the_guard_passes_a_run_that_learns_nothing_and_refuses_one_below_uniform() -> None:
    """The rule: refused when the training rows score below min(start, uniform) − n ln 2 / 2."""
    x = load_dataset("bas-3x3").train
    start = RBM.random(9, 4, scale=0.01, seed=0, dtype=torch.float64)
    check_not_diverged(start, start, x, lr=0.1)  # no change: not diverged
    # b = −6: every unit off; a bars-and-stripes row has 4.5 units on on average, so it scores
    # ≈ −6 · 4.5 = −27 nats, below the floor −6.24 − 3.12
    bad = RBM(start.W, start.b - 6, start.c)
    with pytest.raises(RbmdiffError, match=r"training diverged: .* -6\.238 for the uniform"):
        check_not_diverged(start, bad, x, lr=0.1)
    slightly = RBM(start.W, start.b - 0.5, start.c)  # ≈ 0.5 nats below uniform: allowed
    check_not_diverged(start, slightly, x, lr=0.1)
    huge = RBM(start.W * 1e300, start.b, start.c)  # finite θ, log-likelihood not finite
    with pytest.raises(RbmdiffError, match="training diverged"):
        check_not_diverged(start, huge, x, lr=0.1)


def test_talks_free_energy_score_is_not_called_diverged() -> None:
    """BENCHMARKS.md: the free_energy score does not train (KL stays at or above the start);
    that is a measured property of the model, not a divergence."""
    x = load_dataset("bas-3x3").train
    result = train(x, n_hidden=4, score="free_energy", steps=300, lr=0.05, seed=0,
                   batch_size=14)
    assert result.wall_s > 0 and "wall_s" not in result.rbm.meta["training"]


def test_training_twice_gives_identical_model_bytes(tmp_path) -> None:
    x = load_dataset("bas-3x3").train
    paths = []
    for k in range(2):
        rbm = train(x, n_hidden=4, steps=60, lr=0.05, seed=3, batch_size=14).rbm
        paths.append(tmp_path / f"m{k}.pt")
        rbm.save(paths[-1])
    assert paths[0].read_bytes() == paths[1].read_bytes()
