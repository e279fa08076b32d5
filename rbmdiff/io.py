"""Parquet output written atomically, and the samples table's layout."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from rbmdiff.rbm import atomic_write_bytes
from rbmdiff.samplers.base import Samples


def write_parquet(
    frame: pd.DataFrame, path: str | os.PathLike, *, metadata: dict | None = None
) -> None:
    """Write ``frame`` to ``path`` whole or not at all; ``metadata`` goes in the schema as JSON."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if metadata:
        extra = {k.encode(): json.dumps(v, default=str).encode() for k, v in metadata.items()}
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **extra})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    atomic_write_bytes(Path(path), buf.getvalue())


def samples_frame(samples: Samples) -> pd.DataFrame:
    """Columns v0..v{n-1} (uint8), then x0..x{n-1} (float32) where the sampler has them."""
    v = samples.v.to("cpu").numpy().astype("uint8")
    columns = {f"v{i}": v[:, i] for i in range(v.shape[1])}
    if samples.x is not None:
        x = samples.x.to("cpu").numpy().astype("float32")
        columns.update({f"x{i}": x[:, i] for i in range(x.shape[1])})
    return pd.DataFrame(columns)


def read_info(path: str | os.PathLike) -> dict:
    """The sampler ``info`` stored in a samples file's schema metadata."""
    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(b"rbmdiff_info")
    return json.loads(raw) if raw else {}
