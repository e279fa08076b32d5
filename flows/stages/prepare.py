"""prepare: the data set's train/test split as arrays in [0, 1], with its description."""

from __future__ import annotations

import numpy as np

from flows.artefacts import staged_dir, write_array, write_json, wrote
from flows.config import DataParams
from flows.layout import Layout
from rbmdiff.data import is_binary, load_arrays


def prepare(p: DataParams, layout: Layout) -> dict:
    """Write data/prepared/{train,test}.npy (N, n) and dataset.json; -> the description.

    ``max_train_rows`` keeps a random subset (drawn with ``seed`` by NumPy's PCG64) of the
    training rows, in their order.
    """
    train, test, shape = load_arrays(p.name)
    binary = is_binary(train)  # of the data set, as the train stage's score choice expects
    if p.max_train_rows is not None and p.max_train_rows < train.shape[0]:
        rows = np.random.default_rng(p.seed).permutation(train.shape[0])[: p.max_train_rows]
        train = train[np.sort(rows)]
    info = {
        "name": p.name, "n_visible": int(train.shape[1]), "train_rows": int(train.shape[0]),
        "test_rows": int(test.shape[0]), "binary": binary,
        "shape": list(shape) if shape else None,
    }
    with staged_dir(layout.prepared) as staging:  # replaces the folder whole
        write_array(staging / "train.npy", train)
        write_array(staging / "test.npy", test)
        write_json(staging / layout.dataset_info.name, info)
    wrote("prepare", layout.prepared)
    return info
