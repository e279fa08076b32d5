"""The compiled Gibbs kernel (rbmdiff.native): its exponential against double precision, its
draws against σ, its two implementations against each other, its law inside RBM.gibbs
against exact enumeration, and the fallback to torch when it cannot be built."""

from __future__ import annotations

import errno
import math
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from rbmdiff import RBM, RbmdiffError, native
from rbmdiff.exact import empirical_law, total_variation, visible_law
from tests.conftest import expected_tv


@pytest.fixture(scope="module")
def kern() -> native.Kernel:
    k = native.kernel()
    if k is None:
        pytest.skip("no C compiler here: the torch kernel is tested instead")
    return k


def test_a_machine_with_a_compiler_builds_the_kernel():
    """Otherwise every native test below would skip silently where CI has a compiler."""
    if not shutil.which(native._compiler()[0]):
        pytest.skip("no C compiler on PATH")
    built = native._build()  # builds and loads, whether or not this CPU gets to use it
    assert built.path.is_file() and built.state_words == 64
    if not built.fast:
        pytest.skip("x86 without AVX2+FMA: the torch kernel is used, by design")
    k = native.kernel()
    assert k is not None and k.path == built.path
    assert RBM.random(4, 3, seed=0).gibbs_kernel() == k.name + ("-fused" if k.simd else "")
    assert RBM.random(300, 200, seed=0).gibbs_kernel() == k.name  # too large to fuse
    assert RBM.random(4, 3, seed=0, dtype=torch.float64).gibbs_kernel() == "torch"


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
        pytest.skip("no C compiler here")
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


@pytest.fixture
def fresh_loader(monkeypatch, tmp_path):
    monkeypatch.setattr(native, "_loaded", {})
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("cc", ["false", "/nonexistent/cc"])
def test_without_a_working_compiler_gibbs_falls_back_to_torch(fresh_loader, monkeypatch, cc):
    monkeypatch.setenv("CC", cc)
    with pytest.warns(RuntimeWarning, match="compiled Gibbs kernel is unavailable"):
        assert native.kernel() is None
    rbm = RBM.random(8, 4, scale=1.0, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning: the outcome is remembered
        assert rbm.gibbs_kernel() == "torch"
    v = rbm.gibbs(torch.zeros(10, 8), 3, generator=torch.Generator().manual_seed(0))
    assert v.shape == (10, 8) and set(v.unique().tolist()) <= {0.0, 1.0}
    assert not any(fresh_loader.rglob("*.so"))


def test_a_truncated_cached_library_is_rebuilt(fresh_loader, kern):
    """A half-written file where the library should be (a copy cut short, never one this
    process has loaded) is replaced by a fresh build, not loaded or reported."""
    target = native.library_path(extra=native.VARIANTS[0] if kern.openmp else ())
    target.parent.mkdir(parents=True)
    target.write_bytes(kern.path.read_bytes()[:100])
    rebuilt = native.kernel()
    assert rebuilt is not None and rebuilt.path == target
    assert target.stat().st_size == kern.path.stat().st_size
    assert not list(fresh_loader.rglob("*.tmp"))


def test_a_read_only_cache_folder_builds_into_a_per_user_temp_folder(fresh_loader, monkeypatch,
                                                                     tmp_path_factory, kern):
    temp = tmp_path_factory.mktemp("temp")
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    load = native._load

    def read_only(path, extra):
        if fresh_loader in path.parents:
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return load(path, extra)

    monkeypatch.setattr(native, "_load", read_only)
    k = native.kernel()
    assert k is not None and k.path.parent.parent == temp and k.openmp == kern.openmp
    assert k.path.parent.name == f"rbmdiff-native-{os.getuid()}"
    assert k.path.parent.stat().st_mode & 0o077 == 0


def test_a_temp_folder_others_can_write_to_is_not_used(monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    planted = tmp_path / f"rbmdiff-native-{os.getuid()}"
    planted.mkdir(mode=0o777)
    planted.chmod(0o777)
    folder = native._private_temp_folder()
    assert folder != planted and folder.parent == tmp_path and folder.is_dir()
    assert native._private_temp_folder() != planted


def test_a_cpu_where_the_portable_c_is_slow_gets_the_torch_kernel(fresh_loader, monkeypatch):
    monkeypatch.setattr(native, "_build", lambda: SimpleNamespace(fast=False))
    with pytest.warns(RuntimeWarning, match="no AVX2"):
        assert native.kernel() is None
    assert RBM.random(4, 3, seed=0).gibbs_kernel() == "torch"


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


@pytest.mark.parametrize("portable", [False, True])
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
    monkeypatch.setattr(native, "SLICE_MULTIPLY_ADDS", 15 * 2 * N * 8 * 4)
    monkeypatch.setattr(native, "THREAD_MIN_MULTIPLY_ADDS", 0)
    runs = []
    for threads in (1, 3):
        monkeypatch.setattr(torch, "get_num_threads", lambda t=threads: t)
        runs.append(rbm.gibbs(torch.zeros(N, 8), 100, generator=torch.Generator().manual_seed(2)))
    assert torch.equal(runs[0], runs[1])
    _, p = visible_law(rbm64)
    tv = total_variation(empirical_law(runs[0]), p)
    assert tv <= expected_tv(p, N) + 0.008, (tv, expected_tv(p, N))
    monkeypatch.setattr(native, "SLICE_MULTIPLY_ADDS", 1 << 40)  # one call: another stream
    whole = rbm.gibbs(torch.zeros(N, 8), 100, generator=torch.Generator().manual_seed(2))
    assert not torch.equal(whole, runs[0])


def test_the_pthreads_build_sweeps_as_the_openmp_build_does(kern, fresh_loader):
    """Both ways of running the fused sweep's threads (OpenMP, first choice, and pthreads,
    where the compiler has no OpenMP) give the same chains, on 1 and 3 threads."""
    if not (kern.simd and kern.openmp):
        pytest.skip("needs AVX2 and the OpenMP build")
    plain = native._build_variant(())
    assert not plain.openmp and plain.path != kern.path
    rbm = RBM.random(13, 21, scale=1.0, seed=2)
    v0 = (torch.rand(300, 13, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    runs = []
    for k in (kern, plain):
        for threads in (1, 3):
            v = v0.clone()
            k.gibbs(v, rbm.W, rbm.b, rbm.c, 5, seed=17, threads=threads)
            runs.append(v)
    assert all(torch.equal(runs[0], r) for r in runs[1:])


def test_a_compiler_without_openmp_gets_the_pthreads_build(fresh_loader, monkeypatch):
    monkeypatch.setattr(native, "VARIANTS", (("-fno-such-flag-rbmdiff",), ()))
    k = native.kernel()
    if k is None:
        pytest.skip("no C compiler here")
    assert not k.openmp and k.path == native.library_path(extra=())


def _agreement_bound(bits: int) -> float:
    """Two independent fair bit strings of this length agree in 1/2 ± 6σ of places."""
    return 6 * 0.5 / math.sqrt(bits)


def test_neighbouring_seeds_draw_unrelated_words(kern):
    """With W = 0 and zero biases every unit is one fair coin from its chunk's stream.  Every
    chunk of 64 chains, of seeds 1, γ and 2γ apart (γ the splitmix increment) or one chunk
    constant apart (s ^ C, s ^ 2C), against every other chunk of them all, at every column
    shift, must give unrelated coins: chunk states seeded from seed ^ chunk·C made seed + γ
    replay seed's words two columns on, and seed ^ C's chunk 0 replay seed's chunk 1."""
    if not kern.simd:
        pytest.skip("this CPU has no AVX2+FMA: no fused sweep")
    B, n, m = 16 * native.CHUNK, 16, 16
    W, b, c = torch.zeros(n, m), torch.zeros(n), torch.zeros(m)
    s, gamma, C = 12345, 0x9E3779B97F4A7C15, 0xD1B54A32D192ED03
    chunks = []
    for seed in (s, s + 1, s + gamma, s + 2 * gamma, s ^ C, s ^ (2 * C)):
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
    """RBM.gibbs seeds its calls after the first by a hash of (seed, call): the last call of
    a run seeded s must not replay the first call of the run seeded s + 1 or s + γ."""
    if not kern.simd:
        pytest.skip("this CPU has no AVX2+FMA: no fused sweep")
    B, n, m = 128, 16, 16
    W, b, c = torch.zeros(n, m), torch.zeros(n), torch.zeros(m)
    monkeypatch.setattr(native, "SLICE_MULTIPLY_ADDS", 1)  # one sweep per call
    s = 777
    runs = {}
    for seed, sweeps in ((s, 2), (s, 3), (s + 1, 1), (s + 2, 1), (s + 0x9E3779B97F4A7C15, 1),
                         (s + 2 * 0x9E3779B97F4A7C15 - 2**64, 1)):
        v = torch.zeros(B, n)
        RBM._fused_gibbs(kern, v, W, b, c, sweeps, seed)
        runs[seed, sweeps] = v  # with W = 0 only the last call's coins are left
    items = list(runs.items())
    for i, (ka, x) in enumerate(items):
        for kb, y in items[i + 1:]:
            agree = float((x == y).float().mean())
            assert abs(agree - 0.5) <= _agreement_bound(x.numel()), (ka, kb, agree)


FORK_SCRIPT = """
import os, signal, sys, time, torch
from rbmdiff import RBM, native
mode = sys.argv[1]
k = native.kernel()
rbm = RBM.random(13, 21, scale=1.0, seed=4)
v0 = (torch.rand(512, 13, generator=torch.Generator().manual_seed(1)) < 0.5).float()
ours = v0.clone()
k.gibbs(ours, rbm.W, rbm.b, rbm.c, 20, seed=5, threads=2 if mode == "ours" else 1)
if mode == "torch":
    torch.set_num_threads(2)
    x = torch.rand(1000, 1000)
    (x @ x).sum()
pid = os.fork()
if pid == 0:
    if mode == "fresh":
        native.openmp_usable_after_fork()
    theirs = v0.clone()
    k.gibbs(theirs, rbm.W, rbm.b, rbm.c, 20, seed=5, threads=2)
    print("child", torch.equal(theirs, ours), k.threading.split()[0], flush=True)
    os._exit(0)
deadline = time.monotonic() + 30
while (status := os.waitpid(pid, os.WNOHANG)) == (0, 0):
    if time.monotonic() > deadline:
        os.kill(pid, signal.SIGKILL)
        print("child hung", flush=True)
        os.waitpid(pid, 0)
        break
    time.sleep(0.05)
else:
    print("exit", os.waitstatus_to_exitcode(status[1]), flush=True)
"""


@pytest.mark.parametrize("mode, threading", [("ours", "pthreads"), ("torch", "pthreads"),
                                             ("fresh", "openmp")])
def test_a_forked_child_sweeps_on_threads(kern, mode, threading):
    """GNU OpenMP's pool does not survive fork() once it has run, ours or torch's: a forked
    child must still finish (on pthreads) and give the parent's chains; a child whose parent
    computed nothing and says so (the warm stage server) keeps OpenMP's threads."""
    if not (kern.simd and hasattr(os, "fork")):
        pytest.skip("needs the fused sweep and fork()")
    proc = subprocess.Popen([sys.executable, "-c", FORK_SCRIPT, mode], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)  # the script and a hung child alike
        out, err = proc.communicate()
    expected = ["child", "True", threading if kern.openmp else "pthreads", "exit", "0"]
    assert proc.returncode == 0 and out.split() == expected, (out, err)


def test_the_openmp_build_maps_no_runtime_of_its_own(kern):
    """The OpenMP build binds to the runtime torch loaded, not to another one (in a fresh
    process: other libraries, scikit-learn's wheel say, bring runtimes of their own)."""
    if not kern.openmp:
        pytest.skip("the pthreads build is in use")
    if not native.RUNTIMES_AT_IMPORT:
        pytest.skip("torch brought no OpenMP runtime: any one is the only one")
    script = ("import os, torch; from rbmdiff import native; before = native.openmp_runtimes(); "
              "k = native.kernel(); print(k.openmp, native.openmp_runtimes() == before, "
              "os.path.realpath(k.openmp_runtime) in before)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.split() == ["True", "True", "True"], (out.stdout, out.stderr)


def test_an_openmp_build_bound_to_another_runtime_is_not_used(fresh_loader, monkeypatch):
    """Where the OpenMP build binds a runtime that was not in the process with torch (clang's
    libomp beside torch's libgomp, say), the pthreads build is used instead, and it says why."""
    if not shutil.which(native._compiler()[0]):
        pytest.skip("no C compiler on PATH")
    openmp_build = native._build_variant(native.VARIANTS[0])
    if not openmp_build.openmp:
        pytest.skip("this compiler has no OpenMP: nothing to refuse")
    monkeypatch.setattr(native, "RUNTIMES_AT_IMPORT", frozenset({"/torch/lib/libgomp.so.1"}))
    k = native._build()
    assert not k.openmp and "not /torch/lib/libgomp.so.1" in k.threading, k.threading
    monkeypatch.setattr(native, "RUNTIMES_AT_IMPORT",
                        frozenset({os.path.realpath(openmp_build.openmp_runtime)}))
    assert native._build().openmp  # its own runtime was there before: kept


def test_a_library_that_builds_but_does_not_load_is_not_rebuilt(kern, fresh_loader,
                                                                monkeypatch):
    """Its reason is kept beside it: the next process raises with it, compiling nothing, until
    the file loads (then the mark goes)."""
    compiled = []

    def compile_(target, extra):
        compiled.append(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"\x7fELF but not a library")

    monkeypatch.setattr(native, "_compile", compile_)
    target = native.library_path(extra=("-fopenmp",))
    with pytest.raises(RuntimeError, match="does not load"):
        native._load(target, ("-fopenmp",))
    assert compiled == [target]
    with pytest.raises(RuntimeError, match=r"delete .*unusable to compile it again"):
        native._load(target, ("-fopenmp",))
    assert compiled == [target]
    target.write_bytes(kern.path.read_bytes())  # it loads now (say a library was installed)
    assert native._load(target, ("-fopenmp",)).path == target
    assert compiled == [target] and not target.with_suffix(".unusable").exists()


def test_a_compiler_that_times_out_is_not_asked_again(fresh_loader, monkeypatch):
    calls = []

    def hangs(extra):
        calls.append(extra)
        raise subprocess.TimeoutExpired(["cc"], native.COMPILE_TIMEOUT_S)

    monkeypatch.setattr(native, "_build_variant", hangs)
    with pytest.warns(RuntimeWarning, match="compiled Gibbs kernel is unavailable"):
        assert native.kernel() is None
    assert calls == [native.VARIANTS[0]]
