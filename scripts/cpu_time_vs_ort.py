#!/usr/bin/env python
"""Ours against ONNX Runtime by process CPU time, one thread, interleaved: the figure to trust on
a shared machine, where wall times measure the scheduler more than the code (see
docs/PERFORMANCE.md). With one thread neither runtime has pool threads to spin, so a call's
process CPU time is its work; each round runs every runtime once, and the report gives per
runtime the median CPU ms and the median over rounds of (ORT int8 CPU time / ours) etc.

    python scripts/cpu_time_vs_ort.py --models deit_tiny_patch16_224 vit_base_patch16_224 --batch 1 8

The models are pyvitcpp.bench's seeded-random references (converted and exported untimed).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["deit_tiny_patch16_224", "vit_base_patch16_224"])
    ap.add_argument("--batch", type=int, nargs="+", default=[1])
    ap.add_argument("--types", nargs="+", default=["f32", "q8_0"])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    import pyvitcpp
    from pyvitcpp.bench import MODELS, _onnx_export, _ort_session
    from pyvitcpp.convert import convert

    torch.set_num_threads(1)
    print(f"process CPU ms per call, 1 thread, {args.rounds} interleaved rounds (median); ratio = runtime / ours-{args.types[0]}")
    for name in args.models:
        with tempfile.TemporaryDirectory(prefix="pyvitcpp-cpu-") as tmp:
            built = MODELS[name].build(tmp)
            runners = {}
            for t in args.types:
                path = os.path.join(tmp, f"m-{t}.gguf")
                convert(built.src, path, outtype=t, verbose=False, **built.convert_kwargs)
                enc = pyvitcpp.Encoder(path, threads=1)
                runners[f"ours-{t}"] = lambda px, enc=enc: enc.forward(px, built.ours_output)
            onnx = os.path.join(tmp, "m.onnx")
            _onnx_export(built, onnx)
            from onnxruntime.quantization import QuantType, quantize_dynamic

            q = os.path.join(tmp, "m-int8.onnx")
            quantize_dynamic(onnx, q, weight_type=QuantType.QInt8)
            for label, p in (("ort", onnx), ("ort-int8", q)):
                sess = _ort_session(p, 1)
                runners[label] = lambda px, s=sess: s.run(None, {"pixel_values": px})[0]
            for b in args.batch:
                s = built.image_size
                px = np.random.default_rng(0).standard_normal((b, 3, s, s)).astype(np.float32)
                for fn in runners.values():
                    fn(px)
                cpu = {k: [] for k in runners}
                for _ in range(args.rounds):
                    for k, fn in runners.items():
                        c = time.process_time()
                        fn(px)
                        cpu[k].append(time.process_time() - c)
                base = next(iter(runners))
                for k in runners:
                    ratio = statistics.median([o / a for a, o in zip(cpu[base], cpu[k])])
                    print(f"| {name} | {b} | {k} | {1e3 * statistics.median(cpu[k]):.1f} | {ratio:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
