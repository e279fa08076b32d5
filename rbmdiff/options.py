"""The settings a user chooses for a training run, typed once.

:class:`TrainOptions` is ``rbmdiff train``'s options (:mod:`rbmdiff.cli` builds them from its
fields), the pipeline's ``params.yaml`` ``train`` section (:mod:`flows.config`) and
:func:`rbmdiff.train.train`'s keywords.  A field left None is chosen by the measured-best rule
of :mod:`rbmdiff.training_defaults`, the same rule for all three; :class:`rbmdiff.train.
TrainConfig` validates the fields it shares by this model.  Settings beyond it (a hardware
topology, PCD's negative-phase sampler, the device, the expert knobs of TrainConfig) are
keywords of :func:`rbmdiff.train.train` and options of the CLI only.  No torch: the CLI's
``--help`` and the pipeline's checks read it without the models.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveInt,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from rbmdiff.choices import METHODS, RECIPES, SCORES, TRAIN_M_METHODS
from rbmdiff.errors import RbmdiffError


class TrainOptions(BaseModel):
    """What determines a training run, as a user sets it (docs/math.md §5).  None: the rule
    of :mod:`rbmdiff.training_defaults` chooses (``rbmdiff train --help`` lists it)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    n_hidden: PositiveInt = Field(description="hidden units m")
    method: Literal[METHODS] | None = Field(
        None, description="denoising score matching, or a baseline: persistent / plain "
        "contrastive divergence, exact maximum likelihood")
    score: Literal[SCORES] | None = Field(
        None, description="DSM's score model (docs/math.md §4)")
    m_method: Literal[TRAIN_M_METHODS] | None = Field(
        None, description="how the posterior score computes m_θ in training")
    recipe: Literal[RECIPES] = Field(
        "recommended", description="DSM with the posterior score: 'recommended' is the "
        "measured best variance-reduced variant (rbmdiff.train.RECOMMENDED_DSM, "
        "BENCHMARKS.md); 'plain' is docs/math.md §5 as written (λ = σ², t ~ U[t_ε, 1])")
    steps: PositiveInt | None = Field(None, description="optimiser steps")
    batch_size: PositiveInt | None = Field(
        None, description="rows per step")
    lr: float | None = Field(None, gt=0, allow_inf_nan=False, description="peak learning rate")
    n_noise: PositiveInt | None = Field(None, description="DSM noise draws per row and step")
    sweeps: PositiveInt | None = Field(None, description="mean-field / TAP sweeps")
    cd_k: PositiveInt | None = Field(
        None, description="Gibbs sweeps per CD/PCD step")
    beta_min: float = Field(0.1, gt=0, allow_inf_nan=False, description="VP-SDE β(0)")
    beta_max: float = Field(20.0, gt=0, allow_inf_nan=False,
                            description="VP-SDE β(1), at least beta_min")
    eps: float = Field(1e-3, gt=0, lt=0.5, allow_inf_nan=False,
                       description="logit clip ε ∈ (0, ½)")
    t_eps: float = Field(1e-3, gt=0, lt=1, allow_inf_nan=False,
                         description="smallest diffusion time trained on")
    seed: NonNegativeInt = Field(0, description="random seed")
    threads: PositiveInt = Field(1, description="torch threads")

    @field_validator("beta_max")
    @classmethod
    def _schedule_rises(cls, beta_max: float, info: ValidationInfo) -> float:
        """β(t) = β_min + t(β_max − β_min) must not fall (docs/math.md §3)."""
        beta_min = info.data.get("beta_min")
        if beta_min is not None and beta_max < beta_min:
            raise ValueError(f"must be at least beta_min ({beta_min})")
        return beta_max

    def config_kwargs(self) -> dict[str, Any]:
        """The keywords of :func:`rbmdiff.training_defaults.options_for` (None: the rule's)."""
        return self.model_dump(exclude={"recipe", "threads"})


def parse(options: dict[str, Any], *, spell: typing.Callable[[str], str] = str) -> TrainOptions:
    """``options`` as :class:`TrainOptions`; a problem is one :class:`RbmdiffError` line
    ``key: what is wrong``, the key as the caller spells it (``spell``: field name -> e.g.
    ``--beta-max``)."""
    try:
        return TrainOptions.model_validate(options)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = spell(str(first["loc"][0]))
        if first["type"] == "extra_forbidden":
            known = ", ".join(spell(k) for k in TrainOptions.model_fields)
            raise RbmdiffError(f"{key}: unknown option; the options are {known}") from None
        msg = first["msg"].removeprefix("Value error, ")
        raise RbmdiffError(f"{key}: {msg[0].lower()}{msg[1:]} (got {first.get('input')!r})"
                           ) from None


def field_parser(name: str) -> typing.Callable[[str], Any]:
    """Text → the value of field ``name``, by its type and constraints: an argparse ``type``
    (a ValueError's message is argparse's one-line error)."""
    field = TrainOptions.model_fields[name]
    value_type = _without_none(field.annotation)
    if field.metadata:  # the Field's constraints (gt, lt, allow_inf_nan)
        value_type = typing.Annotated[(value_type, *field.metadata)]
    adapter = TypeAdapter(value_type)

    def parse_text(text: str) -> Any:
        try:
            return adapter.validate_strings(text)
        except ValidationError as exc:
            raise ValueError(exc.errors()[0]["msg"]) from None

    parse_text.__name__ = _type_name(field.annotation)  # argparse says "invalid <name> value"
    return parse_text


def choices(name: str) -> tuple[str, ...] | None:
    """The values a Literal field takes (None for other fields)."""
    inner = _without_none(TrainOptions.model_fields[name].annotation)
    return typing.get_args(inner) if typing.get_origin(inner) is Literal else None


def _without_none(annotation: Any) -> Any:
    """``X | None`` -> X (the type of a value that is given)."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        (annotation,) = [a for a in typing.get_args(annotation) if a is not type(None)]
    return annotation


def _type_name(annotation: Any) -> str:
    inner = _without_none(annotation)
    if typing.get_origin(inner) is typing.Annotated:
        inner = typing.get_args(inner)[0]
    return {int: "integer", float: "number"}.get(inner, "choice")
