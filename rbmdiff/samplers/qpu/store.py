"""Paid reads kept on disk, and retries of transient cloud faults.

Each solver call is keyed by everything that determines its reads (problem, parameters,
embedding, run seed, call index); a call answered before is read back instead of paid again.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import dimod

from rbmdiff.errors import RbmdiffError, TransientError
from rbmdiff.files import atomic_write_bytes
from rbmdiff.jsonsafe import dumps


def transient(exc: BaseException) -> bool:
    """Cloud faults worth retrying: timeouts, a lost connection, an offline solver, a failed
    upload, rate limits (HTTP 429) and server errors (5xx).  Anything else (a rejected problem,
    a solver failure, bad credentials) is permanent."""
    import requests
    from dwave.cloud import exceptions as cloud

    if isinstance(exc, cloud.RequestTimeout | cloud.PollingTimeout | cloud.Timeout
                  | cloud.SolverOfflineError | cloud.ProblemUploadError
                  | requests.ConnectionError | requests.Timeout
                  | ConnectionError | TimeoutError):
        return True
    code = getattr(exc, "error_code", None)
    return isinstance(exc, cloud.SAPIError) and code is not None and (code == 429 or code >= 500)


def sleep(seconds: float) -> None:  # a seam for tests
    time.sleep(seconds)


def with_retries(call, *, retries: int, backoff: float, what: str = "QPU call",
                 hint: str = ""):
    """call() with up to ``retries`` retries of transient faults, sleeping backoff·2^k s
    before retry k+1.  A transient fault that outlasts them is a TransientError; any other
    fault fails at once as a RbmdiffError.  Both messages are one line ending in ``hint``.
    This is the only retry layer: the pipeline's tasks do not retry."""
    for k in range(retries + 1):
        try:
            return call()
        except Exception as exc:
            fault = f"{type(exc).__name__}: {exc}".replace("\n", " ")
            if not transient(exc):
                raise RbmdiffError(f"{what} failed ({fault}){hint}") from None
            if k == retries:
                raise TransientError(f"{what} still failing after {retries} retries ({fault}); "
                                     f"try again later{hint}") from None
            sleep(backoff * 2**k)
    raise AssertionError("unreachable")


def call_key(h: dict, J: dict, kwargs: dict, *, chain_strength: float, embedding: Any,
             seed: int, call: int) -> str:
    """SHA-256 of everything that determines a solver call's reads (problem, parameters,
    embedding, run seed and call index): the read store's file name."""
    payload = {
        "h": sorted((str(k), float(v)) for k, v in h.items()),
        "J": sorted((str(a), str(b), float(v)) for (a, b), v in J.items()),
        "kwargs": {k: kwargs[k] for k in sorted(kwargs)}, "chain_strength": chain_strength,
        "embedding": sorted((str(k), list(map(int, v))) for k, v in dict(embedding).items()),
        "seed": seed, "call": call,
    }
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:32]


def load_reads(store: Path | None, key: str) -> dimod.SampleSet | None:
    """The stored reads of call ``key``; None when absent or damaged (then paid again)."""
    path = store / f"{key}.json" if store is not None else None
    if path is None or not path.is_file():
        return None
    try:
        return dimod.SampleSet.from_serializable(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError):
        return None


def save_reads(store: Path | None, key: str, ss: dimod.SampleSet) -> None:
    """Keep the reads of call ``key`` (atomic write); nothing when there is no store."""
    if store is not None:
        data = dumps(ss.to_serializable()).encode()
        atomic_write_bytes(store / f"{key}.json", data)
