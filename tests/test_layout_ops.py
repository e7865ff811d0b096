"""The general layout and elementwise ops (Copy over any view, Pad, Roll, Concat, nearest
upsampling, broadcast Eltwise, Mean, window partition as reshape + permute) against PyTorch, at
every kernel level the CPU runs, with awkward sizes and real threads.

Each case goes through testing.graph_op: a one-op graph built by GraphBuilder over numpy
inputs as they are (transposed, sliced, broadcast: the inputs are views), so the shape rule,
the executor, the planner and the kernel are all exercised."""
import numpy as np
import pytest

from conftest import isa_or_skip

torch = pytest.importorskip("torch")
from pyvitcpp import _core, _testing  # noqa: E402

T = _testing
LEVELS = ["ref", "avx2", "avx512"]
THREADS = [1, 2, 3, 7]
ACT_SILU, ACT_GELU, ACT_RELU = 7, 1, 5


def rnd(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def run(isa, op, inputs, nth, **kw):
    return T.graph_op(isa, op, list(inputs), nth, **kw)


@pytest.mark.parametrize("isa", LEVELS)
@pytest.mark.parametrize("nth", THREADS)
def test_copy_of_views(isa, nth):
    isa_or_skip(isa)
    x = rnd(3, 5, 7, 17, seed=1)
    views = [
        x.transpose(0, 3, 1, 2),          # NHWC -> NCHW (the last axis strided: the tiled transpose)
        x.transpose(2, 0, 3, 1),
        x[:, 1:4, ::1, 3:16],             # slices
        x[1:, :, 2, :],                   # select + slice
        np.broadcast_to(x[:, :1], (3, 9, 7, 17)),  # stride 0
        np.broadcast_to(x[0, 0, 0], (4, 17)),
        x.transpose(3, 2, 1, 0)[5:9],
    ]
    for v in views:
        got = run(isa, "copy", [v], nth)
        np.testing.assert_array_equal(got, np.ascontiguousarray(v))


@pytest.mark.parametrize("isa", LEVELS)
def test_window_partition_and_patchify(isa):
    """Window partition (SAM / Swin) and patch extraction are reshape + permute + Copy; a
    6-D view collapses to the kernel's dims."""
    isa_or_skip(isa)
    B, nh, nw, w, C = 2, 2, 3, 7, 5
    x = rnd(B, nh * w, nw * w, C, seed=2)
    t = torch.from_numpy(x)
    ref = t.view(B, nh, w, nw, w, C).permute(0, 1, 3, 2, 4, 5).reshape(-1, w * w, C)
    v = x.reshape(B, nh, w, nw, w, C).transpose(0, 1, 3, 2, 4, 5)
    for nth in (1, 3):
        got = run(isa, "copy", [v], nth).reshape(-1, w * w, C)
        np.testing.assert_array_equal(got, ref.numpy())
    # unpartition back
    back = got.reshape(B, nh, nw, w, w, C).transpose(0, 1, 3, 2, 4, 5)
    np.testing.assert_array_equal(run(isa, "reshape", [back], 2, shape=[B, nh * w, nw * w, C]), x)
    # patchify: pixels [B, C, gh*p, gw*p] -> rows (gy, gx), columns (c, ky, kx)
    px = rnd(2, 3, 3 * 16, 5 * 16, seed=3)
    v = px.reshape(2, 3, 3, 16, 5, 16).transpose(0, 2, 4, 1, 3, 5)
    ref = torch.nn.functional.unfold(torch.from_numpy(px), 16, stride=16).transpose(1, 2)
    np.testing.assert_array_equal(run(isa, "copy", [v], 2).reshape(2, 15, -1), ref.numpy())


@pytest.mark.parametrize("isa", LEVELS)
@pytest.mark.parametrize("nth", [1, 3])
def test_reshape_of_strided_view_copies_when_needed(isa, nth):
    isa_or_skip(isa)
    x = rnd(4, 6, 10, seed=4)
    v = x.transpose(1, 0, 2)  # [6, 4, 10]: not viewable as [24, 10]
    got = run(isa, "reshape", [v], nth, shape=[24, -1])
    np.testing.assert_array_equal(got, torch.from_numpy(x).transpose(0, 1).reshape(24, 10).numpy())
    v = x[:, 1:5, :]  # slice along the middle: splitting it stays a view
    np.testing.assert_array_equal(run(isa, "reshape", [v], nth, shape=[4, 2, 2, 10]), v.reshape(4, 2, 2, 10))


@pytest.mark.parametrize("isa", LEVELS)
@pytest.mark.parametrize("nth", THREADS)
def test_pad(isa, nth):
    isa_or_skip(isa)
    # SAM: a [B, 9, 11, C] grid padded bottom/right to a multiple of the window 7
    x = rnd(2, 9, 11, 5, seed=5)
    got = run(isa, "pad", [x], nth, lo=[0, 0, 0, 0], hi=[0, 5, 3, 0])
    ref = torch.nn.functional.pad(torch.from_numpy(x), (0, 0, 0, 3, 0, 5))
    np.testing.assert_array_equal(got, ref.numpy())
    # every axis, both sides, a value, from a transposed view
    v = rnd(3, 4, 6, seed=6).transpose(2, 0, 1)
    got = run(isa, "pad", [v], nth, lo=[1, 0, 2], hi=[2, 3, 1], value=-1.5)
    ref = torch.nn.functional.pad(torch.from_numpy(np.ascontiguousarray(v)), (2, 1, 0, 3, 1, 2), value=-1.5)
    np.testing.assert_array_equal(got, ref.numpy())


@pytest.mark.parametrize("isa", LEVELS)
@pytest.mark.parametrize("nth", THREADS)
def test_roll(isa, nth):
    isa_or_skip(isa)
    x = rnd(2, 9, 11, 5, seed=7)
    for shifts, axes in [((-3, -3), (1, 2)), ((4, 13), (1, 2)), ((2,), (3,)), ((-1, 1), (0, 3)), ((0,), (2,))]:
        got = run(isa, "roll", [x], nth, shifts=list(shifts), axes=list(axes))
        np.testing.assert_array_equal(got, torch.roll(torch.from_numpy(x), shifts, axes).numpy())
    v = x.transpose(0, 3, 1, 2)
    got = run(isa, "roll", [v], nth, shifts=[3, -2], axes=[2, 3])
    np.testing.assert_array_equal(got, torch.roll(torch.from_numpy(np.ascontiguousarray(v)), (3, -2), (2, 3)).numpy())


@pytest.mark.parametrize("isa", LEVELS)
@pytest.mark.parametrize("nth", THREADS)
def test_concat_and_split(isa, nth):
    isa_or_skip(isa)
    a = rnd(2, 13, 7, 3, seed=8)
    for axis in range(4):
        shape_b = list(a.shape)
        shape_b[axis] = 5
        b = rnd(*shape_b, seed=9)
        c = np.broadcast_to(rnd(1, 1, 1, 1, seed=10), tuple(shape_b))  # a broadcast input
        got = run(isa, "concat", [a, b, c], nth, axis=axis)
        ref = torch.cat([torch.from_numpy(t.copy()) for t in (a, b, c)], axis)
        np.testing.assert_array_equal(got, ref.numpy())
    # split along channels = slice views (YOLOv4-tiny's route groups); here concat of the halves
    # in swapped order, from a transposed map
    x = rnd(2, 6, 5, 8, seed=11).transpose(0, 2, 1, 3)
    got = run(isa, "concat", [x[..., 4:], x[..., :4]], nth, axis=3)
    np.testing.assert_array_equal(got, np.concatenate([x[..., 4:], x[..., :4]], 3))


@pytest.mark.parametrize("isa", LEVELS)
@pytest.mark.parametrize("nth", [1, 2, 7])
def test_upsample_nearest(isa, nth):
    isa_or_skip(isa)
    x = rnd(2, 5, 7, 11, seed=12)  # NHWC
    for f in (1, 2, 3):
        got = run(isa, "upsample_nearest", [x], nth, factor=f)
        ref = torch.nn.functional.interpolate(torch.from_numpy(x).permute(0, 3, 1, 2), scale_factor=f, mode="nearest")
        np.testing.assert_array_equal(got, ref.permute(0, 2, 3, 1).numpy())


@pytest.mark.parametrize("isa", LEVELS)
@pytest.mark.parametrize("nth", THREADS)
def test_eltwise_broadcast(isa, nth):
    isa_or_skip(isa)
    a = rnd(3, 17, 33, seed=13)
    b_full, b_row, b_col = rnd(3, 17, 33, seed=14), rnd(33, seed=15), rnd(3, 17, 1, seed=16)
    at, bt = torch.from_numpy(a), torch.from_numpy(b_full)
    np.testing.assert_array_equal(run(isa, "add", [a, b_full], nth), (at + bt).numpy())
    np.testing.assert_array_equal(run(isa, "add", [a, b_row], nth, alpha=0.5),
                                  (0.5 * (at + torch.from_numpy(b_row))).numpy())
    np.testing.assert_array_equal(run(isa, "mul", [a, b_col], nth), (at * torch.from_numpy(b_col)).numpy())
    # a + b * c: the SIMD levels may fuse it into one FMA (one rounding instead of two)
    # (error bound: one rounding of the product and one of the sum, relative to the terms)
    prod = b_full.astype(np.float64) * b_row
    err = np.abs(run(isa, "add_mul", [a, b_full, b_row], nth) - (a + prod))
    assert np.all(err <= 2 ** -23 * (np.abs(a) + 2 * np.abs(prod))), err.max()
    # strided first input (a transposed view) and a broadcast second
    v = a.transpose(1, 0, 2)
    np.testing.assert_array_equal(run(isa, "add", [v, b_row], nth),
                                  (torch.from_numpy(np.ascontiguousarray(v)) + torch.from_numpy(b_row)).numpy())
    # SwiGLU: silu(first half) * second half, both halves slice views
    gu = rnd(5, 2 * 37, seed=17)
    got = run(isa, "act_mul", [gu[:, :37], gu[:, 37:]], nth, act=ACT_SILU)
    g = torch.from_numpy(gu)
    np.testing.assert_allclose(got, (torch.nn.functional.silu(g[:, :37]) * g[:, 37:]).numpy(), rtol=2e-6, atol=2e-7)
    for act, fn in [(ACT_GELU, torch.nn.functional.gelu), (ACT_RELU, torch.relu)]:
        got = run(isa, "activation", [v], nth, act=act)
        np.testing.assert_allclose(got, fn(torch.from_numpy(np.ascontiguousarray(v))).numpy(), rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("isa", LEVELS)
@pytest.mark.parametrize("nth", THREADS)
def test_mean(isa, nth):
    isa_or_skip(isa)
    x = rnd(3, 50, 300, seed=18)  # inner > one 256-wide block
    xt = torch.from_numpy(x).double()
    for axis in (0, 1, 2):
        got = run(isa, "mean", [x], nth, axis=axis)
        np.testing.assert_allclose(got, xt.mean(axis).numpy(), rtol=1e-5, atol=1e-6)
    v = x[:, 2:, :]  # ViT's mean over the patch tokens: a slice view, no copy
    np.testing.assert_allclose(run(isa, "mean", [v], nth, axis=1), xt[:, 2:].mean(1).numpy(), rtol=1e-5, atol=1e-6)
    v = x.transpose(2, 1, 0)  # the mean axis is not the kernel's layout: copied first
    np.testing.assert_allclose(run(isa, "mean", [v], nth, axis=1), xt.permute(2, 1, 0).mean(1).numpy(),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("isa", LEVELS)
def test_self_attention_over_views(isa):
    """The fused qkv split into q, k, v views (no copy) matches PyTorch's SDPA."""
    isa_or_skip(isa)
    B, Tn, H, Dh = 2, 13, 3, 8
    qkv = rnd(B, Tn, 3 * H * Dh, seed=19)
    got = run(isa, "self_attention", [qkv], 3, heads=H, scale=Dh ** -0.5)
    q, k, v = torch.from_numpy(qkv).view(B, Tn, 3, H, Dh).permute(2, 0, 3, 1, 4)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, Tn, H * Dh)
    np.testing.assert_allclose(got, ref.numpy(), rtol=1e-5, atol=1e-5)


def test_levels_agree_and_bad_requests():
    x = rnd(4, 9, 31, seed=20).transpose(2, 0, 1)
    outs = [run(lv, "roll", [x], 2, shifts=[5, -1], axes=[0, 2]) for lv in LEVELS
            if _core.isa_supported(lv)[0]]
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])
    with pytest.raises(ValueError, match="concat shapes"):
        run("ref", "concat", [rnd(2, 3), rnd(3, 3)], 1, axis=1)
    with pytest.raises(ValueError, match="broadcast"):
        run("ref", "add", [rnd(2, 3), rnd(4)], 1)
    with pytest.raises(ValueError, match="negative pad"):
        run("ref", "pad", [rnd(2, 3)], 1, lo=[-1, 0], hi=[0, 0])
    with pytest.raises(ValueError, match="unknown graph_op"):
        run("ref", "nope", [rnd(2)], 1)
    with pytest.raises(ValueError, match="strides"):
        run("ref", "copy", [rnd(5, 4)[::-1]], 1)


from op_cases import CASES  # noqa: E402  (the cases scripts/bench_ops.py times at model sizes)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@pytest.mark.parametrize("isa", LEVELS)
@pytest.mark.parametrize("nth", [1, 3])
def test_op_case(case, isa, nth):
    isa_or_skip(isa)
    inputs = case.make(np.random.default_rng(0), case.test)
    params = case.params(case.test)
    got = run(isa, case.op, inputs, nth, **params)
    want = case.ref([torch.from_numpy(np.ascontiguousarray(x)) for x in inputs], params).numpy()
    assert got.shape == want.shape
    if case.exact:
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_op_case_perf_mode_runs():
    case = CASES[0]
    inputs = case.make(np.random.default_rng(0), case.test)
    secs = T.graph_op_bench("ref", case.op, inputs, 2, 3, **case.params(case.test))
    assert 0 < secs < 10
