"""Tracked outputs are a function of the run's inputs: a sampler's timings, random solver ids
and absolute paths stay out of them."""

from __future__ import annotations

from pathlib import Path

from flows.artefacts import tracked_info


def test_tracked_info_drops_timings_and_ids_and_relativises_paths(tmp_path) -> None:
    info = {"sampler": "qpu", "seed": 5, "wall_s": 101.4, "samples_per_s": 19.7,
            "timing": {"qpu_sampling_time": 574.6}, "problem_ids": ["6e6b19dc-f2aa"],
            "embedding_method": "cache", "qpu_access_time": 59851.96,
            "calibration_reused": True, "reused_calls": 3,
            "embedding_path": str(tmp_path / "models" / "embedding" / "k.json"),
            "elsewhere": "/opt/cache/k.json", "relative": "models/embedding/k.json"}
    kept, volatile = tracked_info(info, tmp_path)
    assert set(volatile) == {"wall_s", "samples_per_s", "timing", "problem_ids",
                             "embedding_method", "calibration_reused", "reused_calls"}
    assert kept == {"sampler": "qpu", "seed": 5, "qpu_access_time": 59851.96,
                    "embedding_path": "models/embedding/k.json", "elsewhere": "k.json",
                    "relative": "models/embedding/k.json"}
    assert tracked_info(info, Path(str(tmp_path) + "/."))[0] == kept
