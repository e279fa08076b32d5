"""The TrainConfig a training call resolves, with training itself skipped: ``fit`` is replaced
by a stand-in that records its config and stops the call."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest


class Resolved(Exception):
    """Raised by the stand-in for ``fit`` once it has the config (no training done)."""


def config_of(monkeypatch: pytest.MonkeyPatch, run: Callable[[], Any],
              where: ModuleType | None = None) -> Any:
    """The config ``run()`` hands to ``where.fit`` (default rbmdiff.train's)."""
    if where is None:
        from rbmdiff import train as where
    seen = {}

    def capture(x, cfg, **kw):
        seen["cfg"] = cfg
        raise Resolved

    with monkeypatch.context() as patch:
        patch.setattr(where, "fit", capture)
        with pytest.raises(Resolved):
            run()
    return seen["cfg"]


def cli_config(monkeypatch: pytest.MonkeyPatch, argv: list, out: Any) -> Any:
    """The config ``rbmdiff train ARGV --out OUT --quiet --device cpu`` resolves."""
    from rbmdiff.cli import main

    cfg = config_of(monkeypatch, lambda: main(["train", *map(str, argv), "--out", str(out),
                                               "--quiet", "--device", "cpu"]))
    return dataclasses.replace(cfg, device="cpu")
