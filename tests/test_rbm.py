from __future__ import annotations

import pytest
import torch

from rbmdiff import RBM, RbmdiffError
from rbmdiff.exact import binary_states


def test_free_energy_is_minus_log_sum_over_hidden(tiny_rbm):
    v = binary_states(6, dtype=torch.float64)
    h = binary_states(4, dtype=torch.float64)
    E = tiny_rbm.energy(v[:, None, :], h[None, :, :])  # (64, 16)
    torch.testing.assert_close(tiny_rbm.free_energy(v), -torch.logsumexp(-E, 1))


def test_hidden_free_energy_is_minus_log_sum_over_visible(tiny_rbm):
    v = binary_states(6, dtype=torch.float64)
    h = binary_states(4, dtype=torch.float64)
    E = tiny_rbm.energy(v[:, None, :], h[None, :, :])
    torch.testing.assert_close(tiny_rbm.hidden_free_energy(h), -torch.logsumexp(-E, 0))


def test_conditionals_match_enumerated_joint(tiny_rbm):
    """p(h_j = 1 | v) from the joint, by brute force, equals σ(c + Wᵀv)."""
    v = binary_states(6, dtype=torch.float64)[[5, 17, 42]]
    h = binary_states(4, dtype=torch.float64)
    p = torch.softmax(-tiny_rbm.energy(v[:, None, :], h[None]), 1)  # (3, 16)
    torch.testing.assert_close(p @ h, tiny_rbm.hidden_mean(v))


def test_gibbs_at_beta_keeps_shapes_binary(tiny_rbm):
    g = torch.Generator().manual_seed(0)
    v = tiny_rbm.gibbs(torch.zeros(5, 6, dtype=torch.float64), 3, beta=2.0, generator=g)
    assert v.shape == (5, 6) and set(v.unique().tolist()) <= {0.0, 1.0}


def test_gibbs_stream_is_deterministic_and_independent_of_the_block_size(monkeypatch, tiny_rbm):
    """Same seed, same samples; the uniforms are drawn in blocks of sweeps, and the block size
    (here 1 sweep instead of all 37) must not change the stream; another seed differs."""
    import rbmdiff.gibbs_kernels as kernels_module

    v0 = torch.zeros(200, 6, dtype=torch.float64)

    def run(seed: int) -> torch.Tensor:
        return tiny_rbm.gibbs(v0, 37, generator=torch.Generator().manual_seed(seed))

    first = run(5)
    torch.testing.assert_close(run(5), first, rtol=0, atol=0)
    monkeypatch.setattr(kernels_module, "GIBBS_BLOCK", 1)
    torch.testing.assert_close(run(5), first, rtol=0, atol=0)
    assert not torch.equal(run(6), first)
    assert torch.equal(tiny_rbm.gibbs(v0, 0), v0)


def test_save_load_round_trip_keeps_parameters_and_meta(tmp_path, tiny_rbm):
    tiny_rbm.meta = {"score": "posterior", "eps": 1e-3, "training": {"method": "dsm", "seed": 4}}
    path = tmp_path / "m.pt"
    tiny_rbm.save(path)
    back = RBM.load(path)
    for a, b in zip(back.parameters(), tiny_rbm.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert back.meta == tiny_rbm.meta
    assert not list(tmp_path.glob(".*tmp")), "temporary file left behind"


def test_meta_is_saved_json_safe(tmp_path, tiny_rbm):
    """Meta goes through rbmdiff.jsonsafe.plain, as JSON output does: NaN and inf become
    None, tensors and NumPy values numbers or lists, other objects their str."""
    import json

    import numpy as np

    from rbmdiff.jsonsafe import dumps

    tiny_rbm.meta = {"loss": float("nan"), "best": -float("inf"), "ok": 1.5,
                     "t": torch.tensor(2.0), "w": torch.tensor([1.0, float("nan")]),
                     "n": np.int64(3), "path": tmp_path, 4: (True, None)}
    want = {"loss": None, "best": None, "ok": 1.5, "t": 2.0, "w": [1.0, None], "n": 3,
            "path": str(tmp_path), "4": [True, None]}
    tiny_rbm.save(tmp_path / "m.pt")
    assert RBM.load(tmp_path / "m.pt").meta == want
    assert json.loads(dumps(tiny_rbm.meta)) == want


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty"),
        (b"not a model at all", "truncated or not an rbmdiff model"),
    ],
)
def test_load_refuses_foreign_files(tmp_path, content, message):
    path = tmp_path / "m.pt"
    path.write_bytes(content)
    with pytest.raises(RbmdiffError, match=message):
        RBM.load(path)


def test_load_refuses_truncated_and_foreign_torch_files(tmp_path, tiny_rbm):
    path = tmp_path / "m.pt"
    tiny_rbm.save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RbmdiffError, match="truncated"):
        RBM.load(path)
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(RbmdiffError, match="no rbmdiff header"):
        RBM.load(path)
    with pytest.raises(RbmdiffError, match="does not exist"):
        RBM.load(tmp_path / "missing.pt")


def test_constructor_rejects_bad_shapes_and_nan():
    with pytest.raises(RbmdiffError, match="shapes disagree"):
        RBM(torch.zeros(3, 2), torch.zeros(2), torch.zeros(2))
    with pytest.raises(RbmdiffError, match="NaN"):
        RBM(torch.full((3, 2), float("nan")), torch.zeros(3), torch.zeros(2))
