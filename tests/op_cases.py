"""One list of graph-op cases for two modes (as ggml's test-backend-ops does): the test suite
runs each case at its small, awkward `test` size against PyTorch at every kernel level
(tests/test_layout_ops.py::test_op_case), and scripts/bench_ops.py times each at its `perf`
size, the size a model meets (SAM-B at 1024, Swin-T stage 1, YOLO heads, ViT-B).

A case: the graph op (a `testing.graph_op` name), a function making its numpy inputs (views
as the model would hand them: transposed, sliced, broadcast) for a size, its parameters, and
the PyTorch reference over torch copies of those inputs. Add a case here and both modes get it.
"""
from dataclasses import dataclass, field
from typing import Callable, Dict, List

import numpy as np


@dataclass
class OpCase:
    name: str
    op: str
    make: Callable[[np.random.Generator, Dict[str, int]], List[np.ndarray]]
    ref: Callable  # (torch tensors, params) -> torch tensor
    test: Dict[str, int]
    perf: Dict[str, int]
    params: Callable[[Dict[str, int]], dict] = field(default=lambda s: {})
    exact: bool = True  # a pure data move: bit-exact


def _r(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _window_partition(rng, s):
    B, nh, nw, w, C = s["B"], s["nh"], s["nw"], s["w"], s["C"]
    x = _r(rng, B, nh * w, nw * w, C)
    return [x.reshape(B, nh, w, nw, w, C).transpose(0, 1, 3, 2, 4, 5)]


def _window_ref(t, p):
    return t[0].contiguous()


CASES: List[OpCase] = [
    OpCase("window_partition", "copy", _window_partition, _window_ref,
           test=dict(B=2, nh=2, nw=3, w=7, C=5), perf=dict(B=1, nh=5, nw=5, w=14, C=768)),
    OpCase("nhwc_to_nchw", "copy", lambda rng, s: [_r(rng, s["B"], s["H"], s["W"], s["C"]).transpose(0, 3, 1, 2)],
           lambda t, p: t[0].contiguous(),
           test=dict(B=2, H=9, W=11, C=19), perf=dict(B=1, H=64, W=64, C=256)),
    OpCase("pad_to_window", "pad", lambda rng, s: [_r(rng, s["B"], s["H"], s["W"], s["C"])],
           lambda t, p: __import__("torch").nn.functional.pad(t[0], (0, 0, 0, p["hi"][2], 0, p["hi"][1])),
           test=dict(B=2, H=9, W=11, C=5, w=7), perf=dict(B=1, H=64, W=64, C=768, w=14),
           params=lambda s: dict(lo=[0, 0, 0, 0], hi=[0, -s["H"] % s["w"], -s["W"] % s["w"], 0])),
    OpCase("shift_windows", "roll", lambda rng, s: [_r(rng, s["B"], s["H"], s["W"], s["C"])],
           lambda t, p: __import__("torch").roll(t[0], tuple(p["shifts"]), tuple(p["axes"])),
           test=dict(B=2, H=14, W=21, C=6, w=7), perf=dict(B=1, H=56, W=56, C=96, w=7),
           params=lambda s: dict(shifts=[-(s["w"] // 2)] * 2, axes=[1, 2])),
    OpCase("route_concat", "concat",
           lambda rng, s: [_r(rng, s["B"], s["H"], s["W"], s["C1"]), _r(rng, s["B"], s["H"], s["W"], s["C2"])],
           lambda t, p: __import__("torch").cat(t, 3),
           test=dict(B=2, H=5, W=7, C1=3, C2=13), perf=dict(B=1, H=26, W=26, C1=128, C2=256),
           params=lambda s: dict(axis=3)),
    OpCase("upsample2", "upsample_nearest", lambda rng, s: [_r(rng, s["B"], s["H"], s["W"], s["C"])],
           lambda t, p: __import__("torch").nn.functional.interpolate(
               t[0].permute(0, 3, 1, 2), scale_factor=2, mode="nearest").permute(0, 2, 3, 1),
           test=dict(B=2, H=5, W=7, C=11), perf=dict(B=1, H=13, W=13, C=128),
           params=lambda s: dict(factor=2)),
    OpCase("pos_add_broadcast", "add", lambda rng, s: [_r(rng, s["B"], s["T"], s["D"]), _r(rng, s["T"], s["D"])],
           lambda t, p: t[0] + t[1],
           test=dict(B=3, T=17, D=33), perf=dict(B=8, T=196, D=768)),
    OpCase("swiglu", "act_mul",
           lambda rng, s: (lambda g: [g[:, :s["F"]], g[:, s["F"]:]])(_r(rng, s["R"], 2 * s["F"])),
           lambda t, p: __import__("torch").nn.functional.silu(t[0]) * t[1],
           test=dict(R=13, F=37), perf=dict(R=257, F=1024), params=lambda s: dict(act=7), exact=False),
    OpCase("mean_patch_tokens", "mean", lambda rng, s: [_r(rng, s["B"], s["T"], s["D"])[:, 1:]],
           lambda t, p: t[0].double().mean(1).float(),
           test=dict(B=3, T=17, D=300), perf=dict(B=8, T=197, D=768), params=lambda s: dict(axis=1), exact=False),
]
