"""What a pipeline run checks before it starts Prefect or any stage, so that bad input costs
nothing and changes nothing: every params.yaml key, each sampler block, the data (a file must
be readable, finite, within [0, 1] and hold a training batch), and, on the mock solver, that
the RBM embeds.  Each problem is one :class:`ParamsError` line naming the key.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from flows.config import Params, ParamsError, check_samplers, load_params
from flows.layout import Layout
from rbmdiff.errors import RbmdiffError


def preflight(root: str | Path) -> Params:
    """Validate the project at ``root`` for a pipeline run; -> its params."""
    path = Layout(Path(root)).params
    params = load_params(path)
    check_samplers(params, path)
    n_visible = check_data(params, path)
    check_embeddable_on_mock(params, n_visible, path)
    check_sample_sizes(params, n_visible, path)
    check_writable(Path(root))
    return params


BYTES_PER_UNIT = 32  # a sample's unit held by a route: v and x as float32, copies, statistics


def check_sample_sizes(params: Params, n_visible: int, path: Path) -> None:
    """Each route holds its samples in memory: refuse a num_samples whose samples alone would
    take more than half of this machine's memory (``rbmdiff sample`` streams in chunks)."""
    for route, p in params.sample.items():
        check_route_size(route, p.num_samples, n_visible, path)


def check_route_size(route: str, num_samples: int, n_visible: int, path: Path) -> None:
    """One route's part of :func:`check_sample_sizes` (also run by the sample stage's
    command, which ``dvc repro`` runs without this preflight)."""
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return
    need = num_samples * n_visible * BYTES_PER_UNIT
    if need > memory / 2:
        most = int(memory / 2 / (n_visible * BYTES_PER_UNIT))
        raise ParamsError(
            f"{path}: sample.{route}.num_samples: {num_samples:,} samples of "
            f"{n_visible} units need ~{need / 2**30:.0f} GiB, more than half of this "
            f"machine's {memory / 2**30:.0f} GiB (at most {most:,} here); for more, "
            "`rbmdiff sample --chunk-size` streams them to a file")


def check_writable(root: Path) -> None:
    """The project folder takes the run's outputs (and DVC's lock): refuse a read-only one."""
    try:
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as exc:
        raise RbmdiffError(f"cannot write in {root.resolve()} ({exc.strerror or exc}): the "
                           "pipeline writes its outputs and dvc.lock there; run it in a "
                           "writable clone") from None


def check_data(params: Params, path: Path) -> int:
    """The data set loads (as the prepare stage loads it) and holds a training batch.
    -> its number of visible units."""
    from rbmdiff.data import check_batch_size, load_dataset

    try:
        dataset = load_dataset(params.data.name)
    except RbmdiffError as exc:
        raise ParamsError(f"{path}: data.name: {exc}") from None
    rows = dataset.train.shape[0]
    if params.data.max_train_rows is not None:
        rows = min(rows, params.data.max_train_rows)
    if params.train.batch_size is not None:  # else the rule's: min(64, rows)
        check_batch_size(params.train.batch_size, rows, name=f"{path}: train.batch_size",
                         data=params.data.name, error=ParamsError)
    return dataset.n_visible


def check_embeddable_on_mock(params: Params, n_visible: int, path: Path) -> None:
    """With a qpu route, refuse an RBM beyond the mock solver's biclique limit before training
    it (a real solver's graph is known only once it is opened: the embed stage records whether
    the model fits it, and the qpu route refuses if not).  Without one, the other routes run."""
    from rbmdiff.samplers.qpu import check_embeddable, has_token

    embed = params.embed
    if "qpu" not in params.sample or embed.mock is False or (embed.mock is None and has_token()):
        return
    try:
        check_embeddable(n_visible, params.train.n_hidden, embed.topology, embed.mock_shape)
    except RbmdiffError as exc:
        raise ParamsError(f"{path}: train.n_hidden: {exc}; or drop the qpu route (sample.qpu) "
                          "and the other routes run") from None
