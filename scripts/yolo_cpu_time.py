"""Process CPU time per call of an ultralytics detector at 1 thread (no spin-waiting), runtimes
interleaved: ours F32, ours Q8_0, PyTorch eager, ONNX Runtime fp32. On a shared machine CPU time
is steadier than the wall time `pyvitcpp bench` reports.

    PYTHONPATH=. python scripts/yolo_cpu_time.py yolov8n [--batch 1] [--size 640] [--reps 5]

Needs ultralytics, torch and onnxruntime (test-only references). The model is built from the
yaml by `pyvitcpp bench`'s spec of that name (yolov8n, yolo11n): seeded weights and BN statistics.
"""
import argparse
import os
import tempfile
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("yaml")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--size", type=int, default=640)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    import onnxruntime as ort
    import torch
    from pyvitcpp import _core
    from pyvitcpp.bench import MODELS
    from pyvitcpp.convert import convert

    torch.set_num_threads(1)
    name = os.path.splitext(a.yaml)[0]
    if name not in MODELS:
        raise SystemExit(f"{name}: not a bench spec (yolov8n, yolo11n)")
    tmp = tempfile.mkdtemp()
    built = MODELS[name].build(tmp)  # the bench's seeded model, pickled as a .pt
    pt = built.src

    class Raw(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = built.module

        def forward(self, px):
            return built.forward(px)

    tf = Raw().eval()
    f32, q8 = os.path.join(tmp, "f32.gguf"), os.path.join(tmp, "q8.gguf")
    convert(pt, f32, outtype="f32", verbose=False)
    convert(pt, q8, outtype="q8_0", verbose=False)
    onnx = os.path.join(tmp, "m.onnx")
    with torch.no_grad():
        torch.onnx.export(tf, (torch.zeros(1, 3, a.size, a.size),), onnx, input_names=["x"], output_names=["o"],
                          dynamic_axes={"x": {0: "b"}}, opset_version=17, dynamo=False)
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    sess = ort.InferenceSession(onnx, so, providers=["CPUExecutionProvider"])
    ours, oq = _core.Model(f32, 1, "", True), _core.Model(q8, 1, "", True)
    px = np.random.default_rng(0).random((a.batch, 3, a.size, a.size)).astype(np.float32)

    def run_torch():
        with torch.inference_mode():
            return tf(torch.from_numpy(px)).numpy()
    runs = {"ours-f32": lambda: ours.run(px, ["pred"])["pred"], "ours-q8_0": lambda: oq.run(px, ["pred"])["pred"],
            "torch": run_torch, "ort": lambda: sess.run(None, {"x": px})[0]}
    outs = {k: f() for k, f in runs.items()}
    ts = {k: [] for k in runs}
    for _ in range(a.reps):
        for k, f in runs.items():
            t = time.process_time()
            f()
            ts[k].append(time.process_time() - t)
    base = float(np.median(ts["ours-f32"]))
    for k in runs:
        med = float(np.median(ts[k]))
        diff = float(np.abs(outs[k] - outs["torch"]).max())
        print(f"{a.yaml} B{a.batch} {a.size} {k:10s} cpu {med:.3f} s/call  x{med / base:.2f} of ours-f32  "
              f"max abs vs torch {diff:.2g}")


if __name__ == "__main__":
    main()
