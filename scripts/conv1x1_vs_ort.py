"""ResNet-50's 1x1 convs one at a time: our conv node against ONNX Runtime running the same conv
alone (Conv + Relu, or Conv + Add + Relu with the block's shortcut), same threads, NHWC for us and
NCHW for it. Separates the kernels from the model around them (docs/PERFORMANCE.md, "Weight
streaming, GEMM blocking and Winograd for layer 4"). Alone, ONNX Runtime also pays for
reordering to and from its blocked NCHWc layout (which in the model it keeps from node to node)
and we for copying our output out, so read it next to both runtimes' per-node profiles of the
whole model.

    PYTHONPATH=. python scripts/conv1x1_vs_ort.py [--threads 2] [--batch 8] [--reps 30]

Prints per shape our time (`_testing.graph_op_bench`: median of one run of a one-node graph, its
output copied out), ONNX Runtime's (median of --reps calls after 3 warm-ups, its output returned
as a new array) and their ratio (> 1: ours is faster). Needs onnx and
onnxruntime (test-only references).
"""
import argparse
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from pyvitcpp import _testing as T

# (H = W, C, N, residual): the 1x1 convs of ResNet-50's bottlenecks.
SHAPES = [(56, 256, 64, False), (56, 64, 256, True), (28, 512, 128, False), (28, 128, 512, True),
          (14, 1024, 256, False), (14, 256, 1024, True), (7, 2048, 512, False), (7, 512, 2048, True)]


def ort_session(w, b, B, C, N, H, res, threads):
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"])]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [B, C, H, H])]
    if res:
        nodes += [helper.make_node("Add", ["c", "r"], ["s"]), helper.make_node("Relu", ["s"], ["y"])]
        inputs.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, [B, N, H, H]))
    else:
        nodes.append(helper.make_node("Relu", ["c"], ["y"]))
    graph = helper.make_graph(nodes, "conv1x1", inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [B, N, H, H])],
                              [numpy_helper.from_array(w.reshape(N, C, 1, 1), "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--isa", default="avx512")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    B = args.batch
    for H, C, N, res in SHAPES:
        x = rng.standard_normal((B, H, H, C)).astype(np.float32)
        w = (rng.standard_normal((N, C)) * 0.05).astype(np.float32)
        b = rng.standard_normal(N).astype(np.float32)
        r = rng.standard_normal((B, H, H, N)).astype(np.float32)
        ins = [x, w, b] + ([r] if res else [])
        ours = T.graph_op_bench(args.isa, "conv", ins, nth=args.threads, reps=args.reps, nparts=1, k=1, stride=1,
                                pad=0, act=0 if res else 5, residual=res)
        sess = ort_session(w, b, B, C, N, H, res, args.threads)
        feed = {"x": np.ascontiguousarray(x.transpose(0, 3, 1, 2))}
        if res:
            feed["r"] = np.ascontiguousarray(r.transpose(0, 3, 1, 2))
        for _ in range(3):
            sess.run(None, feed)
        ts = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            sess.run(None, feed)
            ts.append(time.perf_counter() - t0)
        theirs = float(np.median(ts))
        gflop = 2.0 * B * H * H * C * N / 1e9
        print(f"{B}x{H}x{H} {C}->{N}{' +residual' if res else ''}: ours {ours * 1e3:.2f} ms ({gflop / ours:.0f} GFLOP/s), "
              f"ONNX Runtime {theirs * 1e3:.2f} ms ({gflop / theirs:.0f}); ONNX Runtime / ours {theirs / ours:.2f}",
              flush=True)


if __name__ == "__main__":
    main()
