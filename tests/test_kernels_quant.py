"""Block-quantized GEMM (kernels/quant_gemm.h): every type, every kernel level against the ref
twin at awkward sizes, and the ref against the exact product with the dequantized weights
within the activation-rounding bound stated in quant_gemm.h."""
from __future__ import annotations

import numpy as np
import pytest

from pyvitcpp import _core
from pyvitcpp import _testing as T
from conftest import isa_or_skip

TYPES = ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1"]
LEVELS = ["avx2", "avx512"]
U = 2.0 ** -24

# (M, N, K): M, N odd primes and tile edges (avx512 tiles 6 rows x 32 columns, avx2 2 x 16);
# K = 32 (one block), 64, 96, 512 (16 blocks), 544 (17), 800 (25).
SIZES = [(1, 1, 32), (3, 17, 64), (4, 32, 32), (5, 33, 96), (13, 47, 800), (37, 16, 64), (2, 97, 96),
         (6, 31, 512), (7, 65, 544)]


def _data(M, N, K, name, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((M, K)).astype(np.float32)
    X[:, ::7] *= 4.0  # uneven magnitudes within blocks
    W = (rng.standard_normal((N, K)) * 0.05).astype(np.float32)
    Wq = _core.quantize(W, name)
    return X, Wq, _core.dequantize(Wq, name)


def _offsets(Wq, name, N, K):
    """Per-weight |m| of its block (0 for types without an offset), for the error scale."""
    if not name.endswith("_1"):
        return np.zeros((N, K), np.float32)
    ts = {"q4_1": 20, "q5_1": 24}[name]
    m = Wq.reshape(N, K // 32, ts)[:, :, 2:4].copy().view(np.float16).astype(np.float32)[..., 0]
    return np.repeat(np.abs(m), 32, axis=1)


def _accum_scale(X, Wq, Wd, name):
    """Sum over k of |x_k| (|w_k| + 2|m_k|): bounds every partial sum the f32 accumulation sees."""
    N, K = Wd.shape
    return (np.abs(X).astype(np.float64) * 1.01) @ (np.abs(Wd) + 2 * _offsets(Wq, name, N, K)).T.astype(np.float64)


@pytest.mark.parametrize("qmax", [127, 64])
@pytest.mark.parametrize("name", TYPES)
@pytest.mark.parametrize("M,N,K", SIZES)
def test_ref_vs_dequantized_gemm(name, M, N, K, qmax):
    X, Wq, Wd = _data(M, N, K, name, seed=M * 1000 + N + K)
    bias = np.linspace(-1, 1, N).astype(np.float32)
    y = T.qgemm("ref", X, Wq, name, bias, act_qmax=qmax)
    exact = X.astype(np.float64) @ Wd.T.astype(np.float64) + bias
    # activation rounding: |x - dx q| <= dx / 2 with dx = amax_block / qmax
    nb = K // 32
    amax = np.abs(X.reshape(M, nb, 32)).max(axis=2)                      # [M, nb]
    wabs = np.abs(Wd).reshape(N, nb, 32).sum(axis=2)                      # [N, nb]
    bound = (amax / (2.0 * qmax)) @ wabs.T + 4 * (nb + 2) * U * _accum_scale(X, Wq, Wd, name) + 4 * U * np.abs(exact)
    err = np.abs(y - exact)
    assert np.all(err <= bound), f"max err/bound {np.max(err / bound):.3f}"
    # the bound is not vacuous: typical errors are well inside it
    assert np.median(err / bound) < 0.5


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("name", TYPES)
@pytest.mark.parametrize("M,N,K", SIZES)
def test_level_vs_ref(level, name, M, N, K):
    isa_or_skip(level)
    X, Wq, Wd = _data(M, N, K, name, seed=M + 7 * N + K)
    rng = np.random.default_rng(1)
    bias = rng.standard_normal(N).astype(np.float32)
    res = rng.standard_normal((M, N)).astype(np.float32)
    # the ref twin quantizes the activations as the level does (qgemm_act_qmax)
    want = T.qgemm("ref", X, Wq, name, bias, 0, res, act_qmax=T.qgemm_act_qmax(level, name))
    got = T.qgemm(level, X, Wq, name, bias, 0, res)
    nb = K // 32
    # the levels differ from ref only by one fused rounding per block in the f32 sums
    bound = 2 * (nb + 2) * U * (_accum_scale(X, Wq, Wd, name) + np.abs(bias) + np.abs(res)) + 1e-30
    err = np.abs(got - want)
    assert np.all(err <= bound), f"{level} {name}: max err/bound {np.max(err / bound):.3f}"


@pytest.mark.parametrize("level", ["ref"] + LEVELS)
@pytest.mark.parametrize("name", ["q8_0", "q4_1"])
def test_thread_splits_give_identical_bits(level, name):
    isa_or_skip(level)
    for M in (1, 2, 9, 41):  # few rows: columns are split; many: rows are
        X, Wq, _ = _data(M, 70, 96, name, seed=M)
        one = T.qgemm(level, X, Wq, name, nth=1)
        for nth in (2, 3, 7):
            np.testing.assert_array_equal(T.qgemm(level, X, Wq, name, nth=nth), one)


@pytest.mark.parametrize("level", ["ref"] + LEVELS)
@pytest.mark.parametrize("act", [1, 2, 3, 4, 5])
def test_epilogue_activation_and_inplace_residual(level, act):
    isa_or_skip(level)
    M, N, K = 11, 37, 64
    X, Wq, _ = _data(M, N, K, "q5_0", seed=act)
    rng = np.random.default_rng(act)
    bias = rng.standard_normal(N).astype(np.float32)
    res = rng.standard_normal((M, N)).astype(np.float32)
    lin = T.qgemm(level, X, Wq, "q5_0", bias)
    import torch
    f = {1: lambda t: torch.nn.functional.gelu(t), 2: lambda t: torch.nn.functional.gelu(t, approximate="tanh"),
         3: lambda t: t * torch.sigmoid(1.702 * t), 4: torch.tanh, 5: torch.relu}[act]
    want = f(torch.from_numpy(lin.astype(np.float64))).numpy() + res
    got = T.qgemm(level, X, Wq, "q5_0", bias, act, res, residual_inplace=True)
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("level", ["ref"] + LEVELS)
def test_special_values(level):
    isa_or_skip(level)
    M, N, K = 5, 19, 96
    X, Wq, _ = _data(M, N, K, "q8_0", seed=3)
    bias = np.arange(N, dtype=np.float32)
    X[0] = 0.0                      # zero row: the bias exactly
    X[1, 40] = np.nan               # NaN in one block: that row is NaN
    X[2, 5] = np.inf                # Inf: NaN too (scale inf, code * 0)
    X[3, :32] = 1e30                # huge but finite: finite results of that size
    for name in TYPES:
        Wq = _core.quantize(_data(M, N, K, name, 3)[2], name)
        y = T.qgemm(level, X, Wq, name, bias)
        np.testing.assert_array_equal(y[0], bias)
        assert np.all(np.isnan(y[1])) and np.all(np.isnan(y[2]))
        assert np.all(np.isfinite(y[3])) and np.all(np.isfinite(y[4]))


@pytest.mark.parametrize("level", LEVELS)
def test_block_scales_spread_over_decades(level):
    """Every block of a row has its own scale, spread over 1e-3..1e3 in a shuffled order: a
    quantizer that paired a block with another's scale (a vectorised one that reduced several
    blocks at once with a wrong lane order failed this) would round codes on the wrong grid,
    far beyond the bound."""
    isa_or_skip(level)
    M, N, K = 9, 33, 800
    X, Wq, Wd = _data(M, N, K, "q8_0", seed=11)
    rng = np.random.default_rng(5)
    scale = 10.0 ** rng.permuted(np.tile(np.linspace(-3, 3, K // 32), (M, 1)), axis=1)
    X = (X.reshape(M, K // 32, 32) * scale[:, :, None].astype(np.float32)).reshape(M, K)
    for name in TYPES:
        Wq = _core.quantize(_data(M, N, K, name, 12)[2], name)
        Wd = _core.dequantize(Wq, name)
        want = T.qgemm("ref", X, Wq, name, act_qmax=T.qgemm_act_qmax(level, name))
        got = T.qgemm(level, X, Wq, name)
        bound = 2 * (K // 32 + 2) * U * _accum_scale(X, Wq, Wd, name) + 1e-30
        assert np.all(np.abs(got - want) <= bound), f"{level} {name}"


@pytest.mark.parametrize("level", ["ref"] + LEVELS)
def test_special_values_in_every_block_position(level):
    """NaN, Inf, a zero block and huge blocks at block positions 3 to 16 of a 17-block row: each
    poisons its own row only (NaN everywhere), the others stay finite and match ref."""
    isa_or_skip(level)
    M, N, K = 7, 19, 544
    X, _, _ = _data(M, N, K, "q8_0", seed=4)
    bias = np.arange(N, dtype=np.float32)
    X[0, 32 * 7 + 9] = np.nan       # group
    X[1, 32 * 16 + 1] = np.nan      # rest
    X[2, 32 * 3] = -np.inf          # group
    X[3, 32 * 16 + 31] = np.inf     # rest
    X[4, 32 * 5:32 * 6] = 0.0       # a zero block in the group
    X[5, 32 * 15:32 * 17] = 1e30    # huge blocks, last of the group and the rest
    for name in TYPES:
        Wq = _core.quantize(_data(M, N, K, name, 3)[2], name)
        y = T.qgemm(level, X, Wq, name, bias)
        assert np.all(np.isnan(y[:4])), name
        assert np.all(np.isfinite(y[4:])), name
        if level != "ref":
            want = T.qgemm("ref", X[4:], Wq, name, bias, act_qmax=T.qgemm_act_qmax(level, name))
            Wd = _core.dequantize(Wq, name)
            bound = 2 * (K // 32 + 2) * U * (_accum_scale(X[4:], Wq, Wd, name) + np.abs(bias)) + 1e-30
            assert np.all(np.abs(y[4:] - want) <= bound), name


@pytest.mark.parametrize("level", LEVELS)
def test_q8_0_extreme_codes_do_not_saturate(level):
    """The largest integer products a level meets: Q8_0 codes -128 (which ggml's quantizer never
    writes but a file may hold), -127 and 127 against activations at +-qmax in every position.
    A saturating int16 step (vpmaddubsw) would show as a mismatch with the ref twin."""
    isa_or_skip(level)
    qmax = T.qgemm_act_qmax(level, "q8_0")
    M, N, K = 4, 19, 96
    rng = np.random.default_rng(0)
    Wq = _core.quantize(np.ones((N, K), np.float32), "q8_0").reshape(N, K // 32, 34)
    Wq[:, :, :2] = np.frombuffer(np.float16(0.5).tobytes(), np.uint8)  # d = 0.5 per block
    codes = rng.choice(np.array([-128, -127, 127], np.int8), size=(N, K // 32, 32))
    codes[0] = -128
    codes[1] = 127
    Wq[:, :, 2:] = codes.view(np.uint8)
    Wq = np.ascontiguousarray(Wq.reshape(N, -1))
    X = np.where(rng.random((M, K)) < 0.5, -3.0, 3.0).astype(np.float32)  # every |x| = amax: |q| = qmax
    X[0] = 3.0
    X[1] = -3.0
    got = T.qgemm(level, X, Wq, "q8_0")
    want = T.qgemm("ref", X, Wq, "q8_0", act_qmax=qmax)
    exact = X.astype(np.float64) @ (0.5 * codes.reshape(N, K).astype(np.float64)).T  # activations exact here
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got, exact, rtol=1e-6, atol=1e-6)


def test_act_qmax_arguments():
    X = np.ones((2, 64), np.float32)
    Wq = _core.quantize(np.ones((3, 64), np.float32), "q8_0")
    assert T.qgemm_act_qmax("ref", "q8_0") == 127
    with pytest.raises(ValueError, match="0..127"):
        T.qgemm("ref", X, Wq, "q8_0", act_qmax=128)
    if _core.isa_supported("avx2")[0]:
        with pytest.raises(ValueError, match="ref level only"):
            T.qgemm("avx2", X, Wq, "q8_0", act_qmax=64)


def test_bad_arguments():
    X = np.zeros((2, 64), np.float32)
    Wq = _core.quantize(np.zeros((3, 64), np.float32), "q8_0")
    with pytest.raises(ValueError, match="multiple of 32"):
        T.qgemm("ref", np.zeros((2, 48), np.float32), Wq, "q8_0")
    with pytest.raises(ValueError, match="not a block-quantized"):
        T.qgemm("ref", X, Wq, "f16")


@pytest.mark.parametrize("level", ["ref", "avx2", "avx512"])
@pytest.mark.parametrize("name", ["q8_0", "q4_0", "q5_1"])
def test_qgemm_relu_out_after_residual(level, name):
    """relu_out on the quantized GEMM: max(0, .) of exactly the result without it (any split)."""
    isa_or_skip(level)
    g = np.random.default_rng(11)
    M, N, K = 13, 45, 96
    X = g.standard_normal((M, K)).astype(np.float32)
    Wq = _core.quantize((0.1 * g.standard_normal((N, K))).astype(np.float32), name)
    bias = g.standard_normal(N).astype(np.float32)
    res = g.standard_normal((M, N)).astype(np.float32)
    for act in (0, 5):
        plain = T.qgemm(level, X, Wq, name, bias, act, res)
        assert (plain < 0).any()
        for nth in (1, 2, 5):
            got = T.qgemm(level, X, Wq, name, bias, act, res, nth=nth, relu_out=True)
            np.testing.assert_array_equal(got, np.maximum(plain, 0), err_msg=f"{level} {name} act={act}")


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("name", ["q4_0", "q4_1"])
@pytest.mark.parametrize("K,M", [(32, 41), (800, 41), (3072, 41), (3072, 150)])
def test_nibble_codes_spread_once_give_the_same_bits(level, name, K, M):
    """Nibble types: where a panel group serves several row tiles (many rows, one thread) its codes
    are spread to bytes once and the byte loop runs (groups in L1: two tiles or more; avx512's
    larger groups, K = 3072: 24 tiles or more, so 150 rows and not 41); a lone row tile (one
    row, or a 7-way split) unpacks them inside the loop. Both give the same bits, and the ref's
    result within its bound."""
    isa_or_skip(level)
    N = 70
    X, Wq, Wd = _data(M, N, K, name, seed=K)
    bias = np.random.default_rng(K).standard_normal(N).astype(np.float32)
    together = T.qgemm(level, X, Wq, name, bias, nth=1)
    rows = np.concatenate([T.qgemm(level, X[i:i + 1], Wq, name, bias, nth=1) for i in range(M)])
    np.testing.assert_array_equal(together, rows)
    np.testing.assert_array_equal(T.qgemm(level, X, Wq, name, bias, nth=7), together)
    want = T.qgemm("ref", X, Wq, name, bias, act_qmax=T.qgemm_act_qmax(level, name))
    bound = 2 * (K // 32 + 2) * U * (_accum_scale(X, Wq, Wd, name) + np.abs(bias))
    assert np.all(np.abs(together - want) <= bound)
