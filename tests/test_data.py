from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rbmdiff import RbmdiffError
from rbmdiff.data import bars_and_stripes, load_dataset


def test_bars_and_stripes_counts_and_structure():
    for side, count in ((3, 14), (4, 30)):
        p = bars_and_stripes(side)
        assert p.shape == (count, side * side) and len({tuple(r) for r in p}) == count
        grids = p.reshape(-1, side, side)
        rows_const = (grids == grids[:, :, :1]).all(axis=(1, 2))
        cols_const = (grids == grids[:, :1, :]).all(axis=(1, 2))
        assert (rows_const | cols_const).all()


def test_digits_split_follows_the_design():
    grey, binary = load_dataset("digits"), load_dataset("digits-binary")
    assert grey.train.shape == (1437, 64) and grey.test.shape == (360, 64)
    assert not grey.binary and binary.binary
    np.testing.assert_array_equal(binary.train.numpy(), (grey.train.numpy() > 0.5))


@pytest.mark.parametrize("name", ["digits", "digits-binary"])
def test_digits_are_sklearns_split(name):
    """Exactly ``load_digits`` scaled to [0, 1] (binarised at ½), split by
    ``train_test_split(test_size=0.2, random_state=0)``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x = load_digits().data.astype(np.float32) / 16.0
    if name == "digits-binary":
        x = (x > 0.5).astype(np.float32)
    train, test = train_test_split(x, test_size=0.2, random_state=0)
    d = load_dataset(name)
    np.testing.assert_array_equal(d.train.numpy(), train)
    np.testing.assert_array_equal(d.test.numpy(), test)


def test_prepare_keeps_a_seeded_subset_of_training_rows(tmp_path):
    """max_train_rows: that many distinct rows of the training set, in their order; the same
    for the same seed, others for another seed; ``binary`` describes the data set."""
    from flows.config import DataParams
    from flows.layout import Layout
    from flows.stages.prepare import prepare

    full = load_dataset("digits-binary").train.numpy()

    def subset(seed: int, folder: str) -> tuple[np.ndarray, dict]:
        layout = Layout(tmp_path / folder)
        info = prepare(DataParams(name="digits-binary", max_train_rows=100, seed=seed), layout)
        return np.load(layout.prepared / "train.npy"), info

    a, info = subset(3, "a")
    b, _ = subset(3, "b")
    c, _ = subset(4, "c")
    assert a.shape == (100, 64) and info["train_rows"] == 100 and info["binary"]
    rest = iter(full)  # a is a subsequence of the training rows: each one, in their order
    assert all(any(np.array_equal(row, other) for other in rest) for row in a)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize("suffix", [".npy", ".csv", ".parquet"])
def test_files_round_trip(tmp_path, suffix):
    x = np.random.default_rng(0).random((12, 5))
    path = tmp_path / f"d{suffix}"
    if suffix == ".npy":
        np.save(path, x)
    elif suffix == ".csv":
        np.savetxt(path, x, delimiter=",")
    else:
        pd.DataFrame(x, columns=[f"u{i}" for i in range(5)]).to_parquet(path)
    d = load_dataset(path)
    np.testing.assert_allclose(d.train.numpy(), x, rtol=1e-6)


def _write(tmp_path, name, x):
    path = tmp_path / name
    np.save(path, x) if name.endswith(".npy") else path.write_text(x)
    return path


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("nan.npy", np.array([[0.5, np.nan]]), "NaN/inf"),
        ("inf.npy", np.array([[0.5, np.inf]]), "NaN/inf"),
        ("range.npy", np.array([[0.5, 1.5]]), r"\[0, 1\]"),
        ("neg.npy", np.array([[-0.1, 0.5]]), r"\[0, 1\]"),
        ("flat.npy", np.array([0.5, 0.5]), "2-D"),
        ("cube.npy", np.zeros((2, 2, 2)), "2-D"),
        ("empty.npy", np.zeros((0, 4)), "empty"),
        ("empty.csv", "", "empty"),
        ("text.csv", "a,b\nc,d\n", "unreadable"),
        ("ragged.csv", "0,1\n0\n", "unreadable"),
    ],
)
def test_bad_files_are_one_line_errors_naming_the_file(tmp_path, name, content, message):
    path = _write(tmp_path, name, content)
    with pytest.raises(RbmdiffError, match=message) as info:
        load_dataset(path)
    assert name in str(info.value) and "\n" not in str(info.value)


def test_truncated_files(tmp_path):
    path = tmp_path / "t.npy"
    np.save(path, np.zeros((50, 8)))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(RbmdiffError, match="truncated"):
        load_dataset(path)
    pq = tmp_path / "t.parquet"
    pd.DataFrame(np.zeros((50, 3))).rename(columns=str).to_parquet(pq)
    pq.write_bytes(pq.read_bytes()[:60])
    with pytest.raises(RbmdiffError, match="truncated"):
        load_dataset(pq)


def test_unknown_names_and_too_few_rows(tmp_path):
    from rbmdiff.data import check_batch_size

    with pytest.raises(RbmdiffError, match="neither a built-in"):
        load_dataset("cifar10")
    rows = len(load_dataset("bas-3x3").train)
    check_batch_size(rows, rows)  # a batch of every row fits
    with pytest.raises(RbmdiffError, match=r"^--batch-size: 64 exceeds the 14 training rows "
                       r"of bas-3x3; lower it$"):
        check_batch_size(64, rows, name="--batch-size", data="bas-3x3")
