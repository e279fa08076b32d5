"""prepare: the data set's train/test split as arrays in [0, 1], with its description."""

from __future__ import annotations

import torch

from flows.artefacts import staged_dir, write_array, write_json, wrote
from flows.config import DataParams
from flows.layout import Layout
from rbmdiff.data import load_dataset


def prepare(p: DataParams, layout: Layout) -> dict:
    """Write data/prepared/{train,test}.npy (N, n) and dataset.json; -> the description.

    ``max_train_rows`` keeps a random subset (drawn with ``seed``) of the training rows.
    """
    dataset = load_dataset(p.name)
    train = dataset.train
    if p.max_train_rows is not None and p.max_train_rows < train.shape[0]:
        g = torch.Generator().manual_seed(p.seed)
        train = train[torch.randperm(train.shape[0], generator=g)[: p.max_train_rows]]
    info = {
        "name": p.name, "n_visible": dataset.n_visible, "train_rows": int(train.shape[0]),
        "test_rows": int(dataset.test.shape[0]), "binary": dataset.binary,
        "shape": list(dataset.shape) if dataset.shape else None,
    }
    with staged_dir(layout.prepared) as staging:  # replaces the folder whole
        write_array(staging / "train.npy", train)
        write_array(staging / "test.npy", dataset.test)
        write_json(staging / layout.dataset_info.name, info)
    wrote("prepare", layout.prepared)
    return info
