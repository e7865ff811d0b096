#!/usr/bin/env python
"""Side-by-side benchmark: pyvitcpp vs PyTorch eager vs ONNX Runtime, same model, same seeded
weights, same pixels, same thread count, runs interleaved, medians and per-pair ratios.

    python scripts/bench.py --model vit_base_patch16_224 --batch 1 8 --threads 2

Setup (model build, conversion, ONNX export, session creation) is outside every timed region.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time

import numpy as np

CONFIGS = {
    # name: (hidden, layers, heads, mlp, image, patch)
    "deit_tiny_patch16_224": (192, 12, 3, 768, 224, 16),
    "deit_small_patch16_224": (384, 12, 6, 1536, 224, 16),
    "vit_base_patch16_224": (768, 12, 12, 3072, 224, 16),
    "vit_large_patch16_224": (1024, 24, 16, 4096, 224, 16),
}


def build_reference(name: str, folder: str):
    import torch
    import transformers

    d, layers, heads, mlp, img, patch = CONFIGS[name]
    cfg = transformers.ViTConfig(hidden_size=d, num_hidden_layers=layers, num_attention_heads=heads,
                                 intermediate_size=mlp, image_size=img, patch_size=patch, num_labels=1000)
    torch.manual_seed(0)
    model = transformers.ViTForImageClassification(cfg).eval()
    model.save_pretrained(folder)
    return model, img


def flops_per_image(name: str) -> float:
    d, layers, heads, mlp, img, patch = CONFIGS[name]
    t = (img // patch) ** 2 + 1
    per_layer = 2 * t * d * (3 * d) + 2 * t * d * d + 2 * 2 * t * d * mlp + 2 * 2 * t * t * d
    return layers * per_layer + 2 * (t - 1) * d * 3 * patch * patch + 2 * d * 1000


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="vit_base_patch16_224", choices=sorted(CONFIGS))
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=7, help="timed rounds (each runs every runtime once)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--runtimes", nargs="+", default=["pyvitcpp-f32", "pyvitcpp-f16", "torch", "ort"])
    ap.add_argument("--markdown", help="append the table to this file")
    args = ap.parse_args(argv)

    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    import pyvitcpp
    from pyvitcpp.convert import convert

    torch.set_num_threads(args.threads)
    tmp = tempfile.mkdtemp(prefix="pyvitcpp-bench-")
    model, img = build_reference(args.model, tmp)
    runners = {}
    for rt in args.runtimes:
        if rt.startswith("pyvitcpp-"):
            outtype = rt.split("-", 1)[1]
            path = os.path.join(tmp, f"model-{outtype}.gguf")
            convert(tmp, path, outtype=outtype, verbose=False)
            enc = pyvitcpp.Encoder(path, threads=args.threads)
            runners[rt] = lambda px, enc=enc: enc.forward(px, "logits")
        elif rt == "torch":
            def run_torch(px):
                with torch.inference_mode():
                    return model(pixel_values=torch.from_numpy(px)).logits.numpy()
            runners[rt] = run_torch
        elif rt == "ort":
            try:
                import onnxruntime as ort
            except ImportError:
                print("onnxruntime not installed: skipping ort", file=sys.stderr)
                continue
            onnx_path = os.path.join(tmp, "model.onnx")
            with torch.no_grad():
                torch.onnx.export(model, (torch.zeros(1, 3, img, img),), onnx_path, input_names=["pixel_values"],
                                  output_names=["logits"], dynamic_axes={"pixel_values": {0: "b"}},
                                  opset_version=17, dynamo=False)
            so = ort.SessionOptions()
            so.intra_op_num_threads = args.threads
            so.inter_op_num_threads = 1
            sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
            runners[rt] = lambda px, sess=sess: sess.run(None, {"pixel_values": px})[0]
        else:
            raise SystemExit(f"unknown runtime {rt}")

    info = pyvitcpp.cpu_info()
    header = (f"{args.model}, {args.threads} threads, {info['brand'] or info['vendor']} "
              f"(pyvitcpp level {info['level']}), {platform.python_version()}, torch {torch.__version__}")
    print(header)
    rows = []
    rng = np.random.default_rng(0)
    for b in args.batch:
        px = rng.standard_normal((b, 3, img, img)).astype(np.float32)
        outs = {rt: fn(px) for rt, fn in runners.items()}
        ref = outs.get("torch")
        for _ in range(args.warmup):
            for fn in runners.values():
                fn(px)
        times = {rt: [] for rt in runners}
        for _ in range(args.reps):
            for rt, fn in runners.items():
                t0 = time.perf_counter()
                fn(px)
                times[rt].append(time.perf_counter() - t0)
        base = "pyvitcpp-f32" if "pyvitcpp-f32" in runners else next(iter(runners))
        for rt in runners:
            med = statistics.median(times[rt])
            ratios = [o / a for a, o in zip(times[base], times[rt])]
            gflops = flops_per_image(args.model) * b / med / 1e9
            err = "" if ref is None else f"{float(np.abs(outs[rt] - ref).max()):.2e}"
            rows.append((b, rt, med * 1e3, b / med, gflops, statistics.median(ratios), err))
    lines = [f"**{header}**", "",
             "| batch | runtime | median ms | images/s | GFLOP/s | time(this) / time(pyvitcpp-f32), per round | max abs diff vs torch |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    for b, rt, ms, ips, gf, ratio, err in rows:
        lines.append(f"| {b} | {rt} | {ms:.1f} | {ips:.2f} | {gf:.1f} | {ratio:.2f} | {err} |")
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        with open(args.markdown, "a", encoding="utf-8") as f:
            f.write(table + "\n\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
