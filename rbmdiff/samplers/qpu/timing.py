"""QPU access time of one solver call: D-Wave's published timing model.

    T_access = T_programming + R · (T_anneal + T_readout(q) + T_delay)
    T_programming = typical_programming_time + programming_thermalization
    log10 T_readout(q) = piecewise linear in log10 q   (``readout_time_model`` 'pwl_log_log')

with R reads, q the qubits the embedded problem uses, and every constant from the solver's
``problem_timing_data`` (dwave-cloud-client's ``StructuredSolver.estimate_qpu_access_time``;
D-Wave's "Operation and Timing" guide).  A solver without the data (MockDWaveSampler) gets the
Advantage system's data that dwave-cloud-client publishes with its test mocks.  The campaign's
estimates and the mocks' reported timing both come from here, so a mock's report means what a
QPU's would.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

PUBLISHED = "published Advantage timing data (no solver data)"


def timing_data(properties: dict) -> tuple[dict, str]:
    """The solver's ``problem_timing_data``, else the published Advantage data.
    -> (data, source)."""
    data = properties.get("problem_timing_data")
    if data:
        return dict(data), "solver problem_timing_data"
    from dwave.cloud.testing.mocks import qpu_problem_timing_data

    return qpu_problem_timing_data("advantage"), PUBLISHED


def readout_us(data: dict, num_qubits: int) -> float:
    """T_readout(q): 10^(piecewise linear interpolation of log10 q) (µs per read)."""
    if data.get("readout_time_model", "pwl_log_log") != "pwl_log_log":
        raise ValueError(f"unsupported readout_time_model {data['readout_time_model']!r}")
    params = data["readout_time_model_parameters"]
    half = len(params) // 2
    return float(10 ** np.interp(math.log10(max(num_qubits, 1)), params[:half], params[half:]))


def call_timing(data: dict, *, num_qubits: int, num_reads: int,
                annealing_time: float | None = None) -> dict[str, float]:
    """One call's timing in the solver's ``info["timing"]`` fields (µs), by the model above."""
    anneal = float(annealing_time if annealing_time is not None
                   else data["default_annealing_time"])
    readout = readout_us(data, num_qubits)
    delay = float(data["qpu_delay_time_per_sample"])
    programming = float(data["typical_programming_time"]) + float(
        data["default_programming_thermalization"])
    sampling = num_reads * (anneal + readout + delay)
    return {"qpu_access_time": programming + sampling, "qpu_programming_time": programming,
            "qpu_sampling_time": sampling, "qpu_anneal_time_per_sample": anneal,
            "qpu_readout_time_per_sample": readout, "qpu_delay_time_per_sample": delay}


def call_estimate_us(data: dict, *, num_qubits: int, num_reads: int,
                     annealing_time: float | None = None) -> float:
    """T_access of one call (µs)."""
    return call_timing(data, num_qubits=num_qubits, num_reads=num_reads,
                       annealing_time=annealing_time)["qpu_access_time"]


def max_reads_within(data: dict, cap_us: float, *, num_qubits: int,
                     annealing_time: float | None = None) -> int:
    """The most reads one call may take so that its T_access ≤ ``cap_us`` (0: not even one)."""
    one = call_timing(data, num_qubits=num_qubits, num_reads=1, annealing_time=annealing_time)
    per_read = one["qpu_sampling_time"]
    return max(int((cap_us - one["qpu_programming_time"]) // per_read), 0)


def reported_access_us(sampleset: Any) -> float:
    """The QPU access time a solver reported for one call (µs); NaN when it reported none."""
    value = sampleset.info.get("timing", {}).get("qpu_access_time", math.nan)
    return float(value) if isinstance(value, int | float) else math.nan
