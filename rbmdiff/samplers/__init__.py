"""Samplers behind one interface (docs/math.md §6): ``get(name, **params).sample(rbm, B, seed=K)``.

Each returns :class:`Samples`: ``v`` (B, n) of 0/1, ``x`` the mean-field values where the
sampler has them, and ``info`` (wall time, cost units, seed, sampler-specific facts).
Names resolve once, here, through an explicit registry; modules load lazily so that
``dwave.system`` is imported only when the QPU route is used.
"""

from __future__ import annotations

import importlib
import inspect
import numbers
from typing import TYPE_CHECKING, Any

from numpy import bool_ as np_bool

from rbmdiff.choices import SAMPLERS
from rbmdiff.errors import RbmdiffError

if TYPE_CHECKING:
    from rbmdiff.samplers.base import Sampler, Samples

REGISTRY: dict[str, str] = {
    "sde": "rbmdiff.samplers.sde:SDESampler",
    "ode": "rbmdiff.samplers.sde:ODESampler",
    "gibbs": "rbmdiff.samplers.gibbs:GibbsSampler",
    "anneal": "rbmdiff.samplers.anneal:AnnealSampler",
    "qpu": "rbmdiff.samplers.qpu:QPUSampler",
}
assert tuple(REGISTRY) == SAMPLERS  # the names the CLI and params.yaml accept


def get(name: str, **params) -> Sampler:
    """The sampler registered under ``name``, built with ``params``."""
    if name not in REGISTRY:
        raise RbmdiffError(f"unknown sampler {name!r}; choose one of {sorted(REGISTRY)}")
    module, cls_name = REGISTRY[name].split(":")
    cls = getattr(importlib.import_module(module), cls_name)
    known = [p for p in inspect.signature(cls).parameters if p not in ("args", "kw", "kwargs")]
    unknown = sorted(set(params) - set(known) - set(_inherited(cls)))
    if unknown:
        raise RbmdiffError(
            f"sampler {name!r} has no parameter {', '.join(unknown)}; it takes {', '.join(known)}"
        )
    annotations = {k: p.annotation for k, p in inspect.signature(cls).parameters.items()}
    for key, value in params.items():
        problem = _type_problem(annotations.get(key), value)
        if problem:
            raise RbmdiffError(f"sampler {name!r} parameter {key}: {problem}, got {value!r}")
    return cls(**params)


# The plain types a sampler's keyword may be annotated with, as written in its signature
# (annotations are strings: `from __future__ import annotations`), and a check of each.
# numbers.Integral / Real: NumPy's scalars (read back from a table) count as numbers too.
_CHECKS = {
    "int": ("a whole number", lambda v: isinstance(v, numbers.Integral)
            and not isinstance(v, bool | np_bool)),
    "float": ("a number", lambda v: isinstance(v, numbers.Real)  # its range: the sampler's
              and not isinstance(v, bool | np_bool)),
    "bool": ("true or false", lambda v: isinstance(v, bool | np_bool)),
    "str": ("a string", lambda v: isinstance(v, str)),
    "None": ("null", lambda v: v is None),
}


def _type_problem(annotation: Any, value: Any) -> str | None:
    """Why ``value`` does not fit an annotation made of plain types (``int``, ``float | None``,
    ``str | bool`` …); None when it fits or the annotation is anything else (not checked)."""
    if not isinstance(annotation, str):
        return None
    kinds = [k.strip() for k in annotation.split("|")]
    if not kinds or any(k not in _CHECKS for k in kinds):
        return None
    if any(_CHECKS[k][1](value) for k in kinds):
        return None
    return "must be " + " or ".join(_CHECKS[k][0] for k in kinds)


def _inherited(cls: type) -> list[str]:
    """Keyword parameters a subclass passes on to its base's constructor."""
    names: list[str] = []
    for base in cls.__mro__[1:]:
        if "__init__" in vars(base):
            names += list(inspect.signature(base.__init__).parameters)
    return names


def __getattr__(name: str):
    """``Sampler`` and ``Samples`` on first use, so that the registry (read when params.yaml
    is checked) does not import torch."""
    if name in ("Sampler", "Samples"):
        from rbmdiff.samplers import base

        return getattr(base, name)
    raise AttributeError(f"module 'rbmdiff.samplers' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = ["REGISTRY", "Sampler", "Samples", "get"]
