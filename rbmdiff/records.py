"""The columns of a sampler run's record (docs/math.md §7) and the QPU route's facts it
carries, each with its pandas type, declared once: the record's fields
(:meth:`rbmdiff.metrics.SampleStats.record`), the report's table and the campaign's
columns derive from here.  No torch: the pipeline's tables read it without the models."""

from __future__ import annotations

RECORD: dict[str, str] = {  # every run
    "sampler": "string", "params": "string", "seed": "Int64", "num_samples": "Int64",
    "wall_s": "float64", "samples_per_s": "float64", "cost_units": "float64",
    "cost_unit": "string", "multiply_adds": "float64", "mean_abs_err": "float64",
    "corr_rmse": "float64", "mmd": "float64", "mean_free_energy": "float64",
    "test_log_likelihood": "float64", "tv_exact": "float64",
}

QPU_FACTS: dict[str, str] = {  # a QPU run's info keys its record keeps
    "chain_break_fraction": "float64", "beta_eff": "float64", "beta_eff_low": "float64",
    "beta_eff_high": "float64", "beta_model": "float64", "prefactor": "float64",
    "chain_strength": "float64", "clipped": "boolean", "target_reached": "boolean",
    "rounds": "Int64", "energy_z": "float64", "fidelity_ok": "boolean",
    "fidelity_p": "float64", "fidelity_worst": "string", "calibration_reused": "boolean",
    "postprocess_sweeps": "Int64", "qpu_access_time": "float64", "num_qubits": "Int64",
    "mock": "boolean", "mock_kind": "string",
}

TYPES: dict[str, str] = {**RECORD, **QPU_FACTS}
