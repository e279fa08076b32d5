"""Parquet output written atomically, and the samples table's layout."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from rbmdiff.errors import RbmdiffError
from rbmdiff.files import atomic_write_bytes
from rbmdiff.jsonsafe import dumps
from rbmdiff.samplers.base import Samples
from rbmdiff.seeds import derive


def write_parquet(
    frame: pd.DataFrame, path: str | os.PathLike, *, metadata: dict | None = None
) -> None:
    """Write ``frame`` to ``path`` whole or not at all; ``metadata`` goes in the schema as JSON."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if metadata:
        extra = {k.encode(): dumps(v).encode() for k, v in metadata.items()}
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
    meta = pq.read_metadata(path).metadata or {}
    raw = meta.get(b"rbmdiff_info")
    return json.loads(raw) if raw else {}


EXTENSIVE_INFO = ("wall_s", "multiply_adds", "chain_sweeps", "qpu_access_time")
EXTENSIVE_COST_UNITS = ("qpu_access_us",)  # cost that adds up over chunks (others are per chain)


def chunk_seed(seed: int, index: int) -> int:
    """Seed of chunk ``index``: ``seed`` itself for chunk 0 (one chunk is an unchunked run),
    a 32-bit :func:`rbmdiff.seeds.derive` seed for the others."""
    return derive(seed, index, below=2**32) if index else seed


def sample_to_parquet(
    sampler,
    rbm,
    num_samples: int,
    *,
    seed: int,
    path: str | os.PathLike,
    chunk_size: int = 100_000,
    on_chunk=None,
    progress: bool = False,
) -> dict:
    """Draw ``num_samples`` in chunks and stream them to ``path`` (Parquet, one row group per
    chunk), so memory is bounded by one chunk.  The file appears whole (atomic rename) or not
    at all.  ``on_chunk(samples)`` sees each chunk (e.g. a :class:`SampleStats`).  Returns the
    merged ``info``: extensive fields summed over chunks, the rest from the first chunk."""
    if chunk_size < 1:
        raise RbmdiffError(f"chunk_size must be ≥ 1, got {chunk_size}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    writer, info = None, {}
    bar = tqdm(total=num_samples, desc=f"sample {sampler.name}", leave=False, unit="sample",
               disable=None if progress else True)  # None: a bar only on a terminal
    try:
        for index, start in enumerate(range(0, num_samples, chunk_size)):
            size = min(chunk_size, num_samples - start)
            chunk = sampler.sample(rbm, size, seed=chunk_seed(seed, index))
            table = pa.Table.from_pandas(samples_frame(chunk), preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
                info = dict(chunk.info)
            else:
                for key in EXTENSIVE_INFO:
                    if key in chunk.info and key in info:
                        info[key] += chunk.info[key]
                if info.get("cost_unit") in EXTENSIVE_COST_UNITS:
                    info["cost_units"] += chunk.info["cost_units"]
            writer.write_table(table)
            if on_chunk is not None:
                on_chunk(chunk)
            bar.update(size)
        info.update(seed=seed, num_samples=num_samples, chunk_size=chunk_size,
                    samples_per_s=num_samples / info["wall_s"] if info["wall_s"] > 0 else None)
        writer.add_key_value_metadata({"rbmdiff_info": dumps(info)})
        writer.close()
        os.replace(tmp, path)
    except BaseException:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
        raise
    finally:
        bar.close()
    return info

