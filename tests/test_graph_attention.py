"""The graph's Attention op with its optional terms (GraphBuilder::attention: bias, window mask,
SAM's decomposed relative position), built over views the way SAM and Swin hand them over,
against PyTorch at every kernel level. The kernels themselves are tested at tile edges in
tests/test_attention_bias.py; this checks the op's shape rule and executor wiring (strides,
which input is which term, the batch-of-windows broadcast)."""
import numpy as np
import pytest

from conftest import isa_or_skip

torch = pytest.importorskip("torch")
from pyvitcpp import _testing as T  # noqa: E402

LEVELS = ["ref", "avx2", "avx512"]


def rnd(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def split_qkv(qkv, H):
    """A fused qkv [B, T, 3*H*Dh] as three [B, T, H, Dh] views (no copy), as the builder does."""
    B, Tn, F = qkv.shape
    r = qkv.reshape(B, Tn, 3, H, F // (3 * H))
    return r[:, :, 0], r[:, :, 1], r[:, :, 2]


def sdpa(q, k, v, scale, mask=None):
    t = [torch.from_numpy(np.ascontiguousarray(x)).transpose(1, 2).double() for x in (q, k, v)]
    m = None if mask is None else torch.from_numpy(mask).double()
    o = torch.nn.functional.scaled_dot_product_attention(*t, attn_mask=m, scale=scale)
    return o.transpose(1, 2).reshape(q.shape[0], q.shape[1], -1).float().numpy()


@pytest.mark.parametrize("isa", LEVELS)
@pytest.mark.parametrize("Hb", [1, 3])
def test_swin_window_attention(isa, Hb):
    """Batch = images x windows (window fastest); a per-head bias and a per-window mask."""
    isa_or_skip(isa)
    rng = np.random.default_rng(1)
    imgs, nW, M, H, Dh = 2, 4, 3, 3, 8
    Tn = M * M
    B = imgs * nW
    q, k, v = split_qkv(rnd(rng, B, Tn, 3 * H * Dh), H)
    bias = rnd(rng, Hb, Tn, Tn)
    mask = np.where(rng.random((nW, Tn, Tn)) < 0.3, -100.0, 0.0).astype(np.float32)
    scale = Dh ** -0.5
    got = T.graph_op(isa, "attention", [q, k, v, bias, mask], 3, scale=scale, bias=True, mask=True)
    full = np.broadcast_to(bias[None], (B, H, Tn, Tn)) + np.tile(mask, (imgs, 1, 1))[:, None]
    want = sdpa(q, k, v, scale, full)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    # the terms matter: without them the result is far off
    plain = T.graph_op(isa, "attention", [q, k, v], 1, scale=scale)
    assert np.abs(plain - want).max() > 1e-2


def sam_rel_pos_reference(q, k, v, rel_h, rel_w, gh, gw, scale):
    """segment_anything's Attention with use_rel_pos (add_decomposed_rel_pos), written out in
    torch with the same einsums and index rule."""
    B, Tn, H, Dh = q.shape
    qt = torch.from_numpy(np.ascontiguousarray(q)).double().permute(0, 2, 1, 3).reshape(B * H, Tn, Dh)
    kt = torch.from_numpy(np.ascontiguousarray(k)).double().permute(0, 2, 1, 3).reshape(B * H, Tn, Dh)
    vt = torch.from_numpy(np.ascontiguousarray(v)).double().permute(0, 2, 1, 3).reshape(B * H, Tn, Dh)
    attn = (qt * scale) @ kt.transpose(-2, -1)
    coords_h = torch.arange(gh)[:, None] - torch.arange(gh)[None, :] + (gh - 1)
    coords_w = torch.arange(gw)[:, None] - torch.arange(gw)[None, :] + (gw - 1)
    Rh = torch.from_numpy(rel_h).double()[coords_h]
    Rw = torch.from_numpy(rel_w).double()[coords_w]
    r_q = qt.reshape(B * H, gh, gw, Dh)
    rh = torch.einsum("bhwc,hkc->bhwk", r_q, Rh)
    rw = torch.einsum("bhwc,wkc->bhwk", r_q, Rw)
    attn = (attn.view(B * H, gh, gw, gh, gw) + rh[:, :, :, :, None] + rw[:, :, :, None, :]).view(B * H, Tn, Tn)
    o = attn.softmax(-1) @ vt
    return o.view(B, H, Tn, Dh).permute(0, 2, 1, 3).reshape(B, Tn, H * Dh).float().numpy()


@pytest.mark.parametrize("isa", LEVELS)
@pytest.mark.parametrize("grid", [(1, 1), (3, 5), (7, 7)])
def test_sam_decomposed_rel_pos(isa, grid):
    isa_or_skip(isa)
    rng = np.random.default_rng(2)
    gh, gw = grid
    B, H, Dh = 2, 3, 16
    q, k, v = split_qkv(rnd(rng, B, gh * gw, 3 * H * Dh), H)
    rel_h, rel_w = rnd(rng, 2 * gh - 1, Dh, scale=0.5), rnd(rng, 2 * gw - 1, Dh, scale=0.5)
    scale = Dh ** -0.5
    got = T.graph_op(isa, "attention", [q, k, v, rel_h, rel_w], 2, scale=scale, grid=[gh, gw])
    want = sam_rel_pos_reference(q, k, v, rel_h, rel_w, gh, gw, scale)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-5)
    if gh * gw > 1:
        plain = T.graph_op(isa, "attention", [q, k, v], 1, scale=scale)
        assert np.abs(plain - want).max() > 1e-2


def test_attention_terms_bad_shapes():
    rng = np.random.default_rng(3)
    q, k, v = split_qkv(rnd(rng, 4, 6, 3 * 2 * 4), 2)
    with pytest.raises(ValueError, match="bias"):
        T.graph_op("ref", "attention", [q, k, v, rnd(rng, 3, 6, 6)], 1, scale=0.5, bias=True)
    with pytest.raises(ValueError, match="windows"):
        T.graph_op("ref", "attention", [q, k, v, rnd(rng, 3, 6, 6)], 1, scale=0.5, mask=True)
    with pytest.raises(ValueError, match="rel"):
        T.graph_op("ref", "attention", [q, k, v, rnd(rng, 5, 4), rnd(rng, 3, 4)], 1, scale=0.5, grid=[2, 3])
