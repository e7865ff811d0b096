"""GEMM kernels (Y = act(X W^T + b) + R) of every kernel level against the reference level.

The reference level (csrc/kernels/ref/gemm_ref.cpp) is the specification; it is itself checked
against float64 numpy/torch. Sizes are chosen around each level's register tile (MR rows x NR
outputs, from testing.gemm_tile) and its K blocking, so every edge path of the packed kernels
runs: partial tiles in M and N, K not a multiple of the vector width, several K blocks,
several row / column blocks, and every thread split.

Tolerances come from an error model, not from trial and error. With u = 2^-24 and
A = |X| |W|^T + |b| (float64), an fp32 dot product of K terms plus the bias, in any order and
with or without FMA, is within (K + 1) u A of the exact value (Higham, Accuracy and Stability
of Numerical Algorithms, 3.1). Two such results (ours and the reference) differ by at most
twice that; an activation with slope <= L carries the difference through multiplied by L and
adds its own rounding; the residual add rounds once more. See `tolerance`.
"""
import math

import numpy as np
import pytest

from pyvitcpp import _testing as testing
from pyvitcpp import perf

U = 2.0**-24
LEVELS = ["ref", "avx2", "avx512"]
ACTS = {0: "none", 1: "gelu_erf", 2: "gelu_tanh", 3: "quick_gelu", 4: "tanh", 5: "relu", 6: "relu6",
        8: "leaky_relu", 10: "leaky_relu_0.1", 11: "mish", 12: "sigmoid"}
# Largest |act'(z)|: GELU (erf and tanh forms) peaks at 1.129, QuickGELU at 1.100.
ACT_SLOPE = {0: 1.0, 1: 1.13, 2: 1.13, 3: 1.10, 4: 1.0, 5: 1.0, 6: 1.0, 8: 1.0, 10: 1.0, 11: 1.1, 12: 1.0}
# Rounding allowed to one activation implementation, relative to |z| + |act(z)|: 2^-20 is 16
# ulps, room for a vectorised erf/tanh/exp (the reference uses libm, within an ulp or two).
ACT_REL = 2.0**-20


def level_or_skip(isa):
    ok, missing = testing.isa_supported(isa)
    if not ok:
        pytest.skip(f"this CPU/OS lacks {missing}, needed by the {isa} level")
    return isa


@pytest.fixture(params=LEVELS)
def level(request):
    return level_or_skip(request.param)


def tolerance(X, W, bias, act, residual, y_ref, c=2.0):
    """Bound on |y - y_ref| for two fp32 evaluations of the same GEMM (c = 2: both err)."""
    K = X.shape[1]
    A = np.abs(X.astype(np.float64)) @ np.abs(W.astype(np.float64)).T
    z = X.astype(np.float64) @ W.astype(np.float64).T
    if bias is not None:
        A += np.abs(bias.astype(np.float64))
        z += bias.astype(np.float64)
    tol = c * (K + 1) * U * A * ACT_SLOPE[act]
    yabs = np.abs(y_ref.astype(np.float64))
    if act != 0:
        tol += c * ACT_REL * (np.abs(z) + yabs)
    if residual is not None:
        tol += c * U * (yabs + np.abs(residual.astype(np.float64)))
    return tol + 1e-30


def run(isa, X, W, bias=None, act=0, residual=None, inplace=False, nth=1, ldy=0):
    return testing.gemm(isa, X, W, bias, act, residual, inplace, nth, ldy=ldy)


def check_against_ref(isa, X, W, bias=None, act=0, residual=None, inplace=False, nth=1, ldy=0):
    y = run(isa, X, W, bias, act, residual, inplace, nth, ldy)
    y_ref = run("ref", X, W, bias, act, residual, False, 1)
    assert y.shape == y_ref.shape and y.dtype == np.float32
    assert np.all(np.isfinite(y)), "non-finite output (unwritten NaN sentinel or overflow)"
    err = np.abs(y.astype(np.float64) - y_ref.astype(np.float64))
    tol = tolerance(X, W, bias, act, residual, y_ref)
    bad = err > tol
    if bad.any():
        i, j = np.argwhere(bad)[0]
        pytest.fail(
            f"{isa} M,N,K={X.shape[0]},{W.shape[0]},{X.shape[1]} act={ACTS[act]} w={W.dtype} "
            f"nth={nth}: {bad.sum()} outputs off, first at ({i},{j}): got {y[i, j]!r}, "
            f"ref {y_ref[i, j]!r}, |diff| {err[i, j]:.3g} > tol {tol[i, j]:.3g}"
        )
    return y


def make(rng, M, N, K, wdtype, scale=1.0):
    X = (rng.standard_normal((M, K)) * scale).astype(np.float32)
    W = (rng.standard_normal((N, K)) / math.sqrt(K)).astype(wdtype)
    b = rng.standard_normal(N).astype(np.float32)
    r = rng.standard_normal((M, N)).astype(np.float32)
    return X, W, b, r


def edge_sizes(isa):
    mr, nr = testing.gemm_tile(isa)
    Ms = sorted({1, 2, max(1, mr - 1), mr, mr + 1, 13, 197})
    Ns = sorted({1, 7, max(1, nr - 1), nr, nr + 1, 33, 100})
    return Ms, Ns


KS = [1, 3, 8, 17, 64, 257, 768]
WDTYPES = [np.float32, np.float16]


@pytest.mark.parametrize("wdtype", WDTYPES, ids=["f32", "f16"])
def test_tile_edges(level, wdtype):
    """Every (M, N) pair around the tile; K, act, bias, residual mode and nth rotate with it."""
    rng = np.random.default_rng(1)
    Ms, Ns = edge_sizes(level)
    case = 0
    for i, M in enumerate(Ms):
        for j, N in enumerate(Ns):
            K = KS[(i + 2 * j) % len(KS)]
            if M * N * K > 2_000_000:  # keep the scalar reference quick
                K = 64
            X, W, b, r = make(rng, M, N, K, wdtype)
            act = case % 6
            mode = (case // 2) % 3  # none / separate / in place
            nth = [1, 2, 3, 7][case % 4]
            check_against_ref(level, X, W, b if case % 5 else None, act,
                              None if mode == 0 else r, mode == 2, nth)
            case += 1


@pytest.mark.parametrize("wdtype", WDTYPES, ids=["f32", "f16"])
@pytest.mark.parametrize("K", KS + [255, 256, 513, 1000])
def test_k_sizes(level, wdtype, K):
    """K around the vector width and the K block (several blocks => partial sums in scratch)."""
    rng = np.random.default_rng(K)
    mr, nr = testing.gemm_tile(level)
    for M, N in [(mr + 1, nr + 1), (1, 2 * nr + 3)]:
        X, W, b, r = make(rng, M, N, K, wdtype)
        check_against_ref(level, X, W, b, 0, r, False, 2)


@pytest.mark.parametrize("wdtype", WDTYPES, ids=["f32", "f16"])
@pytest.mark.parametrize("act", sorted(ACTS), ids=[ACTS[a] for a in sorted(ACTS)])
def test_epilogue(level, wdtype, act):
    """Every activation x bias x residual (none / separate / aliasing Y) with several K blocks."""
    rng = np.random.default_rng(100 + act)
    X, W, b, r = make(rng, 13, 33, 300, wdtype)
    for bias in (None, b):
        for mode in range(3):
            check_against_ref(level, X, W, bias, act, None if mode == 0 else r, mode == 2, 3)


@pytest.mark.parametrize("wdtype", WDTYPES, ids=["f32", "f16"])
def test_multiple_blocks(level, wdtype):
    """M, N and K each past one cache block (rows, panel groups, K blocks) of both levels."""
    rng = np.random.default_rng(7)
    X, W, b, r = make(rng, 301, 600, 520, wdtype)
    check_against_ref(level, X, W, b, 1, r, True, 2)


@pytest.mark.parametrize("K", [200, 300])
def test_row_blocks(level, K):
    """Rows around the row-block sizes (avx2: 96, or up to 204 when K is one K block; avx512:
    144), each thread's rows cut into balanced blocks: every row is computed once, right."""
    rng = np.random.default_rng(K)
    for i, M in enumerate([95, 96, 97, 143, 145, 197, 204, 205, 289, 409, 613]):
        X, W, b, r = make(rng, M, 40, K, np.float32)
        check_against_ref(level, X, W, b, i % 3, r, False, [1, 2, 3][i % 3])


@pytest.mark.parametrize("wdtype", WDTYPES, ids=["f32", "f16"])
def test_thread_splits_are_bitwise_identical(level, wdtype):
    """Each output's summation order does not depend on the split: all nth give equal bits,
    and together the threads write every output exactly once (NaN sentinel elsewhere)."""
    rng = np.random.default_rng(3)
    for M, N, K in [(197, 100, 300), (1, 1000, 64), (40, 7, 17), (2, 2304, 32)]:
        X, W, b, r = make(rng, M, N, K, wdtype)
        y1 = check_against_ref(level, X, W, b, 2, r, False, 1)
        for nth in [2, 3, 7, 16, 64]:
            y = run(level, X, W, b, 2, r, False, nth)
            assert np.array_equal(y, y1), f"nth={nth} differs from nth=1 at M,N,K={M},{N},{K}"


@pytest.mark.parametrize("wdtype", WDTYPES, ids=["f32", "f16"])
def test_strides(level, wdtype):
    """Row strides ldx > K, ldr > N, ldy > N: padding of Y stays untouched."""
    rng = np.random.default_rng(5)
    M, N, K = 19, 37, 70
    Xw = rng.standard_normal((M, K + 9)).astype(np.float32)
    X = Xw[:, 3:3 + K]  # ldx = K + 9, unaligned start
    W = (rng.standard_normal((N, K)) / math.sqrt(K)).astype(wdtype)
    b = rng.standard_normal(N).astype(np.float32)
    Rw = rng.standard_normal((M, N + 5)).astype(np.float32)
    R = Rw[:, 1:1 + N]  # ldr = N + 5
    assert X.strides[0] == (K + 9) * 4 and R.strides[0] == (N + 5) * 4
    for act, mode, nth in [(0, 1, 1), (3, 1, 2), (1, 2, 3), (5, 0, 7)]:
        ldy = N + 11
        y = check_against_ref(level, X, W, b, act, None if mode == 0 else R, mode == 2, nth, ldy)
        full = y.base
        assert full is not None and full.shape == (M, ldy)
        assert np.all(np.isnan(full[:, N:])), "the kernel wrote past N into the row padding"


@pytest.mark.parametrize("wdtype", WDTYPES, ids=["f32", "f16"])
def test_special_values(level, wdtype):
    rng = np.random.default_rng(11)
    mr, nr = testing.gemm_tile(level)
    M, N, K = mr + 3, nr + 5, 77
    X, W, b, r = make(rng, M, N, K, wdtype)
    # zeros: the sum is exactly 0, so Y = act(b) + r; exact for the piecewise-linear
    # activations, within the SIMD activations' stated rounding (ACT_REL) for the others
    Z = np.zeros_like(X)
    for act in ACTS:
        y = check_against_ref(level, Z, W, b, act, r, False, 2)
        y_ref = run("ref", Z, W, b, act, r)
        if act in (0, 5, 6, 8, 10) or level == "ref":
            assert np.array_equal(y, y_ref)
        else:
            np.testing.assert_allclose(y, y_ref, rtol=0, atol=4 * ACT_REL * (np.abs(y_ref).max() + 1))
    zero_w = np.zeros_like(W)
    y = run(level, X, zero_w, None, 0, None)
    assert np.array_equal(y, np.zeros((M, N), np.float32))
    # large magnitudes: |x| ~ 1e4 (sums ~1e5..1e6), activations in their saturated ranges
    big = (rng.standard_normal((M, K)) * 1e4).astype(np.float32)
    for act in ACTS:
        check_against_ref(level, big, W, b * 1e4, act, r, True, 3)
    # all negative inputs and weights: sums strictly negative (relu -> 0, tanh -> -1)
    negX = -np.abs(X)
    negW = (-np.abs(W.astype(np.float32))).astype(wdtype)
    for act in ACTS:
        check_against_ref(level, negX, negW, -np.abs(b), act, None, False, 1)


@pytest.mark.parametrize("wdtype", WDTYPES, ids=["f32", "f16"])
def test_relu_epilogue_nan_and_clamp(level, wdtype):
    """ReLU / ReLU6 run in the SIMD epilogue's registers: a NaN sum stays NaN (as in ref and
    act_apply), and ReLU6 clamps at 6 exactly, on full and partial tiles."""
    rng = np.random.default_rng(12)
    mr, nr = testing.gemm_tile(level)
    M, N, K = 2 * mr + 1, nr + 3, 40
    X, W, b, r = make(rng, M, N, K, wdtype, scale=20.0)
    X[1, 7] = np.nan
    for act in (5, 6):
        y = run(level, X, W, b, act, r)
        y_ref = run("ref", X, W, b, act, r)
        assert np.isnan(y[1]).all() and not np.isnan(np.delete(y, 1, axis=0)).any()
        ok = ~np.isnan(y_ref)
        np.testing.assert_allclose(y[ok], y_ref[ok], rtol=1e-5, atol=1e-3)
        z = run(level, X, W, b, act, None)
        assert np.nanmin(z) == 0.0 and (act == 5 or np.nanmax(z) == 6.0)


def act_f64(z, act):
    import torch
    t = torch.from_numpy(z)
    if act == 0:
        return z
    if act == 1:
        return torch.nn.functional.gelu(t).numpy()
    if act == 2:
        return torch.nn.functional.gelu(t, approximate="tanh").numpy()
    if act == 3:
        return (t * torch.sigmoid(1.702 * t)).numpy()
    if act == 4:
        return torch.tanh(t).numpy()
    if act == 6:
        return torch.nn.functional.relu6(t).numpy()
    if act in (8, 10):
        return torch.nn.functional.leaky_relu(t, 0.01 if act == 8 else float(np.float32(0.1))).numpy()
    if act == 11:
        return torch.nn.functional.mish(t).numpy()
    if act == 12:
        return torch.sigmoid(t).numpy()
    return torch.relu(t).numpy()


@pytest.mark.parametrize("act", sorted(ACTS), ids=[ACTS[a] for a in sorted(ACTS)])
@pytest.mark.parametrize("wdtype", WDTYPES, ids=["f32", "f16"])
def test_ref_against_float64(act, wdtype):
    """The specification itself: ref vs float64 within ONE fp32 evaluation's error (c = 1)."""
    rng = np.random.default_rng(21)
    for M, N, K in [(5, 9, 1), (7, 13, 300), (3, 4, 1000)]:
        X, W, b, r = make(rng, M, N, K, wdtype)
        y_ref = run("ref", X, W, b, act, r)
        z = X.astype(np.float64) @ W.astype(np.float64).T + b
        y64 = act_f64(z, act) + r
        tol = tolerance(X, W, b, act, r, y_ref, c=1.0)
        err = np.abs(y_ref - y64)
        assert np.all(err <= tol), f"ref off by {err.max():.3g} (tol {tol.ravel()[np.argmax(err)]:.3g})"


def test_tolerance_is_tight():
    """The bound is far below the size of the outputs and catches a one-term mistake: a
    result that drops the last k term, or doubles the bias, must be rejected."""
    rng = np.random.default_rng(9)
    M, N, K = 16, 48, 768
    X, W, b, r = make(rng, M, N, K, np.float32)
    y_ref = run("ref", X, W, b, 0, r)
    tol = tolerance(X, W, b, 0, r, y_ref)
    # worst case 2 (K+1) u A: ~0.2% of a typical output at K = 768 (unit-variance X, W ~ 1/sqrt(K))
    assert np.median(tol) < 3e-3 * np.median(np.abs(y_ref))
    X_drop = X.copy()
    X_drop[:, -1] = 0
    y_drop = run("ref", X_drop, W, b, 0, r)
    assert (np.abs(y_drop - y_ref) > tol).mean() > 0.5
    y_bias2 = y_ref + b
    assert (np.abs(y_bias2 - y_ref) > tol).mean() > 0.9
    # one ulp-scale perturbation is within the bound (it is not vacuous the other way)
    assert np.all(np.abs(np.nextafter(y_ref, np.inf) - y_ref) <= tol)


def test_unpacked_weight_falls_back(level):
    """W_packed = null (a caller that did not pack) must still give the right answer."""
    rng = np.random.default_rng(13)
    for wdtype in WDTYPES:
        X, W, b, r = make(rng, 9, 40, 33, wdtype)
        y = testing.gemm(level, X, W, b, 3, r, True, 2, packed_w=False)
        y_ref = run("ref", X, W, b, 3, r)
        assert np.all(np.abs(y - y_ref) <= tolerance(X, W, b, 3, r, y_ref))


def test_invalid_arguments(level):
    X = np.ones((3, 4), np.float32)
    W = np.ones((5, 4), np.float32)
    with pytest.raises(ValueError):
        run(level, X.astype(np.float64), W)
    with pytest.raises(ValueError):
        run(level, X, W.astype(np.int32))
    with pytest.raises(ValueError):
        run(level, X, np.ones((5, 3), np.float32))
    with pytest.raises(ValueError):
        run(level, X[0], W)
    with pytest.raises(ValueError):
        run(level, X, W, bias=np.ones(4, np.float32))
    with pytest.raises(ValueError):
        run(level, X, W, residual=np.ones((3, 4), np.float32))
    with pytest.raises(ValueError):
        run(level, X, W, act=99)
    with pytest.raises(ValueError):
        run(level, X, W, nth=0)
    with pytest.raises(ValueError):
        run(level, X, W, inplace=True)
    with pytest.raises(ValueError):
        run(level, X, W, ldy=3)
    with pytest.raises(ValueError):
        run(level, np.ones((0, 4), np.float32), W)
    with pytest.raises(ValueError):
        perf.gemm_bench(level, 8, 8, 8, "q4", 1, 0.01)
    with pytest.raises(ValueError):
        testing.isa_supported("sse9")


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_measure_hooks(isa):
    level_or_skip(isa)
    peak = perf.fma_peak(isa, 1, min_seconds=0.05)
    assert peak > 1.0
    for wt in ["f32", "f16"]:
        g = perf.gemm_bench(isa, 40, 70, 90, wt, 2, 0.02)
        assert 0.1 < g < 10 * peak * 2  # positive and physically possible for 2 threads
    g = perf.gemm_bench(isa, 40, 70, 96, "q8_0", 1, 0.02)  # the quantized GEMM alone
    assert 0.1 < g < 20 * peak  # int8 products may beat the FP32 FMA peak, not by 20x
    with pytest.raises(ValueError, match="multiple of 32"):
        perf.gemm_bench(isa, 4, 4, 90, "q8_0", 1, 0.01)
    try:
        fpc = perf.gemm_bench(isa, 40, 70, 96, "f32", 1, 0.02, per_cycle=True)
    except RuntimeError as e:  # perf_event_open refused (perf_event_paranoid, containers)
        assert "cycle counter" in str(e)
    else:
        assert 0.05 < fpc < 200  # flop per cycle of one core: positive, below any x86 core's peak
        # the register-only FMA loop: 2 FMA pipes x 8 or 16 lanes x 2 flop bound it from above
        assert 1.0 < perf.fma_peak(isa, 1, min_seconds=0.05, per_cycle=True) <= 2 * 2 * 16 * 1.05
    with pytest.raises(RuntimeError, match="threads=1"):
        perf.gemm_bench(isa, 40, 70, 96, "f32", 2, 0.02, per_cycle=True)


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_int8_peak(isa):
    """The int8 dot-product loop (avx512 vpdpbusd, avx2 vpmaddubsw) that the quantized GEMM is
    judged by: positive, bounded per cycle, and not beaten by the GEMM built on it."""
    level_or_skip(isa)
    peak = perf.int8_peak(isa, 1, min_seconds=0.05)
    assert peak > 1.0
    # the GEMM cannot beat the instruction it runs on (x3: the two are timed apart on a shared machine)
    assert perf.gemm_bench(isa, 48, 64, 256, "q8_0", 1, 0.05) < 3 * peak
    try:
        opc = perf.int8_peak(isa, 1, min_seconds=0.05, per_cycle=True)
    except RuntimeError as e:  # perf_event_open refused (perf_event_paranoid, containers)
        assert "cycle counter" in str(e)
    else:
        # at most 2 instructions per cycle x 64 products (a zmm vpdpbusd) x 2 ops
        assert 1.0 < opc <= 2 * 64 * 2 * 1.05
    with pytest.raises(RuntimeError, match="threads=1"):
        perf.int8_peak(isa, 2, 0.02, per_cycle=True)
    # per CPU second of the thread: the core's rate while it ran, never below the wall-clock one
    # by much (x0.7: the two runs are apart) and bounded by a 6 GHz core's 2 x 128 ops per cycle
    cpu = perf.int8_peak(isa, 1, 0.05, cpu_time=True)
    assert 0.7 * peak < cpu < 6e9 * 2 * 128 * 1e-9
    g = perf.gemm_bench(isa, 48, 64, 256, "q8_0", 1, 0.05, cpu_time=True)
    assert 0.1 < g < 3 * cpu
    assert 0.1 < perf.fma_peak(isa, 1, 0.05, cpu_time=True) < cpu
    with pytest.raises(RuntimeError, match="cpu_time needs threads=1"):
        perf.gemm_bench(isa, 8, 8, 32, "q8_0", 2, 0.01, cpu_time=True)
    with pytest.raises(ValueError, match="exclude each other"):
        perf.int8_peak(isa, 1, 0.01, per_cycle=True, cpu_time=True)


def test_int8_peak_bad_arguments():
    with pytest.raises(ValueError, match="SIMD level"):
        perf.int8_peak("ref")
    with pytest.raises(ValueError):
        perf.int8_peak("sse9")
    with pytest.raises(ValueError, match="threads"):
        perf.int8_peak("avx2", threads=0)


@pytest.mark.parametrize("isa", LEVELS)
@pytest.mark.parametrize("shape", [(2, 5, 3), (13, 37, 70), (50, 33, 129), (7, 256, 64)])
def test_relu_out_after_residual(isa, shape):
    """relu_out (ResNet's ReLU after the shortcut) is max(0, .) of exactly the result without it,
    with a separate or in-place residual, an activation before the residual, F32 and F16
    weights, any thread split; a NaN passes through as max(0, NaN) does in ReLU."""
    level_or_skip(isa)
    M, N, K = shape
    g = np.random.default_rng(M * 1000 + N + K)
    X = g.standard_normal((M, K)).astype(np.float32)
    bias = g.standard_normal(N).astype(np.float32)
    res = g.standard_normal((M, N)).astype(np.float32)
    X[0, 0] = np.nan  # row 0 becomes NaN throughout
    for W in (g.standard_normal((N, K)).astype(np.float32), g.standard_normal((N, K)).astype(np.float16)):
        for act in (0, 5, 7):
            for inplace in (False, True):
                plain = testing.gemm(isa, X, W, bias, act, res, inplace, 1)
                assert (plain < 0).any()
                for nth in (1, 3):
                    got = testing.gemm(isa, X, W, bias, act, res, inplace, nth, relu_out=True)
                    want = np.where(plain < 0, np.float32(0), plain)
                    np.testing.assert_array_equal(got, want, err_msg=f"{isa} {shape} act={act} inplace={inplace}")


@pytest.mark.parametrize("isa", ["avx512"])
def test_narrow_gemm_direct_same_bits_as_packed(isa):
    """On the avx512 level an F32 GEMM with at most four panels of outputs runs as a 1x1 direct conv
    over X's rows (linear_direct_ok in kernels/conv_direct_driver.h): each output is the packed GEMM's FMA
    chain over k in order with the same epilogue, so it must give the packed GEMM's bits exactly
    (direct=False forces the packed GEMM), at tile edges, K blocks, row strides, in-place and
    separate residuals, activations, relu_out and every thread split; and stay within the error
    model of the reference."""
    level_or_skip(isa)
    mr, nr = testing.gemm_tile(isa)
    rng = np.random.default_rng(29)
    shapes = [(1, 1, 8), (mr - 1, nr - 1, 24), (mr + 1, nr + 1, 64), (37, 2 * nr + 3, 100), (200, 4 * nr, 72),
              (301, 3 * nr + 5, 512), (97, 4 * nr - 1, 257), (64, 4 * nr + 1, 96), (45, 16, 1024)]
    for i, (M, N, K) in enumerate(shapes):
        strided = i % 3 == 2
        Xw = rng.standard_normal((M, K + (5 if strided else 0))).astype(np.float32)
        X = Xw[:, 2:2 + K] if strided else Xw  # ldx = K + 5: pixels off the channel count
        W = (rng.standard_normal((N, K)) / math.sqrt(K)).astype(np.float32)
        b = rng.standard_normal(N).astype(np.float32)
        r = rng.standard_normal((M, N)).astype(np.float32)
        act = [0, 5, 1, 6, 11][i % 5]
        mode = i % 3  # none / separate / in place
        relu_out = i % 2 == 1
        res = None if mode == 0 else r
        packed = testing.gemm(isa, X, W, b, act, res, mode == 2, 1, relu_out=relu_out, direct=False)
        if not relu_out:
            check_against_ref(isa, X, W, b, act, res, mode == 2, 1)
        for nth in (1, 2, 3, 7):
            y = testing.gemm(isa, X, W, b, act, res, mode == 2, nth, relu_out=relu_out, direct=True)
            assert np.array_equal(y, packed, equal_nan=True), (
                f"{isa} M,N,K={M},{N},{K} nth={nth} act={ACTS[act]}: direct differs from the packed GEMM "
                f"(max |diff| {np.nanmax(np.abs(y - packed)):.3g})")
