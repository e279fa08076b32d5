"""The QPU sampler's settings (rbmdiff.samplers.qpu.settings) and typed records
(rbmdiff.records): per-run settings given to ``sample()`` run exactly as if given to the
constructor; an unknown one is refused in one line; the record's pandas types derived from
the dataclasses are the ones the report and campaign tables have always used."""

from __future__ import annotations

import warnings

import pytest
import torch

from rbmdiff import RBM, RbmdiffError
from rbmdiff.records import QPU_FACTS, RECORD, TYPES, QPUFacts
from rbmdiff.samplers.qpu import QPUSampler
from rbmdiff.samplers.qpu.settings import PER_RUN

FAST = {"mock": "annealer", "mock_sweeps": 50, "calibration_reads": 300, "num_bootstrap": 20}
# what differs between two runs of one setting: wall time, the mock's random problem ids,
# and the embedding file's folder
VOLATILE = ("wall_s", "samples_per_s", "problem_ids", "embedding_path")


@pytest.fixture
def rbm() -> RBM:
    """8×6 on pegasus P8: 2-qubit chains, so chain strength matters."""
    return RBM.random(8, 6, scale=1.0, seed=5, dtype=torch.float64)


def draw(sampler: QPUSampler, rbm: RBM, **overrides):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the verdict on a mock is not what is tested here
        return sampler.sample(rbm, 300, seed=4, **overrides)


def same_run(a, b) -> None:
    """Same reads, same raw reads, same info but for VOLATILE."""
    assert torch.equal(a.v, b.v)
    assert (a.raw_v is None) == (b.raw_v is None)
    if a.raw_v is not None:
        assert torch.equal(a.raw_v, b.raw_v)
    strip = [{k: v for k, v in s.info.items() if k not in VOLATILE} for s in (a, b)]
    assert list(strip[0]) == list(strip[1])  # the info's keys in one order
    assert strip[0] == strip[1]


@pytest.mark.parametrize("overrides", [
    {"annealing_time": 40.0, "chain_strength_factor": 1.5, "postprocess_sweeps": 2},
    {"calibration_rounds": 0, "num_reads": 100, "chain_strength": "utc"},
    {"calibration_rounds": 2, "num_bootstrap": 10, "verdict": False, "beta_eff": 4.0},
])
def test_per_run_settings_run_as_if_given_to_the_constructor(rbm, tmp_path, overrides):
    built = QPUSampler(embedding_dir=tmp_path / "a", **{**FAST, **overrides})
    given = QPUSampler(embedding_dir=tmp_path / "b", **FAST)
    run = draw(given, rbm, **overrides)
    same_run(draw(built, rbm), run)
    assert given.params(**overrides) == built.params() == run.info["params"]
    assert all(run.info["params"][k] == v for k, v in overrides.items())


def test_per_run_settings_last_one_call(rbm, tmp_path):
    """The sampler keeps its own settings: a later call without overrides runs them."""
    plain = QPUSampler(embedding_dir=tmp_path / "a", **FAST, calibration_rounds=0)
    reused = QPUSampler(embedding_dir=tmp_path / "b", **FAST, calibration_rounds=0)
    before = reused.params()
    draw(reused, rbm, annealing_time=40.0, chain_strength_factor=1.5)
    assert reused.params() == before
    same_run(draw(plain, rbm), draw(reused, rbm))


def test_unknown_or_device_setting_per_run_is_refused_in_one_line(rbm, tmp_path):
    s = QPUSampler(embedding_dir=tmp_path, **FAST)
    for bad in ({"anealing_time": 40.0}, {"mock_beta": 2.0}, {"topology": "zephyr"}):
        with pytest.raises(RbmdiffError) as err:
            s.sample(rbm, 10, seed=0, **bad)
        msg = str(err.value)
        assert "\n" not in msg and repr(next(iter(bad))) in msg
        assert all(name in msg for name in PER_RUN)  # it names what is accepted
    with pytest.raises(RbmdiffError, match="unknown"):
        s.params(unknown=1)


def test_per_run_values_are_validated_as_the_constructor_does(rbm, tmp_path):
    s = QPUSampler(embedding_dir=tmp_path, **FAST)
    for bad in ({"annealing_time": -1.0}, {"calibration_rounds": 1.5},
                {"chain_strength": "strong"}, {"alpha": 2.0}, {"calibration_reads": 0}):
        with pytest.raises(RbmdiffError) as built:
            QPUSampler(embedding_dir=tmp_path, **{**FAST, **bad})
        with pytest.raises(RbmdiffError) as given:
            s.sample(rbm, 10, seed=0, **bad)
        assert str(given.value) == str(built.value)


def test_per_run_annealing_time_refused_by_a_device_without_one(rbm, tmp_path):
    """The thermal mock has no anneal: refused per run as at construction, even once the
    device is open."""
    s = QPUSampler(embedding_dir=tmp_path, **{**FAST, "mock": "thermal"},
                   calibration_rounds=0)
    draw(s, rbm)  # opens and embeds
    with pytest.raises(RbmdiffError, match="takes no annealing_time"):
        s.sample(rbm, 10, seed=0, annealing_time=40.0)
    timed = QPUSampler(embedding_dir=tmp_path, **{**FAST, "mock": "thermal"},
                       calibration_rounds=0, annealing_time=40.0)
    with pytest.raises(RbmdiffError, match="takes no annealing_time"):
        timed.sample(rbm, 10, seed=0)
    assert draw(timed, rbm, annealing_time=None).info["params"]["annealing_time"] is None


def test_record_types_derived_from_the_dataclasses_are_the_tables_types():
    # the mappings as they were written by hand before the dataclasses: the oracle
    record = {
        "sampler": "string", "params": "string", "seed": "Int64", "num_samples": "Int64",
        "wall_s": "float64", "samples_per_s": "float64", "cost_units": "float64",
        "cost_unit": "string", "multiply_adds": "float64", "mean_abs_err": "float64",
        "corr_rmse": "float64", "mmd": "float64", "mean_free_energy": "float64",
        "test_log_likelihood": "float64", "tv_exact": "float64",
    }
    qpu_facts = {
        "chain_break_fraction": "float64", "beta_eff": "float64", "beta_eff_low": "float64",
        "beta_eff_high": "float64", "beta_model": "float64", "prefactor": "float64",
        "chain_strength": "float64", "clipped": "boolean", "target_reached": "boolean",
        "rounds": "Int64", "energy_z": "float64", "fidelity_ok": "boolean",
        "fidelity_p": "float64", "fidelity_worst": "string", "calibration_reused": "boolean",
        "postprocess_sweeps": "Int64", "qpu_access_time": "float64", "num_qubits": "Int64",
        "mock": "boolean", "mock_kind": "string",
    }
    assert list(RECORD.items()) == list(record.items())  # order too: the tables' columns
    assert list(QPU_FACTS.items()) == list(qpu_facts.items())
    assert list(TYPES.items()) == list({**record, **qpu_facts}.items())


def test_a_qpu_run_reports_every_fact(rbm, tmp_path):
    """The info holds every QPUFacts field (the verdict's only with a verdict)."""
    s = QPUSampler(embedding_dir=tmp_path, **FAST, calibration_rounds=0)
    info = draw(s, rbm).info
    facts = QPUFacts(**{k: info[k] for k in QPU_FACTS})
    assert facts.mock is True and facts.mock_kind == "annealer" and facts.rounds == 0
    quiet = draw(s, rbm, verdict=False).info
    assert set(QPU_FACTS) - set(quiet) == {"energy_z", "fidelity_ok", "fidelity_p",
                                           "fidelity_worst"}
