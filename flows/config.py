"""params.yaml, validated at the edge into typed sections (one per pipeline step).

Every key a step reads must be written in params.yaml: the models here have no defaults, so
that DVC sees every value a stage depends on.  An empty (null) ``train`` key is a value too:
the training rule's choice (:mod:`rbmdiff.training_defaults`, a dependency of the train stage),
exactly as ``rbmdiff train`` without that option.
A wrong key or value is reported as one line naming it, e.g.
``params.yaml: train.n_hiden: unknown key; train takes n_hidden, method, …``.
Sampler blocks (``sample.<route>``) are open: their keys are the sampler's own keyword
parameters, checked by the sampler's constructor (:func:`check_samplers`).
"""

from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    create_model,
)
from pydantic_core import PydanticUndefined

from rbmdiff.choices import CHAIN_RULES, QPU_MOCKS, TOPOLOGIES
from rbmdiff.errors import RbmdiffError
from rbmdiff.options import TrainOptions


class ParamsError(RbmdiffError):
    """A params.yaml problem, as one line naming the key."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataParams(Section):
    """prepare: which data set, and an optional subsample of its training rows."""

    name: str = Field(description="built-in name (digits, digits-binary, mnist, mnist-binary, "
                      "bas-3x3, bas-4x4) or a .npy/.csv/.parquet file of values in [0, 1]")
    max_train_rows: PositiveInt | None
    seed: NonNegativeInt


def every_key_required(model: type[BaseModel]) -> type[BaseModel]:
    """``model`` with no defaults: every field must be written (None stays a value where the
    field takes it: the library's rule then chooses)."""
    fields = {}
    for name, info in model.model_fields.items():
        required = copy.copy(info)
        required.default = PydanticUndefined
        fields[name] = (info.annotation, required)
    return create_model(model.__name__.removesuffix("Options") + "Params", __base__=model,
                        __doc__=model.__doc__, **fields)


# train: rbmdiff.train.train's settings, typed once in the library (rbmdiff.options); an
# empty (null) value is the rule's choice, as for `rbmdiff train` without the option
TrainParams = every_key_required(TrainOptions)


class EmbedParams(Section):
    """embed: the solver graph K_{n,m} is embedded on (the mock's, without a D-Wave token)."""

    mock: bool | None = Field(description="None: the mock unless a D-Wave token is configured")
    topology: Literal[TOPOLOGIES]
    mock_shape: list[PositiveInt] = Field(min_length=1, max_length=2)
    timeout: PositiveFloat
    seed: NonNegativeInt


class RouteParams(BaseModel):
    """sample.<route>: a sampler run; keys other than these are the sampler's parameters."""

    model_config = ConfigDict(extra="allow", frozen=True)

    seed: NonNegativeInt
    num_samples: PositiveInt

    def sampler_params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ReportParams(Section):
    """report: the figures' sample grid."""

    grid_samples: PositiveInt = Field(description="samples per sampler in the grid figure")
    seed: NonNegativeInt


class CampaignSweep(Section):
    """The QPU settings a campaign sweeps (their Cartesian product, in this order)."""

    num_reads: list[PositiveInt | None] = Field(min_length=1)
    annealing_time: list[PositiveFloat | None] = Field(min_length=1)
    chain_strength: list[PositiveFloat | Literal[CHAIN_RULES] | None] = Field(
        min_length=1, description="None or 'relative': f · prefactor · max|J|; 'utc'; µ units")
    calibration_rounds: list[NonNegativeInt] = Field(min_length=1)
    mock: list[Literal[QPU_MOCKS] | bool | None] = Field(
        default=[None], min_length=1, description="None: the QPU with a token, else the mock")

    def settings(self) -> list[dict[str, Any]]:
        keys = list(type(self).model_fields)
        grid = itertools.product(*(getattr(self, k) for k in keys))
        return [dict(zip(keys, values, strict=True)) for values in grid]


class CampaignParams(Section):
    """campaign: a QPU sweep stopped by a budget of QPU access time (µs)."""

    num_samples: PositiveInt
    budget_us: PositiveFloat
    max_call_fraction: float = Field(
        gt=0, le=1, description="one call's estimate at most this share of the budget: the "
        "bound on overspend is parallel · (ρ − 1) · max_call_fraction · budget (flows.budget)")
    parallel: PositiveInt
    seed: NonNegativeInt
    sweep: CampaignSweep
    fixed: dict[str, Any] = Field(description="other QPUSampler parameters of every run")


class Params(Section):
    """The whole of params.yaml."""

    data: DataParams
    train: TrainParams
    embed: EmbedParams
    sample: dict[str, RouteParams] = Field(min_length=1)
    report: ReportParams
    campaign: CampaignParams


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml; any problem is a one-line :class:`ParamsError`."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: no such file; run from the project root or pass --params")
    try:
        raw = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ParamsError(f"{path}: not UTF-8 text (byte {exc.start}); truncated or not a "
                          "params file?") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        problem = getattr(exc, "problem", exc)
        raise ParamsError(f"{path}: not valid YAML{where}: {problem}") from None
    if raw is None:
        raise ParamsError(f"{path}: empty; it needs the sections {', '.join(Params.model_fields)}")
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        params = Params.model_validate(raw)
    except ValidationError as exc:
        raise ParamsError(f"{path}: {describe(exc)}") from None
    check_routes(params, path)
    return params


def describe(exc: ValidationError) -> str:
    """The first validation problem as ``key.path: what is wrong`` (+ how many more)."""
    errors = exc.errors()  # a misspelt key is named as such, not as the key it misses
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = tuple(str(p) for p in first["loc"])
    key = ".".join(loc)
    if first["type"] == "extra_forbidden":
        known = ", ".join(_known_keys(loc[:-1]))
        text = f"{key}: unknown key; {'.'.join(loc[:-1]) or 'params'} takes {known}"
    elif first["type"] == "missing":
        text = f"{key}: missing; every key a step reads must be set in params.yaml"
    else:
        msg = first["msg"].removeprefix("Value error, ")
        text = f"{key}: {msg} (got {first.get('input')!r})"
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more)"
    return text


def _known_keys(loc: tuple[str, ...]) -> list[str]:
    """Field names of the model found at ``loc`` inside :class:`Params`."""
    model: Any = Params
    for part in loc:
        field = model.model_fields.get(part) if isinstance(model, type) else None
        if field is None:  # inside sample.<route>: an open block
            return list(RouteParams.model_fields)
        model = field.annotation
        if getattr(model, "__origin__", None) is dict:
            model = RouteParams
    return list(model.model_fields) if isinstance(model, type) else []


def check_routes(params: Params, path: Path) -> None:
    """Each sample route names a registered sampler (cheap: no sampler module is imported)."""
    from rbmdiff.samplers import REGISTRY

    for route in params.sample:
        if route not in REGISTRY:
            raise ParamsError(
                f"{path}: sample.{route}: unknown sampler; routes are named after samplers: "
                f"{', '.join(sorted(REGISTRY))}"
            )
    if "topology" in params.sample.get("qpu", RouteParams(seed=0, num_samples=1)).sampler_params():
        raise ParamsError(f"{path}: sample.qpu.topology: set the topology in embed.topology")


def check_samplers(params: Params, path: str | Path = "params.yaml") -> None:
    """Build every route's sampler and the campaign's QPU sampler once, so that a wrong
    sampler key fails before any work, as one line naming it."""
    from rbmdiff import samplers

    blocks = {f"sample.{r}": (r, p.sampler_params()) for r, p in params.sample.items()}
    blocks["campaign.fixed"] = ("qpu", dict(params.campaign.fixed))
    for key, (name, kwargs) in blocks.items():
        try:
            samplers.get(name, **kwargs)
        except (RbmdiffError, TypeError) as exc:
            raise ParamsError(f"{path}: {key}: {exc}") from None
