"""What a pipeline run checks before it starts Prefect or any stage, so that bad input costs
nothing and changes nothing: every params.yaml key, each sampler block, the data (a file must
be readable, finite, within [0, 1] and hold a training batch), and, on the mock solver, that
the RBM embeds.  Each problem is one :class:`ParamsError` line naming the key.
"""

from __future__ import annotations

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
    return params


def check_data(params: Params, path: Path) -> int:
    """The data set loads (as the prepare stage loads it) and holds a training batch.
    -> its number of visible units."""
    from rbmdiff.data import load_dataset

    try:
        dataset = load_dataset(params.data.name)
    except RbmdiffError as exc:
        raise ParamsError(f"{path}: data.name: {exc}") from None
    rows = dataset.train.shape[0]
    if params.data.max_train_rows is not None:
        rows = min(rows, params.data.max_train_rows)
    if params.train.batch_size > rows:
        raise ParamsError(f"{path}: train.batch_size: {params.train.batch_size} exceeds the "
                          f"{rows} training rows of {params.data.name}; lower it")
    return dataset.n_visible


def check_embeddable_on_mock(params: Params, n_visible: int, path: Path) -> None:
    """Refuse an RBM beyond the mock solver's biclique limit before training it (a real
    solver's graph is known only once it is opened: the embed stage checks that one)."""
    from rbmdiff.samplers.qpu import check_embeddable, has_token

    embed = params.embed
    if embed.mock is False or (embed.mock is None and has_token()):
        return
    try:
        check_embeddable(n_visible, params.train.n_hidden, embed.topology, embed.mock_shape)
    except RbmdiffError as exc:
        raise ParamsError(f"{path}: train.n_hidden: {exc}") from None
