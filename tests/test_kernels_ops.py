"""Non-GEMM kernels (layer norm, activations, fused attention) at every ISA level.

Two kinds of checks:
* the reference kernels (the spec) against float64 numpy/torch, an independent check of the spec;
* every SIMD level the CPU supports against the reference, at sizes that hit the vector and tile
  edges (1, 3, 7, 8, 15, 16, 17, 31, 33, 64, 65, 100, 768), with nth in {1, 2, 3, 5}.

Tolerances come from an fp32 error model, u = 2^-24 (unit roundoff):
* a sum of n terms accumulated in fp32 (any order) is off by at most ~n u sum|terms|;
* an elementwise function evaluated to k ulps is off by k u |y|.
A SIMD result and the reference may each be off by their bound, so they are compared with the
sum of both. test_*_tolerance_can_fail checks that a plausible bug exceeds these bounds.
"""
import math

import numpy as np
import pytest
import torch

from pyvitcpp import _testing as T

U = 2.0**-24
FMIN = float(np.finfo(np.float32).tiny)
ISAS = ["ref", "avx2", "avx512"]
SIMD = ["avx2", "avx512"]
SIZES = [1, 3, 7, 8, 15, 16, 17, 31, 33, 64, 65, 100, 768]
NTH = [1, 2, 3, 5]
ACTS = {0: "none", 1: "gelu_erf", 2: "gelu_tanh", 3: "quick_gelu", 4: "tanh", 5: "relu", 6: "relu6",
        7: "silu", 8: "leaky_relu", 9: "hard_swish", 10: "leaky_relu_0.1", 11: "mish", 12: "sigmoid"}


def need(isa):
    ok, missing = T.ops_isa_supported(isa)
    if not ok:
        pytest.skip(f"{isa} needs {missing}, which this CPU/OS lacks")


def rng(seed):
    return np.random.default_rng(seed)


def assert_within(got, want, tol, what=""):
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    tol = np.broadcast_to(np.asarray(tol, np.float64), want.shape)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert np.array_equal(np.isnan(got), np.isnan(want)), f"{what}: NaN pattern differs"
    fin = ~np.isnan(want)
    same = got[fin] == want[fin]  # also covers equal infinities
    err = np.where(same, 0.0, np.abs(got[fin] - want[fin]))
    bad = err > tol[fin]
    if bad.any():
        i = int(np.argmax(err - tol[fin]))
        pytest.fail(f"{what}: {int(bad.sum())} elements out of tolerance; worst got {got[fin][i]!r} "
                    f"want {want[fin][i]!r} err {err[i]:.3g} tol {tol[fin][i]:.3g}")


# ----------------------------------------------------------------------------------------------
# Activations

K_ULPS = 16  # our vector math is measured at <= 11 ulps (6.5e-7) where |y| >= FLT_MIN


def act_truth(x, act):
    """float64 evaluation of the Act formula with the same float32 constants as the spec."""
    xd = torch.from_numpy(np.asarray(x, np.float64))
    if act == 0:
        y = xd
    elif act == 1:
        y = 0.5 * xd * torch.erfc(-xd / math.sqrt(2.0))
    elif act == 2:
        k = float(np.float32(0.79788456080286536))
        c = float(np.float32(0.044715))
        y = xd * torch.sigmoid(2.0 * k * (xd + c * xd**3))
    elif act == 3:
        y = xd * torch.sigmoid(float(np.float32(1.702)) * xd)
    elif act == 4:
        y = torch.tanh(xd)
    elif act == 10:
        y = torch.where(xd >= 0, xd, float(np.float32(0.1)) * xd)
    elif act == 11:
        y = xd * torch.tanh(torch.nn.functional.softplus(xd, threshold=1e30))
    elif act == 12:
        y = torch.sigmoid(xd)
    elif act == 6:
        y = torch.clamp(xd, 0.0, 6.0)
    elif act == 7:
        y = xd * torch.sigmoid(xd)
    elif act == 8:
        y = torch.where(xd >= 0, xd, float(np.float32(0.01)) * xd)
    elif act == 9:
        y = xd * torch.clamp(xd + 3.0, 0.0, 6.0) / 6.0
    else:
        y = torch.clamp_min(xd, 0.0)
    return y.numpy()


def act_tol_simd(x, y):
    # K_ULPS relative, plus an absolute floor in the denormal range (where no relative accuracy
    # exists in fp32).
    return K_ULPS * U * np.abs(y) + 64 * FMIN


def act_tol_ref(x, y, act):
    x = np.abs(np.asarray(x, np.float64))
    y = np.abs(y)
    if act in (1, 2):
        # 0.5 x (1 + erf|tanh): 1 + (~-1) cancels, an absolute error of ~2u in the bracket.
        return 4 * U * (y + x) + 64 * FMIN
    if act == 3:
        # exp of the rounded product 1.702f*x: a relative error |1.702 x| u of the tail.
        return 4 * U * y * (4 + 1.702 * x) + 64 * FMIN
    if act == 11:
        # x tanh(log1p(exp x)): four correctly rounded-ish steps (exp, log1p, tanh, the product),
        # none of which amplifies the previous one's relative error by more than 1.
        return 8 * U * y + 64 * FMIN
    return 4 * U * y + 64 * FMIN


def act_inputs(n, seed):
    r = rng(seed)
    x = (r.standard_normal(n) * 4).astype(np.float32)
    return x


def test_ref_activation_matches_float64():
    # Dense log grid of magnitudes, both signs, finite.
    mag = np.geomspace(1e-30, 1e4, 20000).astype(np.float32)
    x = np.concatenate([mag, -mag, np.float32([0.0, -0.0, 20, -20, 1e30, -1e30])]).astype(np.float32)
    for act in ACTS:
        y = T.activation("ref", x, act, 1)
        want = act_truth(x, act)
        assert_within(y, want, act_tol_ref(x, want, act), f"ref {ACTS[act]}")


@pytest.mark.parametrize("isa", SIMD)
def test_vecmath_accuracy(isa):
    """Every activation to ~1e-6 relative over the float range, the ref's cancellation excepted."""
    need(isa)
    mag = np.geomspace(1e-30, 1e4, 100000).astype(np.float32)
    dense = np.linspace(-16, 16, 200001, dtype=np.float32)
    x = np.concatenate([mag, -mag, dense]).astype(np.float32)
    for act in ACTS:
        y = T.act_inplace(isa, x, act)
        want = act_truth(x, act)
        big = np.abs(want) >= FMIN
        rel = np.abs(y[big] - want[big]) / np.abs(want[big])
        assert rel.max() <= 1e-6, (ACTS[act], float(rel.max()), float(x[big][np.argmax(rel)]))
        assert_within(y, want, act_tol_simd(x, want), f"{isa} {ACTS[act]}")


@pytest.mark.parametrize("isa", SIMD)
def test_gelu_erf_both_paths(isa):
    """gelu_erf takes a division-free path when all lanes of a vector (avx2 8, avx512 16) have
    |x| <= 3 and the erfc fit otherwise: the same values through vectors that are all small,
    mixed (every 8th lane large), and around |x| = 3."""
    need(isa)
    r = rng(77)
    small = r.uniform(-3, 3, 8192).astype(np.float32)
    mixed = small.copy()
    mixed[::8] = r.uniform(3, 6, 1024).astype(np.float32) * np.sign(r.standard_normal(1024)).astype(np.float32)
    edge = np.float32(3.0) + np.arange(-64, 64, dtype=np.float32) * np.float32(2.0**-22)
    x = np.concatenate([small, mixed, edge, -edge]).astype(np.float32)
    y = T.act_inplace(isa, x, 1)
    want = act_truth(x, 1)
    rel = np.abs(y - want) / np.abs(want)
    assert rel[np.abs(want) >= FMIN].max() <= 1e-6, float(rel.max())
    assert_within(y, want, act_tol_simd(x, want), f"{isa} gelu_erf paths")
    # A lane's result does not depend on its neighbours' path beyond the rounding bound.
    assert_within(y[8192:8192 + 8192][1::8], y[:8192][1::8], 2 * act_tol_simd(small[1::8], want[:8192][1::8]),
                  "same x, small-path vector vs mixed vector")


@pytest.mark.parametrize("isa", SIMD)
@pytest.mark.parametrize("act", list(ACTS))
@pytest.mark.parametrize("nth", NTH)
def test_activation_vs_ref(isa, act, nth):
    need(isa)
    for n in SIZES + [1000, 4099]:
        x = act_inputs(n, 1000 * act + n)
        got = T.activation(isa, x, act, nth)
        ref = T.activation("ref", x, act, 1)
        want = act_truth(x, act)
        tol = act_tol_simd(x, want) + act_tol_ref(x, want, act)
        assert_within(got, ref, tol, f"{isa} {ACTS[act]} n={n} nth={nth}")
        # act_inplace (the GEMM epilogue) is the same function.
        assert np.array_equal(T.act_inplace(isa, x, act), got, equal_nan=True)


SPECIAL = np.float32([0.0, -0.0, 1e-30, -1e-30, 20, -20, 1e4, -1e4, 1e30, -1e30,
                      np.inf, -np.inf, np.nan, 3.0, -3.0, 88.0, -88.0, 1e-45])


@pytest.mark.parametrize("isa", SIMD)
def test_activation_special_values(isa):
    need(isa)
    x = SPECIAL
    inf = np.inf
    expect_at_inf = {0: (inf, -inf), 1: (inf, 0.0), 2: (inf, 0.0), 3: (inf, 0.0), 4: (1.0, -1.0),
                     5: (inf, 0.0), 6: (6.0, 0.0), 7: (inf, np.nan), 8: (inf, -inf), 9: (inf, np.nan),
                     10: (inf, -inf), 11: (inf, np.nan), 12: (1.0, 0.0)}  # mish, silu, hard_swish(-inf): -inf * 0, as torch
    for act in ACTS:
        for n in (len(x), 5):  # the tail path and the vector path
            xx = np.resize(x, 16 * 3 + n) if n == 5 else x
            y = T.act_inplace(isa, xx, act)
            assert np.isnan(y[np.isnan(xx)]).all(), f"{ACTS[act]}: NaN must propagate"
            fin = np.isfinite(xx)
            assert np.isfinite(y[fin]).all(), f"{ACTS[act]}: finite input gave {y[fin]}"
            pos, neg = expect_at_inf[act]
            assert np.array_equal(y[xx == np.inf], np.full((xx == np.inf).sum(), pos, np.float32), equal_nan=True)
            assert np.array_equal(y[xx == -np.inf], np.full((xx == -np.inf).sum(), neg, np.float32), equal_nan=True), \
                (ACTS[act], y)
            want = act_truth(xx[fin], act)
            assert_within(y[fin], want, act_tol_simd(xx[fin], want), f"{isa} {ACTS[act]} special")
            assert np.array_equal(T.activation(isa, xx, act, 3), y, equal_nan=True)


def test_ref_activation_special_values():
    x = SPECIAL[np.isfinite(SPECIAL)]
    for act in ACTS:
        y = T.act_inplace("ref", x, act)
        assert np.isfinite(y).all(), ACTS[act]
        want = act_truth(x, act)
        assert_within(y, want, act_tol_ref(x, want, act), f"ref {ACTS[act]} special")
    for act in (0, 1, 2, 3, 4):
        assert np.isnan(T.act_inplace("ref", np.float32([np.nan]), act)).all(), ACTS[act]


def test_ref_relu_propagates_nan():
    assert np.isnan(T.act_inplace("ref", np.float32([np.nan]), 5)).all()


# ----------------------------------------------------------------------------------------------
# Layer norm


def ln_truth(X, g, b, eps):
    Xd = X.astype(np.float64)
    mean = Xd.mean(1, keepdims=True)
    var = ((Xd - mean) ** 2).mean(1, keepdims=True)
    core = (Xd - mean) / np.sqrt(var + eps)
    y = core * (1.0 if g is None else g.astype(np.float64)) + (0.0 if b is None else b.astype(np.float64))
    return y, core, var


def ln_tol(X, g, b, eps):
    """One kernel's bound: the mean is a sum of D terms (error D u mean|x|), scaled by rstd; the
    variance a sum of D squares (relative error (D + 2) u, half of it in rstd); a few roundings."""
    D = X.shape[1]
    y, core, var = ln_truth(X, g, b, eps)
    rstd = 1 / np.sqrt(var + eps)
    ag = 1.0 if g is None else np.abs(g.astype(np.float64))
    ab = 0.0 if b is None else np.abs(b.astype(np.float64))
    mabs = np.abs(X.astype(np.float64)).mean(1, keepdims=True)
    return 2 * U * ((D * mabs * rstd + (D + 8) * np.abs(core)) * ag + ab) + FMIN


def ln_case(rows, D, seed, affine=(True, True), offset=0.0):
    r = rng(seed)
    X = (r.standard_normal((rows, D)) * 2 + offset).astype(np.float32)
    g = (r.standard_normal(D) + 1).astype(np.float32) if affine[0] else None
    b = r.standard_normal(D).astype(np.float32) if affine[1] else None
    return X, g, b


def test_ref_layernorm_matches_float64():
    for D in SIZES:
        for affine in [(True, True), (False, False), (True, False), (False, True)]:
            X, g, b = ln_case(5, D, D, affine)
            want, _, _ = ln_truth(X, g, b, 1e-5)
            assert_within(T.layernorm("ref", X, g, b, 1e-5, 1, False), want, ln_tol(X, g, b, 1e-5), f"ref D={D}")


@pytest.mark.parametrize("isa", SIMD)
@pytest.mark.parametrize("nth", NTH)
def test_layernorm_vs_ref(isa, nth):
    need(isa)
    for D in SIZES:
        for k, affine in enumerate([(True, True), (False, False), (True, False), (False, True)]):
            X, g, b = ln_case(7, D, 100 * D + k, affine)
            tol = 2 * ln_tol(X, g, b, 1e-6)
            ref = T.layernorm("ref", X, g, b, 1e-6, 1, False)
            for inplace in (False, True):
                got = T.layernorm(isa, X, g, b, 1e-6, nth, inplace)
                assert_within(got, ref, tol, f"{isa} D={D} affine={affine} inplace={inplace} nth={nth}")


@pytest.mark.parametrize("isa", ISAS)
def test_layernorm_special_rows(isa):
    need(isa)
    D = 100
    r = rng(7)
    g = (r.standard_normal(D) + 1).astype(np.float32)
    b = r.standard_normal(D).astype(np.float32)
    # Constant rows whose sums are exact: x - mean == 0 exactly, so y == beta exactly.
    X = np.stack([np.full(D, 2.0), np.zeros(D), np.full(D, -0.5)]).astype(np.float32)
    for nth in (1, 2):
        assert np.array_equal(T.layernorm(isa, X, g, b, 1e-5, nth, False), np.tile(b, (3, 1)))
    # A constant row with an inexact mean, huge and tiny rows, and a row far from zero with unit
    # spread (one-pass E[x^2] - mean^2 would lose it): within the error model.
    X = np.stack([np.full(D, 3.3), r.standard_normal(D) * 1e4, r.standard_normal(D) * 1e-20,
                  1e3 + r.standard_normal(D)]).astype(np.float32)
    want, _, _ = ln_truth(X, g, b, 1e-5)
    assert_within(T.layernorm(isa, X, g, b, 1e-5, 3, True), want, ln_tol(X, g, b, 1e-5), f"{isa} special rows")


# ----------------------------------------------------------------------------------------------
# Attention


def sdpa64(Q, K, V, scale):
    t = [torch.from_numpy(np.ascontiguousarray(a, np.float64)).transpose(1, 2) for a in (Q, K, V)]
    return torch.nn.functional.scaled_dot_product_attention(*t, scale=scale).transpose(1, 2).numpy()


def attn_tol(Q, K, V, scale):
    """One kernel's bound: each score is a Dh-term dot product (error <= Dh u scale |q||k|, plus
    the log2e/scale roundings); a score error e changes p_j by ~e relative and the normalisation by
    at most max e; the sum of Tk probabilities and of Tk products p_j v_j add Tk u each.
    => |dO[d]| <= 2 u (sum_j p_j |v_j[d]|) (2 (Dh + 2) scale |q| max_j |k_j| + 2 Tk + 16)."""
    Qd, Kd, Vd = (a.astype(np.float64) for a in (Q, K, V))
    Tk, Dh = K.shape[1], K.shape[3]
    s = np.einsum("bihd,bjhd->bhij", Qd, Kd) * scale
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    A = np.einsum("bhij,bjhd->bihd", p, np.abs(Vd))
    qn = np.linalg.norm(Qd, axis=-1)  # b i h
    kn = np.linalg.norm(Kd, axis=-1).max(1)  # b h
    E = 2 * (Dh + 2) * abs(scale) * qn * kn[:, None, :] + 2 * Tk + 16
    return 2 * U * A * E[..., None] + FMIN


def qkv_case(B, Tq, Tk, H, Dh, seed, mag=1.0):
    r = rng(seed)
    Q = (r.standard_normal((B, Tq, H, Dh)) * mag).astype(np.float32)
    K = (r.standard_normal((B, Tk, H, Dh)) * mag).astype(np.float32)
    V = r.standard_normal((B, Tk, H, Dh)).astype(np.float32)
    return Q, K, V


ATT_SHAPES = [  # B, Tq, Tk, H, Dh
    (1, 1, 1, 1, 1), (1, 2, 2, 1, 3), (2, 5, 5, 2, 7), (1, 16, 16, 3, 8), (1, 17, 17, 2, 15),
    (2, 16, 17, 1, 16), (1, 17, 5, 2, 17), (1, 5, 197, 2, 31), (1, 197, 197, 2, 64),
    (2, 33, 65, 1, 33), (1, 7, 300, 1, 65), (1, 65, 31, 2, 100), (1, 3, 600, 2, 24),
    (1, 31, 100, 1, 36), (1, 17, 33, 1, 48), (1, 9, 50, 1, 80), (1, 8, 40, 2, 96), (1, 6, 260, 1, 128),
    # the avx2 level keeps whole score rows up to 2064 keys (two-pass softmax), online above
    (1, 6, 2064, 1, 16), (1, 5, 2065, 2, 40), (1, 3, 1370, 1, 24),
]


def test_ref_attention_matches_sdpa_float64():
    for k, (B, Tq, Tk, H, Dh) in enumerate(ATT_SHAPES):
        Q, K, V = qkv_case(B, Tq, Tk, H, Dh, k)
        scale = Dh**-0.5
        assert_within(T.attention("ref", Q, K, V, scale, 2), sdpa64(Q, K, V, scale), attn_tol(Q, K, V, scale),
                      f"ref {(B, Tq, Tk, H, Dh)}")


@pytest.mark.parametrize("isa", SIMD)
@pytest.mark.parametrize("nth", NTH)
def test_attention_vs_ref(isa, nth):
    need(isa)
    for k, (B, Tq, Tk, H, Dh) in enumerate(ATT_SHAPES):
        Q, K, V = qkv_case(B, Tq, Tk, H, Dh, 50 + k, mag=1.5)
        scale = Dh**-0.5
        tol = attn_tol(Q, K, V, scale)
        got = T.attention(isa, Q, K, V, scale, nth)
        assert_within(got, T.attention("ref", Q, K, V, scale, 1), 2 * tol, f"{isa} {(B, Tq, Tk, H, Dh)} nth={nth}")
        if nth == 2:
            assert_within(got, sdpa64(Q, K, V, scale), tol, f"{isa} vs sdpa {(B, Tq, Tk, H, Dh)}")


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("T_", [1, 2, 5, 16, 17, 197])
def test_attention_fused_qkv(isa, T_):
    """The engine's layout: q/k/v strided views into one [B, T, 3, H, Dh] activation."""
    need(isa)
    B, H, Dh = 2, 3, 64 if T_ == 197 else 17
    qkv = rng(T_).standard_normal((B, T_, 3, H, Dh)).astype(np.float32)
    Q, K, V = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    scale = Dh**-0.5
    want = sdpa64(Q, K, V, scale)
    tol = attn_tol(Q, K, V, scale)
    for nth in (1, 3):
        O = T.attention_fused_qkv(isa, qkv, scale, nth)
        assert O.shape == (B, T_, H * Dh)
        assert_within(O.reshape(B, T_, H, Dh), want, tol, f"{isa} fused T={T_}")
        # Strided views through the plain hook give the same result bit for bit.
        assert np.array_equal(T.attention(isa, Q, K, V, scale, nth), O.reshape(B, T_, H, Dh))


@pytest.mark.parametrize("isa", ISAS)
def test_attention_special(isa):
    need(isa)
    B, Tq, Tk, H, Dh = 1, 9, 40, 2, 24
    Q, K, V = qkv_case(B, Tq, Tk, H, Dh, 3)
    # One key aligned with query 0 at a huge logit: the output is exactly that key's value row
    # (every other probability underflows to 0).
    K[0, 13, 1] = Q[0, 0, 1] * 50
    V[0] *= 1e3
    # A large scale (peaked softmax), a small one (nearly uniform) and 0 (exactly uniform).
    for scale in (Dh**-0.5, 3.0, 1e-3, 0.0):
        O = T.attention(isa, Q, K, V, scale, 2)
        assert_within(O, sdpa64(Q, K, V, scale), attn_tol(Q, K, V, scale), f"{isa} scale={scale}")
    O = T.attention(isa, Q, K, V, Dh**-0.5, 3)
    assert np.array_equal(O[0, 0, 1], V[0, 13, 1])
    # NaN in a value row reaches every output of that head and no other head.
    V2 = V.copy()
    V2[0, 5, 0, 3] = np.nan
    O = T.attention(isa, Q, K, V2, Dh**-0.5, 2)
    assert np.isnan(O[0, :, 0, 3]).all() and np.isfinite(O[0, :, 1]).all()


@pytest.mark.parametrize("isa", ISAS)
def test_attention_tolerance_can_fail(isa):
    """The bound (worst case, ~100x above typical errors) still sees one key of 197 missing, or one
    value row 10% off."""
    need(isa)
    Q, K, V = qkv_case(1, 9, 197, 2, 64, 11)
    scale = 0.125
    tol = attn_tol(Q, K, V, scale)
    O = T.attention(isa, Q, K, V, scale, 2)
    assert_within(O, sdpa64(Q, K, V, scale), tol)
    dropped = sdpa64(Q, K[:, :-1], V[:, :-1], scale)
    assert (np.abs(O - dropped) > tol).any()
    V2 = V.copy()
    V2[0, 100] *= 1.1
    assert (np.abs(O - sdpa64(Q, K, V2, scale)) > tol).any()


def test_layernorm_tolerance_can_fail():
    X, g, b = ln_case(4, 64, 5, offset=1e3)
    Xd = X.astype(np.float64)
    # One-pass variance in fp32 (E[x^2] - mean^2), the cancellation the two-pass form avoids.
    Xf = X.astype(np.float32)
    mean = Xf.mean(1, keepdims=True, dtype=np.float32)
    var = np.maximum((Xf * Xf).mean(1, keepdims=True, dtype=np.float32) - mean * mean, 0)
    one_pass = ((Xf - mean) / np.sqrt(var + np.float32(1e-5))) * g + b
    want, _, _ = ln_truth(X, g, b, 1e-5)
    assert (np.abs(one_pass - want) > ln_tol(X, g, b, 1e-5)).any()
    del Xd


# ----------------------------------------------------------------------------------------------
# Hooks: validation and the benchmark


def test_hooks_validate():
    X = np.zeros((3, 8), np.float32)
    with pytest.raises(ValueError):
        T.layernorm("ref", X.astype(np.float64), None, None, 1e-5, 1, False)
    with pytest.raises(ValueError):
        T.layernorm("ref", X, np.zeros(7, np.float32), None, 1e-5, 1, False)
    with pytest.raises(ValueError):
        T.layernorm("ref", X[:, ::2], None, None, 1e-5, 1, False)
    with pytest.raises(ValueError):
        T.layernorm("nope", X, None, None, 1e-5, 1, False)
    with pytest.raises(ValueError):
        T.activation("ref", X[0], 99, 1)
    with pytest.raises(ValueError):
        T.act_inplace("ref", X, 1)
    Q = np.zeros((1, 4, 2, 8), np.float32)
    with pytest.raises(ValueError):
        T.attention("ref", Q, Q[:, :3], Q, 1.0, 1)
    with pytest.raises(ValueError):
        T.attention("ref", Q, Q[..., :4], Q[..., :4], 1.0, 1)
    with pytest.raises(ValueError):
        T.attention("ref", Q[..., ::2], Q[..., ::2], Q[..., ::2], 1.0, 1)
    with pytest.raises(ValueError):
        T.attention_fused_qkv("ref", np.zeros((1, 4, 2, 2, 8), np.float32), 1.0, 1)
    assert T.ops_isa_supported("ref") == (True, "")
    with pytest.raises(ValueError):
        T.ops_isa_supported("sse9")


def test_attention_bench_runs():
    s = T.attention_bench("ref", 1, 2, 9, 16, 2, 0.0)
    assert 0 < s < 1
