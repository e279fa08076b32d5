"""The compiled Gibbs kernel (rbmdiff.native) and the seam that picks it
(rbmdiff.gibbs_kernels): its exponential against double precision, its draws against σ, its
two implementations against each other, every kernel's law inside RBM.gibbs against exact
enumeration, the library built at install time, and the fallback to torch without it."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from rbmdiff import RBM, RbmdiffError, gibbs_kernels, native
from rbmdiff.exact import empirical_law, total_variation, visible_law
from tests.conftest import expected_tv


@pytest.fixture(scope="module")
def kern() -> native.Kernel:
    k = native.kernel()
    if k is None:
        pytest.skip("installed without the compiled kernel: the torch kernel is tested instead")
    return k


# .ci/run installs a second environment with RBMDIFF_BUILD_NATIVE=0 and runs these tests there
BUILT = os.environ.get("RBMDIFF_BUILD_NATIVE", "1").strip() != "0"
SAMPLE_SCRIPT = """
import json, os, warnings
from rbmdiff import RBM, samplers
warnings.simplefilter("ignore")
infos = []
for native in ("1", "0"):  # the installed kernel, then the run-time switch off
    os.environ["RBMDIFF_NATIVE"] = native
    info = samplers.get("gibbs", num_sweeps=5).sample(RBM.random(64, 16, seed=0), 200, seed=1).info
    infos.append({k: v for k, v in info.items() if k.startswith("kernel")})
print(json.dumps(infos))
"""


@pytest.mark.slow
def test_the_installed_kernel_samples_with_no_compiler_on_path():
    """The library is built by ``pip install``: a process whose PATH holds no compiler (or
    anything else) still samples with it, and with torch once RBMDIFF_NATIVE=0.  Installed
    with RBMDIFF_BUILD_NATIVE=0, there is no library and the process samples with torch."""
    import json

    out = subprocess.run([sys.executable, "-c", SAMPLE_SCRIPT], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "PATH": ""})
    assert out.returncode == 0, out.stderr[-2000:]
    installed, switched_off = json.loads(out.stdout)
    assert switched_off == {"kernel": "torch", "kernel_stream": "numpy-pcg64",
                            "kernel_threads": 1}
    if not BUILT:
        assert native.library_path() is None and installed == switched_off, installed
        return
    assert native.library_path() is not None, "pip install built no library"
    kern = native.kernel()
    assert kern is not None
    want = kern.name + ("-fused" if kern.simd else "")
    assert installed["kernel"] == want, installed
    assert installed["kernel_stream"].startswith("xoshiro128+"), installed
    assert installed["kernel_threads"] == 1  # the gibbs sampler's default


def test_without_the_library_gibbs_warns_once_and_samples_with_torch(monkeypatch):
    monkeypatch.setattr(native, "library_path", lambda: None)
    native._load.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="compiled Gibbs kernel is unavailable"):
            assert native.kernel() is None
        rbm = RBM.random(8, 4, scale=1.0, seed=0)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no second warning: the outcome is remembered
            assert rbm.gibbs_kernel() == "torch"
            v = rbm.gibbs(torch.zeros(10, 8), 3, generator=torch.Generator().manual_seed(0))
        assert v.shape == (10, 8) and set(v.unique().tolist()) <= {0.0, 1.0}
    finally:
        native._load.cache_clear()


def test_the_seam_picks_each_kernel_by_dtype_and_device(kern):
    assert RBM.random(4, 3, seed=0).gibbs_kernel() == kern.name + ("-fused" if kern.simd else "")
    assert RBM.random(300, 200, seed=0).gibbs_kernel() == kern.name  # too large to fuse
    assert RBM.random(4, 3, seed=0, dtype=torch.float64).gibbs_kernel() == "torch"
    meta = torch.zeros(4, 3, device="meta")  # any tensor not on the CPU: the device kernel
    assert gibbs_kernels.select(meta).name == "torch-device"
    assert gibbs_kernels.select(meta.double()).name == "torch-device"


def test_exp_neg_paths_agree_bit_for_bit(kern):
    if not kern.simd:
        pytest.skip("this CPU has no AVX2+FMA: only the portable path exists")
    bits = np.random.default_rng(0).integers(0, 2**32, 1 << 20, dtype=np.uint64)
    x = np.concatenate([bits.astype(np.uint32).view(np.float32), SPECIAL, SNAN])
    a, b = kern.exp_neg(x), kern.exp_neg(x, portable=True)
    assert np.array_equal(a.view(np.uint32), b.view(np.uint32))


def test_the_rule_at_its_boundary_with_planted_random_words(kern):
    """With s3 = 0 a lane's first output is s0, so the words k are chosen: at x = 0,
    e^{-x} = 1 exactly and the unit is 1 iff 2k < 2^24, k = (s0 >> 8) | 1; at x ≥ 87 every
    k gives 1; at x ≤ −88 every k gives 0; NaN counts as −88."""
    for portable in (False, True):
        for x0, words, want in ((0.0, (2**23 - 1) << 8, 1.0), (0.0, (2**23 + 1) << 8, 0.0),
                                (0.0, 0, 1.0), (0.0, 2**32 - 1, 0.0),
                                (87.0, 2**32 - 1, 1.0), (1e30, 2**32 - 1, 1.0),
                                (-88.0, 0, 0.0), (float("nan"), 0, 0.0)):
            state = np.zeros(kern.state_words, np.uint32).reshape(4, -1)
            state[0], state[1] = words, 1  # s0 = the word, s1 ≠ 0 keeps the lane alive
            x = torch.full((16,), x0)
            kern.bernoulli_(x, state.reshape(-1), portable=portable)
            assert torch.all(x == want), (portable, x0, words)


@pytest.mark.parametrize("portable", [False, True])
def test_exp_neg_is_within_two_ulp_of_double_precision(kern, portable):
    x = np.concatenate([np.linspace(-88, 87, 400_001), np.float32([0, -0.0, 1e-30, -1e-30])])
    got = kern.exp_neg(x.astype(np.float32), portable=portable).astype(np.float64)
    want = np.exp(-x.astype(np.float32).astype(np.float64))
    assert np.max(np.abs(got / want - 1)) < 2.4e-7  # float32 ulp 1.19e-7
    # beyond the clamp: e^{-x} of the clamped x, finite
    far = kern.exp_neg(np.float32([-1e4, -200, 200, 1e4]), portable=portable)
    np.testing.assert_allclose(far, np.exp([88, 88, -87, -87]), rtol=3e-7)


SPECIAL = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-40, -1e-40, 1e4, -1e4,
                    87.0, 87.5, -88.0, -88.5, 16.6, -17.3], dtype=np.float32)
SNAN = np.array([0x7FA00000, 0xFFA00001], dtype=np.uint32).view(np.float32)  # signalling


def test_simd_and_portable_paths_draw_bit_identical_units(kern):
    """Normal logits, every kind of tail, and NaN (quiet and signalling), ±inf, ±0,
    subnormals and the clamp's edges."""
    if not kern.simd:
        pytest.skip("this CPU has no AVX2+FMA: only the portable path exists")
    g = torch.Generator().manual_seed(0)
    state_a = kern.seed_state(7)
    state_b = state_a.copy()
    special = torch.from_numpy(np.concatenate([SPECIAL, SNAN]))
    for count in (1, 15, 16, 17, 33, 1000, 4099):  # tails of every kind
        x = 4 * torch.randn(count, generator=g)
        x[: len(special)] = special[:count]
        a, b = x.clone(), x.clone()
        kern.bernoulli_(a, state_a)
        kern.bernoulli_(b, state_b, portable=True)
        assert torch.equal(a, b), count
        assert np.array_equal(state_a, state_b), count


def test_draws_have_mean_sigma_and_no_lane_correlation(kern):
    """200,000 draws per logit: |mean − σ(x)| ≤ 5 sd (sd = √(σ(1−σ)/N)); saturated logits
    give exact 0s and 1s (P(1 | x = −30) ≈ 9e-14).  At x = 0, neighbouring units (other
    lanes) and units 16 apart (the same lane, next output) are uncorrelated to within 5 sd."""
    logits = torch.tensor([-30.0, -4.5, -3.0, -0.4, 0.0, 0.25, 1.5, 6.0, 30.0])
    N = 200_000
    x = logits.repeat(N)  # unit i has logit i mod 9: spread over every lane
    kern.bernoulli_(x, kern.seed_state(1))
    means = x.view(N, -1).double().mean(0)
    p = torch.sigmoid(logits.double())
    assert set(x.unique().tolist()) == {0.0, 1.0}
    assert torch.all((means - p).abs() <= 5 * torch.sqrt(p * (1 - p) / N) + 1e-12), means - p
    assert means[0] == 0 and means[-1] == 1

    z = torch.zeros(1 << 20)
    kern.bernoulli_(z, kern.seed_state(2))
    s = (2 * z.double() - 1)
    for lag in (1, 8, 16, 32):
        corr = float((s[:-lag] * s[lag:]).mean())
        assert abs(corr) <= 5 / math.sqrt(len(s)), (lag, corr)


def test_the_state_advances_and_seeds_give_distinct_streams(kern):
    state = kern.seed_state(3)
    first, second = torch.zeros(64), torch.zeros(64)
    kern.bernoulli_(first, state)
    kern.bernoulli_(second, state)
    assert not torch.equal(first, second)
    again = torch.zeros(64)
    kern.bernoulli_(again, kern.seed_state(3))
    assert torch.equal(first, again)
    other = torch.zeros(64)
    kern.bernoulli_(other, kern.seed_state(4))
    assert not torch.equal(first, other)
    with pytest.raises(ValueError, match="contiguous float32"):
        kern.bernoulli_(torch.zeros(4, 4).T, state)
    with pytest.raises(ValueError, match="uint32"):
        kern.bernoulli_(torch.zeros(4), state[:10])


@pytest.mark.parametrize("portable", [False, True])
@pytest.mark.parametrize("shape", [(37, 23), (5, 16), (3, 7), (1, 1)])
def test_a_bias_added_in_the_pass_is_the_same_as_added_before(kern, portable, shape):
    """Rows wrap inside a 16-unit block when the row length is no multiple of 16."""
    g = torch.Generator().manual_seed(1)
    x = 3 * torch.randn(shape, generator=g)
    for bias in (torch.randn(shape[-1], generator=g), torch.randn(shape, generator=g)):
        state = kern.seed_state(11)
        fused, added = x.clone(), x + bias
        kern.bernoulli_(fused, state.copy(), bias, portable=portable)
        kern.bernoulli_(added, state.copy(), portable=portable)
        assert torch.equal(fused, added)
    with pytest.raises(ValueError, match="bias of shape"):
        kern.bernoulli_(x.clone(), kern.seed_state(0), torch.zeros(shape[-1] + 1))


def test_float32_gibbs_with_a_field_per_row_matches_each_rows_law(gibbs_kernel):
    """Half the chains clamped to field u1, half to u2 (a (B, n) field): each half samples
    its own shifted law (20,000 chains each: E TV ≤ 0.04, sd ≈ 0.0015)."""
    rbm64 = RBM.random(8, 4, scale=1.0, seed=0, dtype=torch.float64)
    u1, u2 = torch.linspace(-1.5, 1.5, 8), torch.linspace(1.0, -2.0, 8)
    N = 20_000
    field = torch.cat([u1.expand(N, 8), u2.expand(N, 8)])
    v = rbm64.to(torch.float32).gibbs(torch.zeros(2 * N, 8), 100, field=field,
                                      generator=torch.Generator().manual_seed(3))
    for rows, u in ((v[:N], u1), (v[N:], u2)):
        _, p = visible_law(RBM(rbm64.W, rbm64.b + u.double(), rbm64.c))
        assert total_variation(empirical_law(rows), p) <= expected_tv(p, N) + 0.008


@pytest.fixture(params=["native-avx2-fused", "native", "torch"])
def gibbs_kernel(request, monkeypatch):
    """Each of RBM.gibbs's kernels: whole sweeps fused (AVX2 only), mm + the compiled pass
    (forced by a fusing limit of 0), and torch."""
    if request.param == "torch":
        monkeypatch.setenv("RBMDIFF_NATIVE", "0")
        return "torch"
    kern = native.kernel()
    if kern is None:
        pytest.skip("installed without the compiled kernel")
    if request.param == "native":
        monkeypatch.setattr(native, "FUSED_MAX_WEIGHTS", 0)
        return kern.name
    if not kern.simd:
        pytest.skip("this CPU has no AVX2+FMA: no fused sweep")
    return request.param


@pytest.mark.parametrize("beta", [1.0, 2.0])
def test_float32_gibbs_matches_the_exact_law(gibbs_kernel, beta):
    """50,000 chains of an 8×4 float32 RBM, 200 sweeps, against enumeration of its 256
    states: E TV(p̂, p) ≤ ½ √(2/(πN)) Σ√p_i ≤ 0.0286, ≈ 0.015–0.02 for these laws (sd
    ≈ 0.001); a kernel off by a per cent in σ fails the second bound."""
    rbm64 = RBM.random(8, 4, scale=1.0, seed=0, dtype=torch.float64)
    rbm = rbm64.to(torch.float32)
    assert rbm.gibbs_kernel() == gibbs_kernel
    N = 50_000
    _, p = visible_law(RBM(beta * rbm64.W, beta * rbm64.b, beta * rbm64.c))
    g = torch.Generator().manual_seed(5)
    v = rbm.gibbs(torch.zeros(N, 8), 200, beta=beta, generator=g)
    tv = total_variation(empirical_law(v), p)
    assert tv <= 0.03 and tv <= expected_tv(p, N) + 0.006, (tv, expected_tv(p, N))


def test_the_device_kernel_matches_the_exact_law():
    """The accelerator's kernel, run here on CPU tensors with a CPU generator: 50,000 chains of
    an 8×4 float32 RBM, 200 sweeps, against enumeration (the bounds of the test above)."""
    rbm64 = RBM.random(8, 4, scale=1.0, seed=0, dtype=torch.float64)
    rbm = rbm64.to(torch.float32)
    _, p = visible_law(rbm64)
    v = torch.zeros(50_000, 8)
    gibbs_kernels.DeviceKernel()(v, rbm.W, rbm.b, rbm.c, 200, seed=3)
    tv = total_variation(empirical_law(v), p)
    assert tv <= 0.03 and tv <= expected_tv(p, 50_000) + 0.006, (tv, expected_tv(p, 50_000))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gibbs_on_cuda_draws_on_the_device_and_matches_the_exact_law():
    rbm64 = RBM.random(8, 4, scale=1.0, seed=0, dtype=torch.float64)
    from rbmdiff.device import to_device

    rbm = to_device(rbm64.to(torch.float32), torch.device("cuda"))
    assert rbm.gibbs_kernel() == "torch-device"
    g = torch.Generator(device="cuda").manual_seed(5)
    v = rbm.gibbs(torch.zeros(50_000, 8), 200, generator=g)
    assert v.device.type == "cuda"
    _, p = visible_law(rbm64)
    tv = total_variation(empirical_law(v.cpu()), p)
    assert tv <= 0.03 and tv <= expected_tv(p, 50_000) + 0.006, (tv, expected_tv(p, 50_000))


def test_every_kernel_samples_the_exact_marginals_and_pair_moments(gibbs_kernel):
    """A 6×3 float32 RBM, 20,000 chains from the all-zero state, 50 sweeps: each E[v_i] and
    E[v_i v_j] within 5σ of its value under the enumerated law (σ = √(q(1−q)/N), independent
    chains; 21 moments, so a false alarm has probability < 1e-5)."""
    rbm64 = RBM.random(6, 3, scale=1.2, seed=7, dtype=torch.float64)
    states, p = visible_law(rbm64)
    q = states.T @ (p[:, None] * states)  # exact E[v_i v_j]; its diagonal is E[v_i]
    N = 20_000
    v = rbm64.to(torch.float32).gibbs(torch.zeros(N, 6), 50,
                                      generator=torch.Generator().manual_seed(11)).double()
    q_hat = v.T @ v / N
    sigma = torch.sqrt(q * (1 - q) / N)
    assert torch.all((q_hat - q).abs() <= 5 * sigma + 1e-12), ((q_hat - q) / sigma)


def test_gibbs_on_no_chains_returns_no_chains(gibbs_kernel):
    rbm = RBM.random(6, 4, seed=0)
    assert rbm.gibbs(torch.zeros(0, 6), 5).shape == (0, 6)


def test_float32_gibbs_is_deterministic_per_generator_state(gibbs_kernel):
    rbm = RBM.random(12, 5, scale=1.0, seed=1)
    v0 = torch.zeros(300, 12)
    a = rbm.gibbs(v0, 7, generator=torch.Generator().manual_seed(9))
    b = rbm.gibbs(v0, 7, generator=torch.Generator().manual_seed(9))
    c = rbm.gibbs(v0, 7, generator=torch.Generator().manual_seed(10))
    assert torch.equal(a, b) and not torch.equal(a, c)
    # a non-contiguous start is copied, not rejected
    assert torch.equal(rbm.gibbs(torch.zeros(12, 300).T, 7,
                                 generator=torch.Generator().manual_seed(9)), a)


def test_a_field_with_neither_one_row_nor_one_per_chain_is_refused(gibbs_kernel):
    rbm = RBM.random(6, 4, seed=0)
    with pytest.raises(RbmdiffError, match="field has 3 rows for 5 chains"):
        rbm.gibbs(torch.zeros(5, 6), 2, field=torch.zeros(3, 6))


@pytest.mark.parametrize("n, m", [(8, 4), (13, 21), (64, 16), (5, 40), (1, 1)])
def test_fused_sweeps_match_the_portable_c_bit_for_bit(kern, n, m):
    """The AVX2 sweep against the plain C one: 16- and 8-column tiles, padded layers, chain
    counts that fill no block of 4 or chunk of 64, a field per chain; the same result on 1,
    2 or 3 threads (the streams belong to chunks of chains, not to threads; 400 chains give
    each thread several chunks); and nothing written past the last chain."""
    if not kern.simd:
        pytest.skip("this CPU has no AVX2+FMA: only the portable path exists")
    g = torch.Generator().manual_seed(n * m)
    W, c = torch.randn(n, m, generator=g), torch.randn(m, generator=g)
    for B in (1, 3, 70, 130, 400):
        v0 = (torch.rand(B, n, generator=g) < 0.5).float()
        for b in (torch.randn(n, generator=g), torch.randn(B, n, generator=g)):
            runs = []
            for threads, portable in ((1, False), (2, False), (3, False), (1, True)):
                big = torch.full((B + 5, n), 7.0)
                big[:B] = v0
                kern.gibbs(big[:B], W, b, c, 3, seed=2**64 - 5, threads=threads,
                           portable=portable)
                assert torch.all(big[B:] == 7.0), (B, threads, portable)
                runs.append(big[:B])
            assert set(runs[0].unique().tolist()) <= {0.0, 1.0}
            assert all(torch.equal(runs[0], r) for r in runs[1:]), (B, b.shape)


@pytest.mark.parametrize("portable", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_fused_sweeps_match_the_exact_law_with_both_tile_widths(kern, portable):
    """10 visible × 17 hidden units: the hidden layer is a 16-column tile and an 8-column
    one, the visible layer one 16-column tile with 6 padded columns.  20,000 chains from
    the all-zero state, 60 sweeps, against enumeration of the 1,024 visible states."""
    rbm64 = RBM.random(10, 17, scale=0.6, seed=4, dtype=torch.float64)
    rbm = rbm64.to(torch.float32)
    _, p = visible_law(rbm64)
    N = 20_000
    v = torch.zeros(N, 10)
    kern.gibbs(v, rbm.W, rbm.b, rbm.c, 60, seed=12, portable=portable)
    tv = total_variation(empirical_law(v), p)
    assert tv <= expected_tv(p, N) + 0.01, (tv, expected_tv(p, N))


@pytest.mark.parametrize("n, m", [(8, 4), (13, 21)])
def test_fused_chains_are_independent(kern, n, m):
    """Chains share a block of 4, a chunk of 64 and a generator state: from one start, chains
    i and i + lag must still be uncorrelated, unit by unit (|r| ≤ 5/√N), with 8-column tiles
    only (8×4) and with 16-column tiles (13×21)."""
    if not kern.simd:
        pytest.skip("this CPU has no AVX2+FMA: no fused sweep")
    rbm = RBM.random(n, m, scale=0.5, seed=0)
    N = 256 * 64
    v = torch.zeros(N, n)
    kern.gibbs(v, rbm.W, rbm.b, rbm.c, 20, seed=3)
    x = v.double()
    for lag in (1, 2, 4, 64, 128):
        a, b = x[:-lag] - x[:-lag].mean(0), x[lag:] - x[lag:].mean(0)
        r = (a * b).mean(0) / (a.std(0) * b.std(0))
        assert r.abs().max() <= 5 / math.sqrt(N - lag), (lag, r)


def test_fused_sweeps_refuse_what_they_cannot_take(kern):
    v = torch.zeros(3, 4)
    W, b, c = torch.zeros(4, 2), torch.zeros(4), torch.zeros(2)
    with pytest.raises(ValueError, match="contiguous float32"):
        kern.gibbs(v.double(), W, b, c, 1, seed=0)
    with pytest.raises(ValueError, match="contiguous float32"):
        kern.gibbs(v, W, torch.zeros(2, 4), c, 1, seed=0)
    with pytest.raises(ValueError, match="contiguous float32"):
        kern.gibbs(v, torch.tensor(0.0), b, c, 1, seed=0)
    with pytest.raises(ValueError, match="seed"):
        kern.gibbs(v, W, b, c, 1, seed=-1)
    with pytest.raises(TypeError):
        kern.gibbs(v, W, b, c, 1, seed=0.5)
    kern.gibbs(v, W, b, c, 0, seed=0)
    assert torch.equal(v, torch.zeros(3, 4))


def test_fused_gibbs_in_slices_and_threads_keeps_the_law(monkeypatch):
    """RBM.gibbs cuts a long fused run into calls (here 7, of 15 sweeps) and may spread each
    over threads: the result depends on neither the thread count nor anything but the seed,
    and the law is still the 8×4 RBM's (as in the exact-law test above)."""
    kern = native.kernel()
    if kern is None or not kern.simd:
        pytest.skip("no fused sweep on this machine")
    rbm64 = RBM.random(8, 4, scale=1.0, seed=0, dtype=torch.float64)
    rbm = rbm64.to(torch.float32)
    N = 20_000
    monkeypatch.setattr(gibbs_kernels, "SLICE_MULTIPLY_ADDS", 15 * 2 * N * 8 * 4)
    monkeypatch.setattr(gibbs_kernels, "THREAD_MIN_MULTIPLY_ADDS", 0)
    runs = []
    for threads in (1, 3):
        monkeypatch.setattr(torch, "get_num_threads", lambda t=threads: t)
        runs.append(rbm.gibbs(torch.zeros(N, 8), 100, generator=torch.Generator().manual_seed(2)))
    assert torch.equal(runs[0], runs[1])
    _, p = visible_law(rbm64)
    tv = total_variation(empirical_law(runs[0]), p)
    assert tv <= expected_tv(p, N) + 0.008, (tv, expected_tv(p, N))
    monkeypatch.setattr(gibbs_kernels, "SLICE_MULTIPLY_ADDS", 1 << 40)  # one call: another stream
    whole = rbm.gibbs(torch.zeros(N, 8), 100, generator=torch.Generator().manual_seed(2))
    assert not torch.equal(whole, runs[0])


def _agreement_bound(bits: int) -> float:
    """Two independent fair bit strings of this length agree in 1/2 ± 6σ of places."""
    return 6 * 0.5 / math.sqrt(bits)


def test_neighbouring_seeds_draw_unrelated_words(kern):
    """With W = 0 and zero biases every unit is one fair coin from its chunk's stream.  Every
    chunk of 64 chains, of seeds 1, 2, 2^32 and 2^63 apart, against every other chunk of them
    all, at every column shift, must give unrelated coins: no chunk replays another's words."""
    if not kern.simd:
        pytest.skip("this CPU has no AVX2+FMA: no fused sweep")
    B, n, m = 16 * native.CHUNK, 16, 16
    W, b, c = torch.zeros(n, m), torch.zeros(n), torch.zeros(m)
    s = 12345
    chunks = []
    for seed in (s, s + 1, s + 2, s + 2**32, s + 2**63):
        v = torch.zeros(B, n)
        kern.gibbs(v, W, b, c, 1, seed=seed % 2**64)
        chunks.append(v.view(-1, native.CHUNK, n))
    x = 2 * torch.cat(chunks).double() - 1  # (96 chunks, 64 chains, n): ±1
    for d in range(-8, 9):
        left = x[:, :, max(d, 0):n + min(d, 0)].flatten(1)
        right = x[:, :, max(-d, 0):n - max(d, 0)].flatten(1)
        agree = (left @ right.T / left.shape[1] + 1) / 2  # chunk i's bits against chunk j's
        if d == 0:
            agree.fill_diagonal_(0.5)  # a chunk against itself
        worst = float((agree - 0.5).abs().max())
        assert worst <= _agreement_bound(left.shape[1]), (d, worst)


def test_sliced_runs_from_neighbouring_seeds_draw_unrelated_words(kern, monkeypatch):
    """The fused kernel seeds call i > 0 by seeds.derive(seed, i): the last call of a run
    seeded s must not replay the first call of the run seeded s + 1 or s + 2."""
    if not kern.simd:
        pytest.skip("this CPU has no AVX2+FMA: no fused sweep")
    B, n, m = 128, 16, 16
    W, b, c = torch.zeros(n, m), torch.zeros(n), torch.zeros(m)
    monkeypatch.setattr(gibbs_kernels, "SLICE_MULTIPLY_ADDS", 1)  # one sweep per call
    s = 777
    runs = {}
    for seed, sweeps in ((s, 2), (s, 3), (s + 1, 1), (s + 2, 1), (s + 2**32, 1)):
        v = torch.zeros(B, n)
        gibbs_kernels.FusedKernel(kern)(v, W, b, c, sweeps, seed)
        runs[seed, sweeps] = v  # with W = 0 only the last call's coins are left
    items = list(runs.items())
    for i, (ka, x) in enumerate(items):
        for kb, y in items[i + 1:]:
            agree = float((x == y).float().mean())
            assert abs(agree - 0.5) <= _agreement_bound(x.numel()), (ka, kb, agree)
