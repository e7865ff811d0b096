#!/usr/bin/env python
"""Vision-tower benchmark: pyvitcpp vs PyTorch eager vs ONNX Runtime on CLIP ViT-B/32, SigLIP
B/16, DINOv2-S/14 and -B/14 (HF classes, seeded random weights, real-size configs), same pixels,
same thread count, runs interleaved, medians and per-round ratios.  Each family's `embedding`
output (CLIP image_embeds, SigLIP pooler_output, DINOv2 pooler_output).

    python scripts/bench_towers.py --models clip_b32 dinov2_s14 --batch 1 --threads 2
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


def build(name: str, folder: str):
    import torch
    import transformers as T

    torch.manual_seed(0)
    if name == "clip_b32":
        cfg = T.CLIPVisionConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                                 image_size=224, patch_size=32, projection_dim=512)
        m = T.CLIPVisionModelWithProjection(cfg).eval()
        fn = lambda mod, x: mod(pixel_values=x).image_embeds  # noqa: E731
    elif name == "siglip_b16":
        cfg = T.SiglipVisionConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                   num_attention_heads=12, image_size=224, patch_size=16)
        m = T.SiglipVisionModel(cfg).eval()
        fn = lambda mod, x: mod(pixel_values=x).pooler_output  # noqa: E731
    elif name in ("dinov2_s14", "dinov2_b14"):
        d, h = (384, 6) if name == "dinov2_s14" else (768, 12)
        cfg = T.Dinov2Config(hidden_size=d, num_hidden_layers=12, num_attention_heads=h, image_size=518, patch_size=14)
        m = T.Dinov2Model(cfg).eval()
        fn = lambda mod, x: mod(pixel_values=x).pooler_output  # noqa: E731
    else:
        raise SystemExit(f"unknown model {name}")
    m.save_pretrained(folder)
    return m, fn


def wrap(model, fn):
    """The model as a module whose forward returns the embedding (for the ONNX exporter)."""
    import torch

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = model

        def forward(self, x):
            return fn(self.inner, x)

    return M().eval().requires_grad_(False)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["clip_b32", "siglip_b16", "dinov2_s14", "dinov2_b14"])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--size", type=int, default=224, help="input H = W")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--runtimes", nargs="+", default=["pyvitcpp-f32", "pyvitcpp-f16", "torch", "ort"])
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    import pyvitcpp
    from pyvitcpp.convert import convert

    torch.set_num_threads(args.threads)
    info = pyvitcpp.cpu_info()
    print(f"batch {args.batch}, {args.size}x{args.size}, {args.threads} threads, {info['brand'] or info['vendor']} "
          f"(pyvitcpp level {info['level']}), python {platform.python_version()}, torch {torch.__version__}")
    print("| model | runtime | median ms | time / time(pyvitcpp-f32), per round | max abs diff vs torch |")
    print("|---|---|---:|---:|---:|")
    rng = np.random.default_rng(0)
    px = rng.standard_normal((args.batch, 3, args.size, args.size)).astype(np.float32)
    for name in args.models:
        tmp = tempfile.mkdtemp(prefix=f"bench-{name}-")
        model, fn = build(name, tmp)
        runners = {}
        for rt in args.runtimes:
            if rt.startswith("pyvitcpp-"):
                path = os.path.join(tmp, f"{rt}.gguf")
                import warnings
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    convert(tmp, path, outtype=rt.split("-", 1)[1], verbose=False)
                enc = pyvitcpp.Encoder(path, threads=args.threads)
                runners[rt] = lambda x, enc=enc: enc.forward(x, "embedding")
            elif rt == "torch":
                def run_torch(x, fn=fn, model=model):
                    with torch.inference_mode():
                        return fn(model, torch.from_numpy(x)).numpy()
                runners[rt] = run_torch
            elif rt == "ort":
                import onnxruntime as ort
                onnx_path = os.path.join(tmp, "m.onnx")
                try:
                    with torch.no_grad():
                        torch.onnx.export(wrap(model, fn), (torch.from_numpy(px),), onnx_path, input_names=["x"],
                                          output_names=["y"], opset_version=17, dynamo=False)
                except Exception as e:  # pragma: no cover - exporter limits
                    msg = str(e).splitlines()[0][:200]
                    print(f"{name}: ONNX export failed ({type(e).__name__}: {msg}); no ort row", file=sys.stderr)
                    continue
                so = ort.SessionOptions()
                so.intra_op_num_threads = args.threads
                so.inter_op_num_threads = 1
                sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
                runners[rt] = lambda x, sess=sess: sess.run(None, {"x": x})[0]
        outs = {rt: f(px) for rt, f in runners.items()}
        for f in runners.values():
            f(px)
        times = {rt: [] for rt in runners}
        for _ in range(args.reps):
            for rt, f in runners.items():
                t0 = time.perf_counter()
                f(px)
                times[rt].append(time.perf_counter() - t0)
        base = times.get("pyvitcpp-f32")
        for rt in runners:
            ratio = statistics.median([t / b for t, b in zip(times[rt], base)]) if base else float("nan")
            err = float(np.abs(outs[rt] - outs["torch"]).max()) if "torch" in outs else float("nan")
            print(f"| {name} | {rt} | {statistics.median(times[rt]) * 1e3:.1f} | {ratio:.2f} | {err:.2e} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
