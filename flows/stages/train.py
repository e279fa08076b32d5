"""train: fit the RBM by denoising score matching (or a baseline) on the prepared data."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pandas as pd

from flows.artefacts import read_prepared, wrote
from flows.config import ParamsError, TrainParams
from flows.layout import Layout
from rbmdiff.data import check_batch_size
from rbmdiff.io import write_parquet
from rbmdiff.samplers.base import torch_threads
from rbmdiff.train import TrainConfig, fit
from rbmdiff.training_defaults import options_for, recipe_used

log = logging.getLogger("flows")


def train(p: TrainParams, layout: Layout, *, progress: bool = True) -> dict:
    """Write models/rbm.pt and reports/training.parquet (one row per recorded epoch);
    -> the last history record.

    Training checkpoints about every 100 steps (whole epochs) to ``models/.train-<hash>.ckpt``
    (the hash of the arguments and the data), so a killed run resumes where it stopped and
    ends with exactly the parameters of an uninterrupted one; a finished run removes it, and a
    checkpoint of other arguments or data is deleted, not resumed."""
    x, test, info = read_prepared(layout)
    if p.batch_size is not None:  # say which key to change, not only what failed
        check_batch_size(p.batch_size, x.shape[0], name="train.batch_size", data=info["name"],
                         error=ParamsError)
    # an empty key is the library's rule's choice, exactly as for `rbmdiff train`
    kwargs = options_for(x, recipe=p.recipe, **p.config_kwargs())
    cfg = TrainConfig(**kwargs)
    checkpoint = _checkpoint(layout, cfg, x)
    with torch_threads(p.threads):
        result = fit(x, cfg, eval_data=test, progress=progress,
                     checkpoint=checkpoint,
                     checkpoint_every=math.ceil(100 / math.ceil(x.shape[0] / cfg.batch_size)))
    rbm = result.rbm
    rbm.meta["training"]["data"] = info["name"]
    rbm.meta["training"]["recipe"] = recipe_used(kwargs, p.recipe)
    if info.get("shape"):
        rbm.meta["image_shape"] = info["shape"]
    rbm.save(layout.model)
    # tracked outputs are a function of the inputs: the wall times go to the log
    history = pd.DataFrame(result.history).drop(columns=["wall_s"], errors="ignore")
    write_parquet(history, layout.training, metadata={"rbmdiff_training": rbm.meta["training"]})
    checkpoint.unlink(missing_ok=True)  # only now: a kill before the saves keeps the work
    log.info("train: %.1f s of training (wall time on this machine, a timing kept out of "
             "the model file and reports/training.parquet)", result.wall_s)
    wrote("train", layout.model, layout.training)
    return result.history[-1] if result.history else {}


def _checkpoint(layout: Layout, cfg: TrainConfig, x) -> Path:
    """This run's checkpoint path, named by the run's fingerprint (the one a checkpoint must
    match, :meth:`TrainConfig.fingerprint`); removes checkpoints of other arguments or data."""
    path = layout.model.parent / f".train-{cfg.fingerprint(x)[:16]}.ckpt"
    for other in layout.model.parent.glob(".train-*.ckpt"):
        if other != path:
            other.unlink(missing_ok=True)
    return path
