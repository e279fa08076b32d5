"""The columns of a sampler run's record (docs/math.md §7) and the QPU route's facts it
carries, each declared once as a dataclass field with its Python type: the record
(:meth:`rbmdiff.metrics.SampleStats.record`) and the QPU sampler's info are built from these
dataclasses, and the report's table and the campaign's columns take their pandas types
(``RECORD``, ``QPU_FACTS``) from the fields.  No torch: the pipeline's tables read it
without the models."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass

PANDAS_TYPES = {float: "float64", int: "Int64", bool: "boolean", str: "string"}


@dataclass(frozen=True)
class Record:
    """One sampler run's §7 record (every run)."""

    sampler: str | None
    params: str
    seed: int | None
    num_samples: int
    wall_s: float
    samples_per_s: float
    cost_units: float
    cost_unit: str | None
    multiply_adds: float
    mean_abs_err: float
    corr_rmse: float
    mmd: float
    mean_free_energy: float
    test_log_likelihood: float
    tv_exact: float


@dataclass(frozen=True)
class QPUFacts:
    """The facts of a QPU run that its record keeps (a subset of the sampler's info).  The
    verdict's (energy_z, fidelity_*) are None where no verdict was asked, and then left out
    of the info."""

    chain_break_fraction: float
    beta_eff: float
    beta_eff_low: float
    beta_eff_high: float
    beta_model: float
    prefactor: float
    chain_strength: float
    clipped: bool
    target_reached: bool
    rounds: int
    energy_z: float | None
    fidelity_ok: bool | None
    fidelity_p: float | None
    fidelity_worst: str | None
    calibration_reused: bool
    postprocess_sweeps: int
    qpu_access_time: float
    num_qubits: int | None
    mock: bool
    mock_kind: str | None


VERDICT_FACTS = ("energy_z", "fidelity_ok", "fidelity_p", "fidelity_worst")


def pandas_types(record: type) -> dict[str, str]:
    """{field: pandas dtype} of a dataclass whose fields are float, int, bool or str
    (optionally ``| None``): float64, Int64, boolean, string."""
    hints = typing.get_type_hints(record)
    out = {}
    for f in dataclasses.fields(record):
        hint = hints[f.name]
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
            (hint,) = [t for t in typing.get_args(hint) if t is not type(None)]
        out[f.name] = PANDAS_TYPES[hint]
    return out


RECORD: dict[str, str] = pandas_types(Record)  # every run
QPU_FACTS: dict[str, str] = pandas_types(QPUFacts)  # a QPU run's info keys its record keeps
TYPES: dict[str, str] = {**RECORD, **QPU_FACTS}
