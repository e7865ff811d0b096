"""Fused attention with additive score terms (AttentionArgs bias / mask / rel_h, rel_w) at every level.

S[b,h,i,j] = scale q_i.k_j + bias[h or 0, i, j] + mask[b % nW, i, j] + q_i.Rh[ih-jh+gh-1] + q_i.Rw[iw-jw+gw-1]

References (float64):
* PyTorch scaled_dot_product_attention with attn_mask = the float sum of the terms;
* the decomposed relative position from Segment Anything's own add_decomposed_rel_pos /
  get_rel_pos (segment_anything/modeling/image_encoder.py, loaded from its file without the
  package __init__, which imports torchvision); when segment_anything is not installed, the
  same formula transcribed from that file (einsum "bhwc,hkc->bhwk", R = rel_pos[q - k + size - 1]);
* a second reference for the rel-pos term: transformers' SamVisionAttention.get_decomposed_rel_pos.

Error model: the fp32 model of test_kernels_ops.attn_tol, with the score error bound extended
by the added terms (see terms_tol).
"""
import importlib.util
import math
import os
import sys
import types

import numpy as np
import pytest
import torch

from pyvitcpp import _testing as T

from test_kernels_ops import U, FMIN, assert_within, need, rng  # noqa: F401

ISAS = ["ref", "avx2", "avx512"]
SIMD = ["avx2", "avx512"]


# ----------------------------------------------------------------------------------------------
# References


def _load_sam_image_encoder():
    spec = importlib.util.find_spec("segment_anything")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = list(spec.submodule_search_locations)[0]
    path = os.path.join(root, "modeling", "image_encoder.py")
    if not os.path.exists(path):
        return None
    # Parent packages as empty shells, so image_encoder's `from .common import ...` resolves
    # without running segment_anything/__init__.py (it imports torchvision).
    names = {"_sam_shell": root, "_sam_shell.modeling": os.path.join(root, "modeling")}
    for name, p in names.items():
        if name not in sys.modules:
            m = types.ModuleType(name)
            m.__path__ = [p]
            sys.modules[name] = m
    s = importlib.util.spec_from_file_location("_sam_shell.modeling.image_encoder", path)
    mod = importlib.util.module_from_spec(s)
    sys.modules[s.name] = mod
    s.loader.exec_module(mod)
    return mod


SAM = _load_sam_image_encoder()


def sam_rel_term(q, rel_h, rel_w, gh, gw):
    """The additive rel-pos term [N, T, T] for q [N, T, Dh] (float64 torch), via SAM's code."""
    q = q.double()
    rh = torch.from_numpy(np.asarray(rel_h, np.float64))
    rw = torch.from_numpy(np.asarray(rel_w, np.float64))
    N, T_ = q.shape[0], q.shape[1]
    zero = torch.zeros((N, T_, T_), dtype=torch.float64)
    if SAM is not None:
        return SAM.add_decomposed_rel_pos(zero, q, rh, rw, (gh, gw), (gh, gw))
    # Fallback: SAM's formula transcribed (tables already of size 2g - 1: no interpolation).
    def get_rel_pos(size, table):
        coords = torch.arange(size)[:, None] - torch.arange(size)[None, :] + (size - 1)
        return table[coords.long()]
    Rh, Rw = get_rel_pos(gh, rh), get_rel_pos(gw, rw)
    r_q = q.reshape(N, gh, gw, -1)
    r_h = torch.einsum("bhwc,hkc->bhwk", r_q, Rh)
    r_w = torch.einsum("bhwc,wkc->bhwk", r_q, Rw)
    return (zero.view(N, gh, gw, gh, gw) + r_h[:, :, :, :, None] + r_w[:, :, :, None, :]).view(N, T_, T_)


def hf_rel_term(q, rel_h, rel_w, gh, gw):
    """The same term through transformers' SamVisionAttention (a second, independent reference)."""
    from transformers import SamVisionConfig
    from transformers.models.sam.modeling_sam import SamVisionAttention

    Dh = q.shape[-1]
    cfg = SamVisionConfig(hidden_size=Dh, num_attention_heads=1, use_rel_pos=True, image_size=16 * gh,
                          patch_size=16)
    att = SamVisionAttention(cfg, window_size=gh).double()
    rh = torch.from_numpy(np.asarray(rel_h, np.float64))
    rw = torch.from_numpy(np.asarray(rel_w, np.float64))
    N, T_ = q.shape[0], q.shape[1]
    with torch.no_grad():
        t = att.get_decomposed_rel_pos(q.double(), rh, rw, (gh, gw), (gh, gw))
    return t.reshape(N, T_, T_)


def float_mask(Q, bias, mask, rel_h, rel_w, grid, rel_fn=sam_rel_term):
    """The additive terms as one float64 attn_mask [B, H, Tq, Tk] (None when there are none)."""
    B, Tq, H, Dh = Q.shape
    M = None

    def add(M, x):
        return x if M is None else M + x

    if bias is not None:
        M = add(M, torch.from_numpy(np.asarray(bias, np.float64))[None].expand(B, H, -1, -1))
    if mask is not None:
        nW = mask.shape[0]
        m = torch.from_numpy(np.asarray(mask, np.float64))[torch.arange(B) % nW]
        M = add(M, m[:, None].expand(-1, H, -1, -1))
    if rel_h is not None:
        gh, gw = grid
        q = torch.from_numpy(np.asarray(Q, np.float64)).permute(0, 2, 1, 3).reshape(B * H, Tq, Dh)
        M = add(M, rel_fn(q, rel_h, rel_w, gh, gw).reshape(B, H, Tq, Tq))
    return M


def sdpa64(Q, K, V, scale, M):
    t = [torch.from_numpy(np.ascontiguousarray(a, np.float64)).transpose(1, 2) for a in (Q, K, V)]
    O = torch.nn.functional.scaled_dot_product_attention(*t, attn_mask=M, scale=scale)
    return O.transpose(1, 2).numpy()


def terms_tol(Q, K, V, scale, bias=None, mask=None, rel_h=None, rel_w=None, grid=None):
    """One kernel's bound (test_kernels_ops.attn_tol extended). A score is
    fl(fl(scale q.k) + bias + mask + q.Rh + q.Rw): each dot product of Dh terms is off by
    <= (Dh + 2) u |q| |k or R| (plus the log2e roundings), the four additions by <= u times the
    running sum each, i.e. <= 4 u (|scale q.k| + |bias| + |mask| + |q.Rh| + |q.Rw|). A score
    error e changes p_j by ~e relative and the normalisation by at most max e; the sum of Tk
    probabilities and of Tk products p_j v_j add Tk u each. Per query row i:
      E_i = 2 (Dh + 6) |q_i| (|scale| max|k| + max|Rh| + max|Rw|) + 8 max_j (|bias_ij| + |mask_ij|)
            + 2 Tk + 16     (max over finite mask entries; -inf keys have p = 0 exactly)
    |dO[d]| <= 2 u (sum_j p_j |v_j[d]|) E_i."""
    Qd, Vd = np.asarray(Q, np.float64), np.asarray(V, np.float64)
    B, Tq, H, Dh = Q.shape
    Tk = K.shape[1]
    M = float_mask(Q, bias, mask, rel_h, rel_w, grid)
    s = torch.from_numpy(np.einsum("bihd,bjhd->bhij", Qd, np.asarray(K, np.float64)) * scale)
    if M is not None:
        s = s + M
    p = torch.softmax(s, -1).numpy()
    A = np.einsum("bhij,bjhd->bihd", p, np.abs(Vd))
    qn = np.linalg.norm(Qd, axis=-1)  # b i h
    kn = np.linalg.norm(np.asarray(K, np.float64), axis=-1).max(1)  # b h
    rn = 0.0
    if rel_h is not None:
        rn = np.linalg.norm(np.asarray(rel_h, np.float64), axis=-1).max() + \
            np.linalg.norm(np.asarray(rel_w, np.float64), axis=-1).max()
    E = 2 * (Dh + 6) * qn * (abs(scale) * kn[:, None, :] + rn) + 2 * Tk + 16
    add = np.zeros((B, Tq, H))
    if bias is not None:
        bb = np.abs(np.broadcast_to(np.asarray(bias, np.float64), (H, Tq, Tk)))
        add = add + bb.max(-1).T[None]  # [1, Tq, H]
    if mask is not None:
        mm = np.abs(np.asarray(mask, np.float64))
        mm = np.where(np.isfinite(mm), mm, 0.0).max(-1)  # nW Tq
        add = add + mm[np.arange(B) % mask.shape[0]][:, :, None]
    E = E + 8 * add
    return 2 * U * A * E[..., None] + FMIN


# ----------------------------------------------------------------------------------------------
# Cases


def make_case(B, H, Tq, Tk, Dh, Hb=None, nW=None, grid=None, seed=0, mask_ninf=False, mag=1.0):
    r = rng(seed)
    Q = (r.standard_normal((B, Tq, H, Dh)) * mag).astype(np.float32)
    K = (r.standard_normal((B, Tk, H, Dh)) * mag).astype(np.float32)
    V = r.standard_normal((B, Tk, H, Dh)).astype(np.float32)
    bias = mask = rel_h = rel_w = None
    if Hb is not None:
        bias = (r.standard_normal((Hb, Tq, Tk)) * 2).astype(np.float32)
    if nW is not None:
        # Swin's shifted-window mask: 0 inside a region, -100 across; key 0..2 keep 0 per row.
        mask = np.where(r.random((nW, Tq, Tk)) < 0.4, -100.0, 0.0).astype(np.float32)
        if mask_ninf:
            mask[np.where(r.random((nW, Tq, Tk)) < 0.2)] = -np.inf
        mask[:, :, r.integers(0, Tk)] = 0.0  # every row keeps a finite key
    if grid is not None:
        gh, gw = grid
        assert gh * gw == Tq == Tk
        rel_h = (r.standard_normal((2 * gh - 1, Dh)) * 0.5).astype(np.float32)
        rel_w = (r.standard_normal((2 * gw - 1, Dh)) * 0.5).astype(np.float32)
    return Q, K, V, dict(bias=bias, mask=mask, rel_h=rel_h, rel_w=rel_w, grid=grid)


def run(isa, Q, K, V, scale, nth, terms):
    t = dict(terms)
    return T.attention(isa, Q, K, V, scale, nth, **t)


def want_and_tol(Q, K, V, scale, terms):
    M = float_mask(Q, terms["bias"], terms["mask"], terms["rel_h"], terms["rel_w"], terms["grid"])
    return sdpa64(Q, K, V, scale, M), terms_tol(Q, K, V, scale, **terms)


# Tile edges: avx2 MR = 4 rows, 16-row blocks, 24-key panels, 48-key tiles, softmax chunks of
# 2064 keys; avx512 MR = 6 rows, 64-key panels, 256-key tiles, chunks of 2048 keys. The rel-pos
# add has a direct path (gw >= vector width: 8 avx2, 16 avx512) and one for narrower grids.
# (B, H, Tq, Tk, Dh, Hb, nW, grid)
CASES = [
    (1, 1, 1, 1, 1, 1, None, (1, 1)),
    (2, 3, 15, 15, 7, 3, 1, (3, 5)),
    (2, 1, 3, 5, 16, 1, 1, None),
    (2, 3, 4, 23, 33, 1, 1, None),
    (4, 3, 5, 24, 64, 3, 2, None),
    (2, 1, 6, 25, 80, 1, 1, None),
    (2, 3, 7, 47, 16, None, 1, None),
    (8, 1, 17, 48, 7, 1, 4, None),
    (2, 3, 49, 49, 33, 3, 1, (7, 7)),
    (2, 2, 16, 16, 16, 2, 2, (4, 4)),               # avx2: one whole 16-row block
    (2, 1, 63, 65, 64, 1, 1, None),
    (8, 3, 64, 64, 16, 3, 4, (8, 8)),
    (2, 3, 65, 65, 1, None, None, (5, 13)),
    (2, 3, 196, 196, 64, 3, 1, (14, 14)),
    (8, 1, 49, 49, 80, 1, 4, (7, 7)),
    (1, 1, 255, 255, 16, None, None, (15, 17)),
    (1, 3, 256, 256, 7, 3, None, (16, 16)),
    (1, 1, 257, 257, 33, 1, None, (1, 257)),
    (1, 1, 17, 17, 16, None, None, (17, 1)),
    (1, 1, 2064, 2064, 16, None, None, (43, 48)),   # avx2: one chunk; avx512: 2048 + 16
    (2, 1, 2065, 2065, 7, 1, 1, (35, 59)),          # avx2: 2064 + 1
    (1, 3, 5, 2065, 33, 3, None, None),
    (1, 1, 3, 2047, 7, None, 1, None),              # avx512: just below a chunk
    (1, 2, 5, 2048, 16, 2, None, None),             # avx512: one whole chunk
    (2, 1, 7, 2049, 33, 1, 1, None),                # avx512: 2048 + 1
]


def case_id(c):
    B, H, Tq, Tk, Dh, Hb, nW, grid = c
    return f"B{B}H{H}q{Tq}k{Tk}d{Dh}" + (f"b{Hb}" if Hb else "") + (f"w{nW}" if nW else "") + \
        (f"g{grid[0]}x{grid[1]}" if grid else "")


def case_arrays(c, seed):
    B, H, Tq, Tk, Dh, Hb, nW, grid = c
    return make_case(B, H, Tq, Tk, Dh, Hb, nW, grid, seed=seed, mask_ninf=(seed % 2 == 1))


# ----------------------------------------------------------------------------------------------
# Tests


def test_sam_reference_loaded_or_transcribed():
    """Says which rel-pos reference ran (SAM's own file or the transcription)."""
    q = torch.from_numpy(rng(0).standard_normal((2, 15, 8)))
    rh, rw = rng(1).standard_normal((5, 8)), rng(2).standard_normal((9, 8))
    a = sam_rel_term(q, rh, rw, 3, 5)
    b = hf_rel_term(q, rh, rw, 3, 5)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-12)
    if SAM is None:
        pytest.skip("segment_anything not installed: the transcribed formula was used")


@pytest.mark.parametrize("c", CASES, ids=case_id)
def test_ref_vs_float64(c):
    Q, K, V, terms = case_arrays(c, 1)
    scale = c[4] ** -0.5
    want, tol = want_and_tol(Q, K, V, scale, terms)
    assert_within(run("ref", Q, K, V, scale, 2, terms), want, tol, f"ref {case_id(c)}")


@pytest.mark.parametrize("isa", SIMD)
@pytest.mark.parametrize("c", CASES, ids=case_id)
def test_simd_vs_ref_and_torch(isa, c):
    need(isa)
    Q, K, V, terms = case_arrays(c, 2 + CASES.index(c))
    scale = c[4] ** -0.5
    want, tol = want_and_tol(Q, K, V, scale, terms)
    big = c[2] * c[3] > 1_000_000
    ref = run("ref", Q, K, V, scale, 1, terms)
    for nth in ((1, 3) if big else (1, 2, 3, 7)):
        got = run(isa, Q, K, V, scale, nth, terms)
        assert_within(got, want, tol, f"{isa} vs torch {case_id(c)} nth={nth}")
        assert_within(got, ref, 2 * tol, f"{isa} vs ref {case_id(c)} nth={nth}")


@pytest.mark.parametrize("isa", ISAS)
def test_rel_pos_vs_transformers(isa):
    """The rel-pos term alone against HF's SamVisionAttention (non-square grid, 2 heads)."""
    need(isa)
    Q, K, V, terms = make_case(2, 2, 6 * 11, 6 * 11, 24, grid=(6, 11), seed=5)
    scale = 24 ** -0.5
    M = float_mask(Q, None, None, terms["rel_h"], terms["rel_w"], (6, 11), rel_fn=hf_rel_term)
    got = run(isa, Q, K, V, scale, 3, terms)
    assert_within(got, sdpa64(Q, K, V, scale, M), terms_tol(Q, K, V, scale, **terms), f"{isa} vs HF")


@pytest.mark.parametrize("isa", ISAS)
def test_zero_terms_are_exactly_no_terms(isa):
    """Adding 0 changes no score bit: zero bias / mask / tables give the no-term result exactly."""
    need(isa)
    Q, K, V, _ = make_case(2, 3, 49, 49, 33, seed=7)
    z = np.zeros((3, 49, 49), np.float32)
    zr = np.zeros((13, 33), np.float32)
    base = T.attention(isa, Q, K, V, 0.2, 2)
    got = T.attention(isa, Q, K, V, 0.2, 2, bias=z, mask=z[:2], rel_h=zr, rel_w=zr)
    assert np.array_equal(base, got)


@pytest.mark.parametrize("isa", ISAS)
def test_each_term_is_needed(isa):
    """Dropping any one term (or taking the wrong window b // (B / nW)) is far outside tolerance;
    each kernel was also checked by hand with that term switched off (this test and the others
    fail then)."""
    need(isa)
    for grid in ((7, 7), (3, 17)):  # narrower than a vector / not (the two rel-pos add paths)
        each_term_is_needed(isa, grid)


def each_term_is_needed(isa, grid):
    B, nW = 4, 2
    n = grid[0] * grid[1]
    Q, K, V, terms = make_case(B, 3, n, n, 16, Hb=3, nW=nW, grid=grid, seed=9)
    scale = 0.25
    got = run(isa, Q, K, V, scale, 2, terms)
    want, tol = want_and_tol(Q, K, V, scale, terms)
    assert_within(got, want, tol, f"{isa} all terms")
    for drop in ("bias", "mask", "rel"):
        t = dict(terms)
        if drop == "rel":
            t["rel_h"] = t["rel_w"] = t["grid"] = None
        else:
            t[drop] = None
        w, _ = want_and_tol(Q, K, V, scale, t)
        assert (np.abs(got - w) > 100 * tol).any(), f"{isa}: result does not depend on {drop}"
    # batch b must use window b % nW, not b // (B / nW)
    wrong = terms["mask"][np.arange(B) // (B // nW)]
    t = dict(terms, mask=wrong)  # B windows for B batch entries: window b for entry b
    w, _ = want_and_tol(Q, K, V, scale, t)
    assert (np.abs(got - w) > 100 * tol).any()
    # per-head bias: head h uses bias[h]
    t = dict(terms, bias=terms["bias"][::-1].copy())
    w, _ = want_and_tol(Q, K, V, scale, t)
    assert (np.abs(got - w) > 100 * tol).any()


@pytest.mark.parametrize("isa", ISAS)
def test_masked_leading_keys(isa):
    """-inf on all keys of the first key tiles, or of the whole first softmax chunk (avx2 2064
    keys, avx512 2048), of some rows: the chunked softmax must not make NaN from -inf - -inf."""
    need(isa)
    for Tk, lead in ((300, 260), (2100, 100), (2200, 2070)):
        Q, K, V, _ = make_case(1, 2, 9, Tk, 16, seed=Tk)
        mask = np.zeros((1, 9, Tk), np.float32)
        mask[0, ::2, :lead] = -np.inf
        mask[0, 1, lead + 3:] = -np.inf
        scale = 0.25
        want = sdpa64(Q, K, V, scale, float_mask(Q, None, mask, None, None, None))
        got = T.attention(isa, Q, K, V, scale, 3, mask=mask)
        assert_within(got, want, terms_tol(Q, K, V, scale, mask=mask), f"{isa} Tk={Tk}")


@pytest.mark.parametrize("isa", ISAS)
def test_far_masked_keys_and_fully_masked_rows(isa):
    """Swin's -100 window mask puts scores ~144 (log2) below the row's maximum, where 2^x is a
    denormal: the SIMD softmax gives exactly 0 there (a denormal P made every P.V FMA touching it
    take a microcode assist), which must still match the float64 reference; keys masked with
    -inf before and after the finite ones too. A row masked to the end is NaN at every level, as
    torch.softmax makes it (0 / 0; SDPA's math path returns 0 there instead, so it is not the
    reference for that row)."""
    need(isa)
    for Tk in (49, 300):
        Q, K, V, _ = make_case(2, 3, 11, Tk, 32, seed=Tk + 1)
        r = np.random.default_rng(Tk)
        mask = np.where(r.random((2, 11, Tk)) < 0.5, -100.0, 0.0).astype(np.float32)
        mask[:, :, 0] = -100.0       # the first key (the P.V accumulator's start) far below the max
        mask[1, 3, : Tk - 2] = -np.inf
        mask[0, 5, :] = -np.inf      # masked to the end
        scale = 0.2
        want = sdpa64(Q, K, V, scale, float_mask(Q, None, mask, None, None, None))
        got = T.attention(isa, Q, K, V, scale, 2, mask=mask)
        dead = np.zeros(got.shape, bool)
        dead[0::2, 5] = True         # batch b uses window b % 2
        assert np.isnan(got[dead]).all()
        g, w = np.where(dead, 0.0, got), np.where(dead, 0.0, want)
        assert np.isfinite(g).all()
        assert_within(g, w, terms_tol(Q, K, V, scale, mask=mask), f"{isa} Tk={Tk}")


@pytest.mark.parametrize("isa", ISAS)
def test_strided_and_broadcast_terms(isa):
    """bias shared by all heads through a stride-0 view ([H, T, T] = broadcast of [1, T, T]),
    bias and mask rows with a row stride > Tk (views into larger arrays)."""
    need(isa)
    B, H, T_, Dh = 4, 3, 30, 17
    Q, K, V, _ = make_case(B, H, T_, T_, Dh, seed=4)
    r = rng(44)
    big = r.standard_normal((2, T_, T_ + 11)).astype(np.float32)
    bias1 = big[:1, :, 3:3 + T_]
    bias_b = np.broadcast_to(bias1, (H, T_, T_))
    mask = np.where(r.random((2, T_, 2 * T_)) < 0.3, -100.0, 0.0).astype(np.float32)[:, :, ::1][:, :, 5:5 + T_]
    mask[:, :, 0] = 0.0
    scale = Dh ** -0.5
    want, tol = want_and_tol(Q, K, V, scale, dict(bias=np.ascontiguousarray(bias1), mask=np.ascontiguousarray(mask),
                                                  rel_h=None, rel_w=None, grid=None))
    for b in (bias1, bias_b):
        got = T.attention(isa, Q, K, V, scale, 2, bias=b, mask=mask)
        assert_within(got, want, tol, f"{isa} strided bias {b.strides}")


def test_bad_shapes_raise():
    Q, K, V, terms = make_case(4, 3, 12, 12, 8, seed=1)
    good_h = np.zeros((7, 8), np.float32)   # gh = 4
    good_w = np.zeros((5, 8), np.float32)   # gw = 3
    z = np.zeros
    bad = [
        dict(bias=z((2, 12, 12), np.float32)),            # Hb not 1 or H
        dict(bias=z((3, 12, 11), np.float32)),            # Tk mismatch
        dict(bias=z((3, 11, 12), np.float32)),            # Tq mismatch
        dict(bias=z((12, 12), np.float32)),               # rank
        dict(bias=z((3, 12, 12), np.float64)),            # dtype
        dict(bias=z((3, 12, 24), np.float32)[:, :, ::2]),  # keys not contiguous
        dict(bias=[[0.0]]),                               # not an array
        dict(mask=z((3, 12, 12), np.float32)),            # B = 4 not a multiple of nW = 3
        dict(mask=z((0, 12, 12), np.float32)),            # nW = 0
        dict(mask=z((2, 12, 13), np.float32)),
        dict(rel_h=good_h),                               # rel_w missing
        dict(rel_w=good_w),
        dict(rel_h=z((8, 8), np.float32), rel_w=good_w),  # even rows
        dict(rel_h=good_h, rel_w=z((5, 7), np.float32)),  # Dh mismatch
        dict(rel_h=z((5, 8), np.float32), rel_w=good_w),  # gh * gw = 9 != 12
        dict(rel_h=good_h, rel_w=good_w, grid=(3, 4)),    # grid disagrees with the tables
        dict(grid=(4, 3)),                                # grid without tables
        dict(rel_h=good_h.T.copy().T, rel_w=np.asfortranarray(z((5, 8), np.float32))),  # not C-contiguous
    ]
    for kw in bad:
        with pytest.raises(ValueError):
            T.attention("ref", Q, K, V, 1.0, 1, **kw)
    # rel-pos needs Tq == Tk
    with pytest.raises(ValueError):
        T.attention("ref", Q, K[:, :6], V[:, :6], 1.0, 1, rel_h=good_h, rel_w=z((3, 8), np.float32))
    # good: grid agrees
    T.attention("ref", Q, K, V, 1.0, 1, rel_h=good_h, rel_w=good_w, grid=(4, 3))
    with pytest.raises(ValueError):
        T.attention_bench("ref", 1, 1, 12, 8, 1, 0.0, rel_gh=5)
    with pytest.raises(ValueError):
        T.attention_bench("ref", 3, 1, 12, 8, 1, 0.0, mask_nw=2)


def test_attention_bench_terms_runs():
    for isa in ISAS:
        ok, _ = T.ops_isa_supported(isa)
        if ok:
            s = T.attention_bench(isa, 2, 2, 16, 16, 2, 0.0, rel_gh=4, bias=True, mask_nw=2)
            assert 0 < s < 1
