"""The graph's fusions around convolutions, against PyTorch at every kernel level:

- a Concat along channels read by a 1x1 conv becomes that GEMM's column blocks (Linear+concatN:
  the GEMM gathers X's rows from the parts, the concatenated map is never written);
- a k x k conv over a channel slice of a wider map (YOLO's C2f chunks) gathers from the slice in
  place (no Copy), and a k x k conv with a residual keeps its gather (Linear+gather with the
  residual in its epilogue; the shortcut was a separate add before).

Awkward sizes: odd spatial sizes, channel counts that are not multiples of a vector, parts of
1 to 16 channels, a slice that starts mid-map.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import isa_or_skip
from pyvitcpp import _testing as T

LEVELS = ["ref", "avx2", "avx512"]
ACT = {"none": 0, "relu": 5}  # the Act enum's values (kernels.h)


def _torch_conv(parts, W, bias, k, stride, pad, act, residual):
    x = torch.cat([torch.from_numpy(np.ascontiguousarray(p)).double() for p in parts], 3).permute(0, 3, 1, 2)
    N = W.shape[0]
    C = x.shape[1]
    w = torch.from_numpy(W).double().reshape(N, k, k, C).permute(0, 3, 1, 2)
    y = torch.nn.functional.conv2d(x, w, torch.from_numpy(bias).double(), stride=stride, padding=pad)
    y = y.permute(0, 2, 3, 1)
    if act == "relu":
        y = torch.relu(y)
    if residual is not None:
        y = y + torch.from_numpy(np.ascontiguousarray(residual)).double()
    return y.numpy()


def _run(level, parts, W, bias, k, stride, pad, act, residual=None, nth=2):
    inputs = list(parts) + [W, bias] + ([residual] if residual is not None else [])
    y = T.graph_op(level, "conv", inputs, nth, nparts=len(parts), k=k, stride=stride, pad=pad, act=ACT[act],
                   residual=residual is not None)
    return y, T.graph_op_nodes()


def _check(got, want, K):
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=0, atol=8 * K * 2.0 ** -24 * scale * 4)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("with_res", [False, True])
def test_concat_into_1x1_conv(level, with_res):
    isa_or_skip(level)
    rng = np.random.default_rng(7)
    B, H, W_ = 2, 7, 9
    wide = rng.standard_normal((B, H, W_, 29)).astype(np.float32)
    parts = [wide[..., 3:16],                                          # a channel slice (pixel stride 29)
             rng.standard_normal((B, H, W_, 1)).astype(np.float32),    # one channel
             rng.standard_normal((B, H, W_, 16)).astype(np.float32),
             wide[..., 20:27]]
    C = sum(p.shape[-1] for p in parts)
    N = 19
    Wt = (rng.standard_normal((N, C)) / np.sqrt(C)).astype(np.float32)
    bias = rng.standard_normal(N).astype(np.float32)
    res = rng.standard_normal((B, H, W_, N)).astype(np.float32) if with_res else None
    got, ops = _run(level, parts, Wt, bias, 1, 1, 0, "relu", res)
    assert "Concat" not in ops and f"Linear+concat{len(parts)}" in ops, ops
    _check(got, _torch_conv(parts, Wt, bias, 1, 1, 0, "relu", res), C)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("k,stride,pad", [(3, 1, 1), (3, 2, 1), (5, 1, 2)])
@pytest.mark.parametrize("with_res", [False, True])
def test_kxk_conv_over_a_channel_slice_with_residual(level, k, stride, pad, with_res):
    """The slice is read in place (no Copy, no Im2col node) and the residual is the GEMM's."""
    isa_or_skip(level)
    rng = np.random.default_rng(k * 10 + stride)
    B, H, W_, Cw = 2, 11, 13, 40
    wide = rng.standard_normal((B, H, W_, Cw)).astype(np.float32)
    x = wide[..., 21:40]  # 19 channels starting mid-map
    C, N = x.shape[-1], 24
    Wt = (rng.standard_normal((N, k * k * C)) / np.sqrt(k * k * C)).astype(np.float32)
    bias = rng.standard_normal(N).astype(np.float32)
    oh, ow = (H + 2 * pad - k) // stride + 1, (W_ + 2 * pad - k) // stride + 1
    res = None
    if with_res:  # a strided residual too: a channel slice of another map
        res = rng.standard_normal((B, oh, ow, N + 5)).astype(np.float32)[..., 5:]
    got, ops = _run(level, [x], Wt, bias, k, stride, pad, "none", res)
    assert ops == ["Linear+gather"], ops
    _check(got, _torch_conv([x], Wt, bias, k, stride, pad, "none", res), k * k * C)


@pytest.mark.parametrize("level", LEVELS)
def test_concat_into_kxk_conv_stays_correct(level):
    """A Concat read by a 3x3 conv is not a GEMM's column blocks (the gather reads one map): it
    stays a node, and the result is right."""
    isa_or_skip(level)
    rng = np.random.default_rng(3)
    parts = [rng.standard_normal((1, 6, 5, c)).astype(np.float32) for c in (8, 3)]
    C, N = 11, 9
    Wt = (rng.standard_normal((N, 9 * C)) / np.sqrt(9 * C)).astype(np.float32)
    bias = rng.standard_normal(N).astype(np.float32)
    got, ops = _run(level, parts, Wt, bias, 3, 1, 1, "none")
    assert "Concat" in ops and "Linear+gather" in ops, ops
    _check(got, _torch_conv(parts, Wt, bias, 3, 1, 1, "none", None), 9 * C)


def test_fusion_can_be_turned_off():
    """PYVITCPP_FUSE_CONCAT=0 keeps the Concat (an A/B switch for timing): same numbers."""
    import subprocess
    import sys

    code = """
import numpy as np
from pyvitcpp import _testing as T
rng = np.random.default_rng(0)
parts = [rng.standard_normal((1, 4, 4, c)).astype(np.float32) for c in (5, 7)]
W = rng.standard_normal((6, 12)).astype(np.float32)
b = rng.standard_normal(6).astype(np.float32)
y = T.graph_op("ref", "conv", parts + [W, b], 1, nparts=2, k=1, stride=1, pad=0, act=0, residual=False)
print(T.graph_op_nodes())
print(y.tobytes().hex())
"""
    outs = []
    for env in ({}, {"PYVITCPP_FUSE_CONCAT": "0"}):
        import os
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env},
                           timeout=120)
        assert r.returncode == 0, r.stderr
        outs.append(r.stdout.splitlines())
    assert "Linear+concat2" in outs[0][0] and "Concat" not in outs[0][0]
    assert "Concat" in outs[1][0] and "concat2" not in outs[1][0]
    assert outs[0][1] == outs[1][1]  # the same bits: the same X rows packed in the same K order
