"""ONNX Runtime's int8 GEMM (MatMulInteger, u8 x s8 -> s32) against the vpdpbusd peak and our
Q8_0 GEMM, one thread, at a ViT-B/16 shape: does ONNX Runtime's int8 run above what VNNI can do
(AMX tiles on CPUs that have them)?

    PYTHONPATH=. python scripts/ort_int8_gemm_rate.py [--M 1576 --K 768 --N 3072] [--rounds 3]

Prints GOP/s (2 M N K per call) per round: ORT MatMulInteger (intra-op threads 1, best of 10
calls after 3 warm-ups), our int8 peak (perf.int8_peak, a register-only vpdpbusd loop) and our
Q8_0 GEMM (perf.gemm_bench, activations quantized inside the timed call). Needs onnxruntime and
onnx (test-only references).
"""
import argparse
import time

import numpy as np


def ort_matmulinteger_rate(M, K, N, calls=10):
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = rng.integers(-127, 128, (K, N)).astype(np.int8)
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "W", "az"], ["Y"])], "g",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [M, K])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [M, N])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(np.array(128, np.uint8), "az")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    a = rng.integers(0, 256, (M, K)).astype(np.uint8)
    for _ in range(3):
        sess.run(None, {"A": a})
    best = float("inf")
    for _ in range(calls):
        t0 = time.perf_counter()
        sess.run(None, {"A": a})
        best = min(best, time.perf_counter() - t0)
    return 2.0 * M * N * K / best / 1e9, ort.__version__


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--M", type=int, default=1576)
    ap.add_argument("--K", type=int, default=768)
    ap.add_argument("--N", type=int, default=3072)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    from pyvitcpp import perf

    isa = "avx512"
    for r in range(a.rounds):
        ort_rate, ver = ort_matmulinteger_rate(a.M, a.K, a.N)
        peak = perf.int8_peak(isa)
        q8 = perf.gemm_bench(isa, a.M, a.N, a.K, "q8_0", 1, 0.5)
        print(f"round {r}: {a.M}x{a.K}->{a.N}, 1 thread: ORT {ver} MatMulInteger {ort_rate:.0f} GOP/s, "
              f"vpdpbusd peak {peak:.0f} GOP/s (ORT {ort_rate / peak:.2f}x it), ours Q8_0 {q8:.0f} GOP/s "
              f"({q8 / peak:.0%} of the peak)", flush=True)


if __name__ == "__main__":
    main()
