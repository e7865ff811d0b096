"""Conv / pooling kernels and the CNN activations at every ISA level.

Each SIMD kernel is compared with its scalar reference twin (kernels/ref/conv_ref.cpp) and both
with PyTorch evaluated in float64, at sizes around the vector widths (channels 1, 7, 8, 9, 16,
17, 31, 32, 33, 64, 65, 97: tails, exact tiles, several tiles), odd image sizes, strides 1-3,
dilation, symmetric and TF "SAME" padding. Error model: a sum of K products in fp32 is off by
at most about K * u * sum|x w| (u = 2^-24); the bound is taken per element from the float64
evaluation of the same conv on |x| and |w|.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pyvitcpp import _testing as T
from conftest import isa_or_skip

LEVELS = ["ref", "avx2", "avx512"]
U = 2.0 ** -24
ACT = {"none": 0, "relu": 5, "relu6": 6, "silu": 7, "leaky_relu": 8, "hard_swish": 9}
TORCH_ACT = {
    "none": lambda t: t,
    "relu": F.relu,
    "relu6": F.relu6,
    "silu": F.silu,
    "leaky_relu": F.leaky_relu,  # default negative_slope 0.01
    "hard_swish": F.hardswish,
}


def rng(seed):
    return np.random.default_rng(seed)


def same_pad(size, k, s, d=1):
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def pad_nchw(x, k, s, d, pad, same):
    """Explicit zero padding as torch would need it (TF SAME is asymmetric)."""
    if same:
        pt, pb = same_pad(x.shape[2], k, s, d)
        pl, pr = same_pad(x.shape[3], k, s, d)
    else:
        pt = pb = pl = pr = pad
    return F.pad(x, (pl, pr, pt, pb))


def torch_conv64(x_nhwc, w, bias, s, d, pad, same, groups):
    x = torch.from_numpy(x_nhwc.astype(np.float64)).permute(0, 3, 1, 2)
    wt = torch.from_numpy(w.astype(np.float64))
    k = w.shape[2]
    xp = pad_nchw(x, k, s, d, pad, same)
    y = F.conv2d(xp, wt, None, stride=s, dilation=d, groups=groups)
    mag = F.conv2d(pad_nchw(x.abs(), k, s, d, pad, same), wt.abs(), None, stride=s, dilation=d, groups=groups)
    if bias is not None:
        b = torch.from_numpy(bias.astype(np.float64))[None, :, None, None]
        y = y + b
        mag = mag + b.abs()
    return y.permute(0, 2, 3, 1).numpy(), mag.permute(0, 2, 3, 1).numpy()


def apply_act64(y, name):
    return TORCH_ACT[name](torch.from_numpy(y)).numpy()


def check_close(got, want, mag, K, what, extra=0.0):
    # act's Lipschitz constant is <= 1.1 for all of these; 2 K u covers the sum, the act's own
    # rounding is a few ulp of the value.
    tol = 2.0 * K * U * mag + 8 * U * np.abs(want) + 1e-30 + extra
    err = np.abs(got.astype(np.float64) - want)
    bad = err > tol
    assert not bad.any(), (f"{what}: {bad.sum()} of {bad.size} elements off; worst "
                           f"{err.max():.3g} (tol there {tol.ravel()[np.argmax(err)]:.3g})")


# ------------------------------------------------------------------------------ depthwise
DW_CASES = [
    # (B, H, W, C, k, stride, dil, pad, same)
    (1, 7, 9, 1, 3, 1, 1, 1, False),
    (2, 8, 8, 7, 3, 1, 1, 1, False),
    (1, 9, 7, 8, 3, 2, 1, 0, True),
    (1, 10, 11, 9, 5, 2, 1, 0, True),
    (1, 5, 6, 16, 5, 1, 1, 2, False),
    (1, 6, 5, 17, 3, 3, 1, 1, False),
    (1, 11, 11, 31, 3, 1, 2, 2, False),
    (2, 7, 7, 32, 5, 1, 1, 0, True),
    (1, 13, 12, 33, 3, 2, 1, 1, False),
    (1, 8, 9, 64, 3, 2, 1, 0, True),
    (1, 6, 7, 65, 5, 2, 1, 0, True),
    (1, 4, 4, 97, 3, 1, 1, 1, False),
    (1, 3, 3, 40, 5, 1, 1, 0, True),  # kernel larger than the image
    # wide rows: the avx2 level's 4-pixel interior path, with every channel tail
    (1, 3, 20, 17, 3, 1, 1, 1, False),
    (1, 4, 23, 40, 5, 2, 1, 0, True),
    (1, 3, 19, 8, 3, 1, 2, 2, False),
    (2, 2, 30, 3, 3, 3, 1, 1, False),
    (1, 2, 17, 48, 5, 1, 1, 2, False),
]


@pytest.mark.parametrize("isa", LEVELS)
@pytest.mark.parametrize("case", DW_CASES, ids=lambda c: "x".join(map(str, c)))
def test_dwconv_vs_torch_and_ref(isa, case):
    isa_or_skip(isa)
    B, H, W, C, k, s, d, pad, same = case
    g = rng(hash(case) % 2**32)
    x = g.standard_normal((B, H, W, C)).astype(np.float32)
    w = (g.standard_normal((C, 1, k, k)) / k).astype(np.float32)
    bias = (0.1 * g.standard_normal(C)).astype(np.float32)
    wt = np.ascontiguousarray(w.reshape(C, k * k).T)
    for act in ("none", "relu6"):
        want, mag = torch_conv64(x, w, bias, s, d, pad, same, groups=C)
        want = apply_act64(want, act)
        got = T.dwconv2d(isa, x, wt, bias, k, stride=s, dilation=d, pad=pad, same=same, act=ACT[act], nth=3)
        assert got.shape == want.shape
        check_close(got, want, mag, k * k, f"{isa} dwconv {case} {act}")
        ref = T.dwconv2d("ref", x, wt, bias, k, stride=s, dilation=d, pad=pad, same=same, act=ACT[act], nth=1)
        check_close(got, ref.astype(np.float64), mag, k * k, f"{isa} vs ref dwconv {case} {act}")
    # no bias, one thread and many threads give the same bits
    a = T.dwconv2d(isa, x, wt, None, k, stride=s, dilation=d, pad=pad, same=same, nth=1)
    b = T.dwconv2d(isa, x, wt, None, k, stride=s, dilation=d, pad=pad, same=same, nth=5)
    np.testing.assert_array_equal(a, b)


def test_same_padding_matches_timm():
    from timm.layers.padding import get_same_padding

    for size in (1, 2, 7, 112, 224, 225, 31):
        for k, s, d in ((3, 1, 1), (3, 2, 1), (5, 2, 1), (1, 2, 1), (3, 1, 2), (5, 3, 1)):
            out, pad0 = T.same_padding(size, k, s, d)
            total = get_same_padding(size, k, s, d)
            assert out == -(-size // s)
            assert pad0 == total // 2, (size, k, s, d)


def test_dwconv_special_values():
    isa_levels = [lv for lv in LEVELS if T.__name__ and _supported(lv)]
    x = np.zeros((1, 4, 4, 19), np.float32)
    x[0, 1, 1, 3] = np.nan
    x[0, 2, 2, 5] = np.inf
    x[0, 0, 0, 7] = 1e30
    wt = np.full((9, 19), 0.5, np.float32)
    outs = [T.dwconv2d(lv, x, wt, None, 3, pad=1) for lv in isa_levels]
    for o in outs:
        assert np.isnan(o[0, :3, :3, 3]).all() and not np.isnan(o[..., 4]).any()
        assert np.isposinf(o[0, 1:, 1:, 5]).all()
        np.testing.assert_array_equal(o, outs[0])


def _supported(isa):
    from pyvitcpp import _core
    return _core.isa_supported(isa)[0]


def test_dwconv_bad_args():
    x = np.zeros((1, 4, 4, 3), np.float32)
    with pytest.raises(ValueError, match="wt must have shape"):
        T.dwconv2d("ref", x, np.zeros((9, 4), np.float32), None, 3)
    with pytest.raises(ValueError, match="float32"):
        T.dwconv2d("ref", x.astype(np.float64), np.zeros((9, 3), np.float32), None, 3)
    with pytest.raises(ValueError, match="does not fit"):
        T.dwconv2d("ref", x, np.zeros((49, 3), np.float32), None, 7)


# ------------------------------------------------------------------------------ general conv
CONV_CASES = [
    # (B, H, W, C, OC, k, stride, dil, pad, same, groups)
    (1, 7, 9, 3, 5, 3, 2, 1, 0, True, 1),
    (2, 8, 8, 3, 16, 3, 2, 1, 1, False, 1),
    (1, 11, 13, 3, 17, 7, 2, 1, 3, False, 1),  # ResNet stem
    (1, 9, 9, 16, 33, 3, 1, 1, 1, False, 1),
    (1, 6, 7, 31, 8, 1, 2, 1, 0, False, 1),    # ResNet downsample
    (1, 10, 9, 12, 12, 3, 1, 2, 2, False, 3),  # grouped, dilated
    (1, 5, 5, 8, 16, 3, 1, 1, 0, True, 4),
    (2, 9, 10, 33, 20, 3, 1, 1, 1, False, 1),  # K = 297: avx2 K blocks of 149 end inside a tap
    (1, 7, 6, 20, 7, 3, 2, 1, 1, False, 1),    # K = 180: avx512 K blocks of 90 end inside a tap
]


@pytest.mark.parametrize("isa", ["direct"] + LEVELS)
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: "x".join(map(str, c)))
def test_conv2d_vs_torch(isa, case):
    if isa != "direct":
        isa_or_skip(isa)
    B, H, W, C, OC, k, s, d, pad, same, groups = case
    g = rng(hash(case) % 2**32)
    x = g.standard_normal((B, H, W, C)).astype(np.float32)
    w = (g.standard_normal((OC, C // groups, k, k)) / np.sqrt(k * k * C / groups)).astype(np.float32)
    bias = (0.1 * g.standard_normal(OC)).astype(np.float32)
    want, mag = torch_conv64(x, w, bias, s, d, pad, same, groups)
    K = k * k * C // groups
    for act in ("none", "relu", "silu"):
        got = T.conv2d(isa, x, w, bias, stride=s, dilation=d, pad=pad, same=same, groups=groups,
                       act=ACT[act], nth=2)
        check_close(got, apply_act64(want, act), mag, K, f"{isa} conv {case} {act}")
    # residual after the activation (the Linear epilogue's order)
    res = g.standard_normal(want.shape).astype(np.float32)
    got = T.conv2d(isa, x, w, bias, stride=s, dilation=d, pad=pad, same=same, groups=groups,
                   act=ACT["relu"], residual=res, nth=3)
    check_close(got, apply_act64(want, "relu") + res, mag + np.abs(res), K, f"{isa} conv+res {case}")
    # the same conv through an Im2col buffer instead of the GEMM's gather (both run in graphs)
    got = T.conv2d(isa, x, w, bias, stride=s, dilation=d, pad=pad, same=same, groups=groups,
                   act=ACT["relu"], gather=False, nth=2)
    check_close(got, apply_act64(want, "relu"), mag, K, f"{isa} conv im2col buffer {case}")
    # NCHW input (the stem reads the pixels directly)
    x_nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    got = T.conv2d(isa, x_nchw, w, bias, stride=s, dilation=d, pad=pad, same=same, groups=groups, nchw=True)
    check_close(got, want, mag, K, f"{isa} conv nchw {case}")


# The direct conv (kernels/conv_direct_driver.h): what the avx2/avx512 GEMMs run for a gathered
# conv with F32 weights, >= 8 channels a group and pixels not 4 KiB apart. Awkward sizes: odd
# channel counts, images smaller than the kernel, tiles of pixels that cross image rows and
# images, strides 2-3, dilation, SAME padding, output-channel tails of every panel width.
DIRECT_CASES = [
    # (B, H, W, C, OC, k, stride, dil, pad, same)
    (1, 1, 1, 8, 1, 3, 1, 1, 1, False),     # one pixel: only the centre tap is inside
    (2, 3, 5, 9, 33, 3, 1, 1, 1, False),    # 30 pixels: tiles cross rows and images
    (1, 7, 7, 17, 64, 3, 2, 1, 1, False),   # ResNet-style strided 3x3
    (3, 5, 4, 24, 40, 1, 2, 1, 0, False),   # 1x1 stride 2 (downsample)
    (1, 9, 11, 13, 31, 5, 1, 2, 0, True),   # dilated, SAME
    (2, 14, 14, 32, 70, 3, 1, 1, 1, False),  # 392 pixels: many tiles, N tail 6
    (1, 2, 2, 64, 16, 7, 1, 1, 3, False),   # kernel larger than the image: taps skipped
    (1, 6, 6, 8, 12, 3, 3, 1, 0, False),    # stride 3, no padding
    (1, 7, 7, 96, 48, 3, 1, 1, 1, True),    # 49 pixels (ResNet layer 4 at batch 1)
    (2, 3, 3, 1024, 20, 1, 1, 1, 0, False),  # 4 KiB between pixels: stays on the gather
]


@pytest.mark.parametrize("isa", LEVELS)
@pytest.mark.parametrize("case", DIRECT_CASES, ids=lambda c: "x".join(map(str, c)))
def test_conv_direct_vs_ref(isa, case):
    """Each level's conv (direct where allowed) against the scalar specification and float64
    torch, with every epilogue; thread splits give the same bits; the forced gather agrees."""
    isa_or_skip(isa)
    B, H, W, C, OC, k, s, d, pad, same = case
    g = rng(sum(case) + 17)
    x = g.standard_normal((B, H, W, C)).astype(np.float32)
    w = (g.standard_normal((OC, C, k, k)) / np.sqrt(k * k * C)).astype(np.float32)
    bias = (0.1 * g.standard_normal(OC)).astype(np.float32)
    want, mag = torch_conv64(x, w, bias, s, d, pad, same, 1)
    K = k * k * C
    kw = dict(stride=s, dilation=d, pad=pad, same=same)
    for act in ("none", "relu", "silu", "leaky_relu"):
        spec = T.conv2d("direct", x, w, bias, act=ACT[act], nth=1, **kw)
        outs = [T.conv2d(isa, x, w, bias, act=ACT[act], nth=nth, **kw) for nth in (1, 2, 3, 7)]
        for o in outs[1:]:
            np.testing.assert_array_equal(o, outs[0])  # the split does not change a sum's order
        check_close(outs[0], apply_act64(want, act), mag, K, f"{isa} conv {case} {act}")
        check_close(outs[0], spec.astype(np.float64), mag, K, f"{isa} vs spec {case} {act}", extra=1e-30)
        forced = T.conv2d(isa, x, w, bias, act=ACT[act], nth=2, direct=False, **kw)
        check_close(outs[0], forced.astype(np.float64), mag, K, f"{isa} direct vs gather {case} {act}")
    res = g.standard_normal(want.shape).astype(np.float32)
    got = T.conv2d(isa, x, w, None, act=ACT["relu6"], residual=res, nth=3, **kw)
    want_nb, mag_nb = torch_conv64(x, w, None, s, d, pad, same, 1)
    check_close(got, apply_act64(want_nb, "relu6") + res, mag_nb + np.abs(res), K, f"{isa} conv+res {case}")


# NHWC row tiles of the direct conv (conv_nhwc_row_ukernel): output pixels of one row whose taps
# all fall inside the image columns, pixel stride C x stride of 16, 32 or 64 floats (YOLO's 16-
# and 32-channel convs), 24 pixels a tile for narrow panels on avx512 (12 on avx2), the GEMM's MR
# otherwise; the row's edges and remainder take the general microkernel. Widths leave
# remainders of every kind; a grouped conv reads a channel slice (pixel stride C, cg = C / 2).
ROW_CASES = [
    # (B, H, W, C, OC, k, stride, dil, pad, same, groups)
    (2, 5, 61, 16, 16, 3, 1, 1, 1, False, 1),   # narrow: 59 interior pixels = 2 x 24 + 11
    (1, 7, 50, 16, 5, 3, 1, 1, 1, False, 1),    # narrow panel of 5 outputs
    (2, 6, 53, 16, 32, 3, 2, 1, 1, False, 1),   # stride 2 (pixel stride 32), wide panel
    (1, 9, 40, 32, 48, 3, 1, 1, 1, False, 1),   # a wide and a narrow panel: both at MR pixels
    (1, 4, 70, 64, 16, 3, 1, 1, 1, False, 1),   # pixel stride 64, narrow
    (1, 5, 30, 32, 16, 3, 2, 2, 2, False, 1),   # dilation 2, stride 2
    (1, 3, 60, 16, 24, 5, 1, 1, 2, True, 1),    # 5x5 SAME, tail panel of 24 - 16
    (1, 5, 40, 32, 32, 3, 1, 1, 1, False, 2),   # groups of 16 channels at pixel stride 32
    (1, 2, 9, 16, 16, 3, 1, 1, 1, False, 1),    # rows narrower than one tile: no row tiles
]


@pytest.mark.parametrize("isa", LEVELS)
@pytest.mark.parametrize("case", ROW_CASES, ids=lambda c: "x".join(map(str, c)))
@pytest.mark.parametrize("f16", [False, True])
def test_conv_direct_row_tiles(isa, case, f16):
    """The row microkernel gives the general microkernel's bits (same FMA chain per output) for
    every epilogue and thread split (splits start mid-row), and torch's values."""
    isa_or_skip(isa)
    B, H, W, C, OC, k, s, d, pad, same, groups = case
    g = rng(sum(case) + 29)
    x = g.standard_normal((B, H, W, C)).astype(np.float32)
    w = (g.standard_normal((OC, C // groups, k, k)) / np.sqrt(k * k * C / groups)).astype(np.float32)
    if f16:
        w = w.astype(np.float16).astype(np.float32)
    bias = (0.1 * g.standard_normal(OC)).astype(np.float32)
    want, mag = torch_conv64(x, w, bias, s, d, pad, same, groups)
    K = k * k * C // groups
    kw = dict(stride=s, dilation=d, pad=pad, same=same, groups=groups, f16=f16)
    res = g.standard_normal(want.shape).astype(np.float32)
    for act in ("none", "silu", "relu"):
        for r in (None, res):
            general = T.conv2d(isa, x, w, bias, act=ACT[act], residual=r, nth=1, row=False, **kw)
            for nth in (1, 2, 3, 7):
                got = T.conv2d(isa, x, w, bias, act=ACT[act], residual=r, nth=nth, **kw)
                np.testing.assert_array_equal(got, general, err_msg=f"{isa} {case} {act} nth={nth}")
            extra = 0.0 if r is None else np.abs(r)
            check_close(got, apply_act64(want, act) + (0.0 if r is None else r), mag + extra, K,
                        f"{isa} row tiles {case} {act}")
    if groups == 1:  # the scalar specification (ungrouped only)
        spec = T.conv2d("direct", x, w, bias, act=ACT["silu"], nth=1, stride=s, dilation=d, pad=pad, same=same)
        got = T.conv2d(isa, x, w, bias, act=ACT["silu"], nth=2, **kw)
        check_close(got, spec.astype(np.float64), mag, K, f"{isa} row tiles vs spec {case}", extra=1e-30)


# NCHW pixels (the stem): the SIMD levels run the gathered conv directly, one pointer per
# (tap, channel); odd sizes, strides, a kernel larger than the image, padding on every side.
NCHW_CASES = [
    # (B, H, W, C, OC, k, stride, dil, pad, same)
    (2, 15, 13, 3, 16, 3, 2, 1, 1, False),   # yolov8n / EfficientNet stem, odd sizes
    (1, 13, 17, 3, 64, 7, 2, 1, 3, False),   # ResNet stem (two panels)
    (2, 9, 9, 1, 33, 3, 1, 1, 1, False),     # one channel, N tail 1
    (1, 2, 3, 4, 5, 5, 1, 1, 2, False),      # kernel larger than the image
    (3, 7, 6, 3, 40, 3, 1, 2, 0, True),      # dilated, SAME
    (1, 11, 10, 3, 16, 6, 2, 1, 2, False),   # 6x6 stride 2 (YOLOv5-style stem)
]


@pytest.mark.parametrize("isa", LEVELS)
@pytest.mark.parametrize("case", NCHW_CASES, ids=lambda c: "x".join(map(str, c)))
@pytest.mark.parametrize("f16", [False, True])
def test_conv_nchw_direct(isa, case, f16):
    """NCHW input through the GEMM's gather (direct on the SIMD levels) against float64 torch,
    the scalar spec, the forced gathering GEMM and the Im2col buffer; thread splits give the
    same bits."""
    isa_or_skip(isa)
    B, H, W, C, OC, k, s, d, pad, same = case
    g = rng(sum(case) + 41 + f16)
    x = g.standard_normal((B, H, W, C)).astype(np.float32)
    w = (g.standard_normal((OC, C, k, k)) / np.sqrt(k * k * C)).astype(np.float32)
    if f16:
        w = w.astype(np.float16).astype(np.float32)
    bias = (0.1 * g.standard_normal(OC)).astype(np.float32)
    want, mag = torch_conv64(x, w, bias, s, d, pad, same, 1)
    K = k * k * C
    xn = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    kw = dict(stride=s, dilation=d, pad=pad, same=same, nchw=True, f16=f16)
    for act in ("none", "silu"):
        outs = [T.conv2d(isa, xn, w, bias, act=ACT[act], nth=nth, **kw) for nth in (1, 2, 5)]
        for o in outs[1:]:
            np.testing.assert_array_equal(o, outs[0])
        check_close(outs[0], apply_act64(want, act), mag, K, f"{isa} nchw {case} {act}")
        spec = T.conv2d("direct", xn, w, bias, act=ACT[act], nth=1, stride=s, dilation=d, pad=pad, same=same,
                        nchw=True)
        check_close(outs[0], spec.astype(np.float64), mag, K, f"{isa} nchw vs spec {case} {act}", extra=1e-30)
        for alt in (dict(direct=False), dict(gather=False)):
            o = T.conv2d(isa, xn, w, bias, act=ACT[act], nth=2, **alt, **kw)
            check_close(outs[0], o.astype(np.float64), mag, K, f"{isa} nchw vs {alt} {case} {act}")
    res = g.standard_normal(want.shape).astype(np.float32)
    got = T.conv2d(isa, xn, w, bias, act=ACT["relu"], residual=res, nth=3, **kw)
    check_close(got, apply_act64(want, "relu") + res, mag + np.abs(res), K, f"{isa} nchw+res {case}")


@pytest.mark.parametrize("isa", LEVELS)
@pytest.mark.parametrize("case", DIRECT_CASES[:7], ids=lambda c: "x".join(map(str, c)))
def test_conv_direct_f16_weights(isa, case):
    """F16 weights (the converter's default): the conv widens them as it loads; against the spec
    on the same weights rounded to fp16, and the forced gather."""
    isa_or_skip(isa)
    B, H, W, C, OC, k, s, d, pad, same = case
    g = rng(sum(case) + 29)
    x = g.standard_normal((B, H, W, C)).astype(np.float32)
    w = (g.standard_normal((OC, C, k, k)) / np.sqrt(k * k * C)).astype(np.float16).astype(np.float32)
    bias = (0.1 * g.standard_normal(OC)).astype(np.float32)
    want, mag = torch_conv64(x, w, bias, s, d, pad, same, 1)
    kw = dict(stride=s, dilation=d, pad=pad, same=same, act=ACT["silu"])
    got = T.conv2d(isa, x, w, bias, nth=3, f16=True, **kw)
    np.testing.assert_array_equal(got, T.conv2d(isa, x, w, bias, nth=1, f16=True, **kw))
    check_close(got, apply_act64(want, "silu"), mag, k * k * C, f"{isa} f16 conv {case}")
    forced = T.conv2d(isa, x, w, bias, nth=2, f16=True, direct=False, **kw)
    check_close(got, forced.astype(np.float64), mag, k * k * C, f"{isa} f16 direct vs gather {case}")


def test_conv2d_bad_args():
    x = np.zeros((1, 4, 4, 6), np.float32)
    with pytest.raises(ValueError, match="groups"):
        T.conv2d("ref", x, np.zeros((4, 6, 3, 3), np.float32), None, groups=4)
    with pytest.raises(ValueError, match="C/groups"):
        T.conv2d("ref", x, np.zeros((4, 5, 3, 3), np.float32), None)
    with pytest.raises(ValueError, match="residual"):
        T.conv2d("ref", x, np.zeros((4, 6, 3, 3), np.float32), None, pad=1, residual=np.zeros((1, 3, 3, 4), np.float32))
    with pytest.raises(ValueError, match="unknown|isa|level"):
        T.conv2d("sse9", x, np.zeros((4, 6, 3, 3), np.float32), None)


# ------------------------------------------------------------------------------ pooling
POOL_CASES = [
    # (B, H, W, C, k, stride, pad, same)
    (1, 8, 8, 7, 3, 2, 1, False),   # ResNet max pool
    (2, 7, 9, 16, 3, 2, 1, False),
    (1, 9, 9, 17, 2, 2, 0, False),
    (1, 5, 6, 33, 3, 1, 1, False),
    (1, 10, 11, 65, 3, 2, 0, True),
]


@pytest.mark.parametrize("isa", LEVELS)
@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: "x".join(map(str, c)))
def test_pool2d_vs_torch(isa, case):
    isa_or_skip(isa)
    B, H, W, C, k, s, pad, same = case
    x = rng(7).standard_normal((B, H, W, C)).astype(np.float32)
    xt = torch.from_numpy(x).permute(0, 3, 1, 2)
    if same:
        xt_max = pad_nchw(xt, k, s, 1, 0, True)
        xt_max = torch.where(xt_max == 0, torch.tensor(-np.inf), xt_max)  # padding never wins a max
        want_max = F.max_pool2d(xt_max, k, s)
    else:
        want_max = F.max_pool2d(xt, k, s, pad)
    got = T.pool2d(isa, x, k, s, pad=pad, same=same, is_max=True, nth=3)
    np.testing.assert_array_equal(got, want_max.permute(0, 2, 3, 1).numpy())
    if not same:
        for cip in (True, False):
            want = F.avg_pool2d(xt.double(), k, s, pad, count_include_pad=cip).permute(0, 2, 3, 1).numpy()
            got = T.pool2d(isa, x, k, s, pad=pad, is_max=False, count_include_pad=cip, nth=2)
            np.testing.assert_allclose(got, want, rtol=0, atol=4 * k * k * U * np.abs(x).max())
            ref = T.pool2d("ref", x, k, s, pad=pad, is_max=False, count_include_pad=cip)
            np.testing.assert_array_equal(got, ref)  # same order of additions, true division


def test_maxpool_nan_propagates():
    for isa in LEVELS:
        if not _supported(isa):
            continue
        x = np.zeros((1, 4, 4, 9), np.float32)
        x[0, 1, 1, 2] = np.nan
        x[0, 0, 0, 3] = np.nan
        x[0, 2, 2, 3] = 5.0
        y = T.pool2d(isa, x, 3, 2, pad=1)
        assert np.isnan(y[0, 0, 0, 2]) and np.isnan(y[0, 0, 0, 3]) and np.isnan(y[0, 1, 1, 2])
        assert y[0, 1, 1, 3] == 5.0


# ------------------------------------------------------------------------------ activations
SPECIAL = np.array([0.0, -0.0, 1.0, -1.0, 3.0, -3.0, 6.0, 6.0001, 5.9999, -2.9999, 1e-30, -1e-30, 88.0, -88.0,
                    100.5, -100.5, 300.0, -300.0, np.inf, -np.inf], np.float32)


def act_inputs():
    g = rng(11)
    return np.concatenate([SPECIAL, (g.standard_normal(997) * 4).astype(np.float32),
                           np.linspace(-10, 10, 203, dtype=np.float32)])


@pytest.mark.parametrize("isa", LEVELS)
@pytest.mark.parametrize("act", ["relu6", "silu", "leaky_relu", "hard_swish"])
def test_new_activations_vs_torch(isa, act):
    isa_or_skip(isa)
    x = act_inputs()
    want = TORCH_ACT[act](torch.from_numpy(x)).numpy()
    want64 = TORCH_ACT[act](torch.from_numpy(x.astype(np.float64))).numpy()
    got = T.activation(isa, x, ACT[act], 2)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    if act in ("relu6", "leaky_relu", "hard_swish"):
        np.testing.assert_array_equal(got, want)  # same float operations as PyTorch's kernel
    else:
        fin = np.isfinite(want64)
        np.testing.assert_array_equal(got[~fin], want[~fin])
        err = np.abs(got[fin] - want64[fin])
        assert (err <= 4 * U * np.abs(want64[fin]) + 1e-37).all(), err.max()
    nan = T.activation(isa, np.array([np.nan] * 9, np.float32), ACT[act], 1)
    assert np.isnan(nan).all()


@pytest.mark.parametrize("isa", LEVELS)
@pytest.mark.parametrize("act", ["relu6", "silu", "leaky_relu", "hard_swish"])
def test_gemm_epilogue_new_activations(isa, act):
    """A Linear fuses the CNN activations: GEMM epilogue vs torch on the same fp32 product. N = 16,
    5 and 40 end in panels of at most one vector of valid columns (avx512 16, avx2 8), whose
    epilogue applies the activation to that vector only."""
    isa_or_skip(isa)
    for N in (29, 16, 5, 40):
        _gemm_epilogue_act_case(isa, act, N)


def _gemm_epilogue_act_case(isa, act, N):
    g = rng(5 + N)
    M, K = 37, 19
    X = (g.standard_normal((M, K)) * 2).astype(np.float32)
    W = g.standard_normal((N, K)).astype(np.float32)
    b = g.standard_normal(N).astype(np.float32)
    Y = T.gemm(isa, X, W, b, ACT[act], None, False, 2)
    lin = X.astype(np.float64) @ W.T.astype(np.float64) + b
    mag = np.abs(X).astype(np.float64) @ np.abs(W).T.astype(np.float64) + np.abs(b)
    want = TORCH_ACT[act](torch.from_numpy(lin)).numpy()
    tol = 1.2 * 2 * K * U * mag + 8 * U * np.abs(want) + 1e-30
    assert (np.abs(Y - want) <= tol).all()
    lin_ref = T.gemm("ref", X, W, b, 0, None, False, 1)
    act_only = T.activation("ref", np.ascontiguousarray(lin_ref).ravel(), ACT[act], 1).reshape(M, N)
    np.testing.assert_array_equal(T.gemm("ref", X, W, b, ACT[act], None, False, 1), act_only)


# ------------------------------------------------------------------------------ Winograd
# 3x3 stride-1 convs through Winograd F(4x4, 3x3) (kernels/conv_winograd_driver.h) on the SIMD
# levels: output sizes that leave partial 4 x 4 tiles, tiles crossing images, padding 0 and 1,
# a channel slice of a wider map (groups), more tiles than one block (two blocks per thread),
# panels of one vector (16 outputs) and a tail panel (80 = 2 x 32 + 16), long channel sums, and
# channel counts whose full row tiles run the row microkernel (16, 32, 64, 128, 256) or not (48).
WINO_CASES = [
    # (B, H, W, C, OC, pad, groups)
    (1, 7, 9, 16, 32, 1, 1),
    (2, 13, 6, 32, 48, 1, 1),
    (1, 10, 10, 16, 16, 0, 1),
    (3, 5, 11, 16, 80, 1, 1),
    (1, 9, 10, 64, 32, 1, 2),
    (2, 40, 41, 16, 16, 1, 1),
    (1, 8, 8, 256, 16, 1, 1),
    (1, 15, 14, 48, 64, 1, 1),
    (1, 20, 20, 128, 32, 1, 1),   # rows of V 128 floats apart: full row tiles on the row microkernel
    (2, 12, 12, 256, 16, 1, 1),   # 256 apart, one panel of 16, U over 1 MiB
]
# The transforms multiply by up to 5 (input) and 8 (output) and sum 6 terms each way, so the
# rounding error is about 10x the direct conv's: over these cases, both levels, F32 and F16
# weights, the worst element reached 0.16 of the direct conv's bound (2 K u sum|x w|, which is
# loose: the direct conv's own worst was 0.015 of it). The test allows 4x that bound; a wrong
# coefficient, a mis-indexed tile or a lost edge is off by O(1) of the output and fails by
# orders of magnitude.
WINO_FACTOR = 4.0


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
@pytest.mark.parametrize("case", WINO_CASES, ids=lambda c: "x".join(map(str, c)))
@pytest.mark.parametrize("f16", [False, True])
def test_conv_winograd_vs_torch(isa, case, f16):
    """The Winograd path against float64 torch within its error model, for every epilogue and
    with a residual; thread splits give the same bits; it does run (its bits differ from the
    direct conv's, which stays within the tighter direct bound)."""
    isa_or_skip(isa)
    B, H, W, C, OC, pad, groups = case
    g = rng(sum(case) + 41)
    x = g.standard_normal((B, H, W, C)).astype(np.float32)
    w = (g.standard_normal((OC, C // groups, 3, 3)) / np.sqrt(9 * C / groups)).astype(np.float32)
    if f16:
        w = w.astype(np.float16).astype(np.float32)
    bias = (0.1 * g.standard_normal(OC)).astype(np.float32)
    want, mag = torch_conv64(x, w, bias, 1, 1, pad, False, groups)
    K = 9 * C // groups
    kw = dict(pad=pad, groups=groups, f16=f16)
    res = g.standard_normal(want.shape).astype(np.float32)
    for act in ("none", "silu", "relu", "leaky_relu"):
        for r in (None, res):
            outs = [T.conv2d(isa, x, w, bias, act=ACT[act], residual=r, nth=nth, winograd=True, **kw)
                    for nth in (1, 2, 3, 7)]
            for o in outs[1:]:
                np.testing.assert_array_equal(o, outs[0], err_msg=f"{isa} {case} {act}: thread split")
            extra = 0.0 if r is None else np.abs(r)
            want_a = apply_act64(want, act) + (0.0 if r is None else r)
            check_close(outs[0], want_a, WINO_FACTOR * (mag + extra), K, f"{isa} winograd {case} {act}")
            direct = T.conv2d(isa, x, w, bias, act=ACT[act], residual=r, nth=2, **kw)
            check_close(direct, want_a, mag + extra, K, f"{isa} direct {case} {act}")
            assert not np.array_equal(outs[0], direct), f"{isa} {case}: the Winograd path did not run"
            if groups == 1:  # the scalar specification, its twin (ungrouped only)
                spec = T.conv2d("direct", x, w, bias, act=ACT[act], residual=r, pad=pad)
                check_close(outs[0], spec.astype(np.float64), WINO_FACTOR * (mag + extra), K,
                            f"{isa} winograd vs spec {case} {act}", extra=1e-30)


def test_conv_winograd_falls_back():
    """Convs Winograd does not take (stride 2, channels not in whole vectors, one tile per image)
    run the direct conv: the same bits as without Winograd weights."""
    isa = isa_or_skip("avx512")
    g = rng(5)
    for (H, W, C, OC, s) in [(9, 9, 16, 16, 2), (9, 9, 24, 16, 1), (9, 9, 16, 40, 1), (4, 4, 16, 16, 1)]:
        x = g.standard_normal((1, H, W, C)).astype(np.float32)
        w = g.standard_normal((OC, C, 3, 3)).astype(np.float32)
        a = T.conv2d(isa, x, w, None, stride=s, pad=1, nth=2, winograd=True)
        b = T.conv2d(isa, x, w, None, stride=s, pad=1, nth=2)
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("isa", ["direct"] + LEVELS)
def test_conv_relu_out_after_residual(isa):
    """relu_out on a conv (ResNet's block output): max(0, .) of exactly the result without it,
    on every path a level runs (Winograd, direct, the gathering GEMM) and the specification."""
    if isa != "direct":
        isa_or_skip(isa)
    g = rng(77)
    x = g.standard_normal((2, 9, 10, 32)).astype(np.float32)
    w = (g.standard_normal((32, 32, 3, 3)) / 17).astype(np.float32)
    b = (0.1 * g.standard_normal(32)).astype(np.float32)
    res = g.standard_normal((2, 9, 10, 32)).astype(np.float32)
    paths = [{}] if isa in ("direct", "ref") else [dict(winograd=True), {}, dict(direct=False)]
    for kw in paths:
        plain = T.conv2d(isa, x, w, b, pad=1, residual=res, nth=2, **kw)
        assert (plain < 0).any()
        got = T.conv2d(isa, x, w, b, pad=1, residual=res, nth=2, relu_out=True, **kw)
        np.testing.assert_array_equal(got, np.maximum(plain, 0), err_msg=f"{isa} {kw}")
