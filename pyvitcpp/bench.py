"""Side-by-side benchmark: pyvitcpp vs PyTorch eager vs ONNX Runtime (fp32 and dynamic int8).

Same model and seeded-random weights (speed does not depend on the values), same pixels, same
thread count; runtimes are timed in interleaved rounds (one call of each per round) after
warm-ups, so a disturbance on a shared machine hits every runtime alike. Reported per model and
batch: median and p90 latency, images/s, achieved GFLOP/s and its share of two peaks measured
here (the engine's own GEMM at a ViT shape, and a register-only FMA loop), and the per-round
ratio time(peer) / time(reference runtime) (> 1: the reference, ours, is faster). Per runtime,
in a fresh process each: cold start (open the model -> first batch-1 result) and peak RSS.

    pyvitcpp bench --models vit_base_patch16_224 --batch 1 8 --threads 2
    python scripts/bench.py --models deit_tiny_patch16_224 vit_base_patch16_224 --types f32 f16

Nothing of any runtime's setup (PyTorch model build, ONNX export and quantization, session
creation, GGUF conversion, our model load) is inside a timed region.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np

# ---------------------------------------------------------------------------------------------
# Models. Each spec builds a seeded-random PyTorch reference and saves it where the converter
# can read it; families whose converter does not exist yet are skipped with the converter's
# message, so adding a converter is all it takes to bench them.


class Skip(Exception):
    """This model / runtime cannot be benched here (the message says why)."""


@dataclass
class BuiltModel:
    module: "object"                 # torch.nn.Module, eval mode
    forward: Callable                # torch tensor [B,3,H,W] -> torch tensor (the compared output)
    src: str                         # what pyvitcpp.convert reads
    convert_kwargs: dict
    image_size: int
    ours_output: str                 # the pyvitcpp output matching `forward`
    hf_folder: Optional[str] = None  # for the cold-start child (from_pretrained)
    hf_class: Optional[str] = None


@dataclass
class ModelSpec:
    name: str
    build: Callable[[str], BuiltModel]
    max_batch: Optional[int] = None  # e.g. ViT-L: batch 1 only
    hidden: bool = False             # test-only configs, not in --models all


def _hf_vit(hidden, layers, heads, mlp, image=224, patch=16):
    def build(folder: str) -> BuiltModel:
        import torch
        import transformers

        cfg = transformers.ViTConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                                     intermediate_size=mlp, image_size=image, patch_size=patch, num_labels=1000)
        torch.manual_seed(0)
        m = transformers.ViTForImageClassification(cfg).eval()
        m.save_pretrained(folder)
        return BuiltModel(m, lambda px: m(pixel_values=px).logits, folder, {}, image, "logits",
                          folder, "ViTForImageClassification")
    return build


def _hf_clip_b32(folder: str) -> BuiltModel:
    import torch
    import transformers

    cfg = transformers.CLIPVisionConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                        num_attention_heads=12, image_size=224, patch_size=32,
                                        projection_dim=512, hidden_act="quick_gelu")
    torch.manual_seed(0)
    m = transformers.CLIPVisionModelWithProjection(cfg).eval()
    m.save_pretrained(folder)
    return BuiltModel(m, lambda px: m(pixel_values=px).image_embeds, folder, {}, 224, "embedding",
                      folder, "CLIPVisionModelWithProjection")


def _hf_dinov2_small(image: int):
    def build(folder: str) -> BuiltModel:
        import torch
        import transformers

        cfg = transformers.Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
                                        mlp_ratio=4, patch_size=14, image_size=518)
        torch.manual_seed(0)
        m = transformers.Dinov2Model(cfg).eval()
        m.save_pretrained(folder)
        return BuiltModel(m, lambda px: m(pixel_values=px).last_hidden_state, folder, {}, image,
                          "last_hidden_state", folder, "Dinov2Model")
    return build


def _timm_cnn(name: str):
    def build(folder: str) -> BuiltModel:
        try:
            import timm
        except ImportError as e:  # pragma: no cover - timm is in the test extra
            raise Skip(f"timm not importable ({e})") from None
        import torch

        torch.manual_seed(0)
        m = timm.create_model(name, pretrained=False).eval()
        path = os.path.join(folder, f"{name}.pth")
        torch.save(m.state_dict(), path)
        return BuiltModel(m, lambda px: m(px), path, {"model_name": name}, 224, "logits")
    return build


def _sam_encoder(embed_dim, depth, heads, global_idx, image=1024, window=14, out=256):
    def build(folder: str) -> BuiltModel:
        try:
            from segment_anything.modeling.image_encoder import ImageEncoderViT
        except ImportError as e:  # pragma: no cover - segment_anything is in the test extra
            raise Skip(f"segment_anything not importable ({e})") from None
        import torch

        torch.manual_seed(0)
        m = ImageEncoderViT(img_size=image, embed_dim=embed_dim, depth=depth, num_heads=heads, out_chans=out,
                            use_rel_pos=True, window_size=window, global_attn_indexes=global_idx).eval()
        with torch.no_grad():  # non-zero rel-pos and position tables (their inits are zeros)
            for name, p in m.named_parameters():
                if "pos" in name:
                    p.normal_(0.0, 0.02)
        path = os.path.join(folder, "sam_image_encoder.pth")
        torch.save({"image_encoder." + k: v for k, v in m.state_dict().items()}, path)
        return BuiltModel(m, lambda px: m(px), path, {}, image, "image_embeddings")
    return build


def _darknet(cfg_fn: str, image: int = 416):
    """A darknet .cfg + .weights with seeded random weights; the PyTorch peer is the test suite's
    transcription of darknet's forward pass (tests/darknet_ref.py, BN folded), so this bench runs
    from a source checkout."""
    def build(folder: str) -> BuiltModel:
        tests = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")
        if not os.path.isfile(os.path.join(tests, "darknet_ref.py")):
            raise Skip("the darknet reference (tests/darknet_ref.py) is only in a source checkout")
        sys.path.insert(0, tests)
        try:
            import darknet_ref
        finally:
            sys.path.remove(tests)
        text = getattr(darknet_ref, cfg_fn)()
        stem = os.path.join(folder, cfg_fn)
        with open(stem + ".cfg", "w", encoding="utf-8") as f:
            f.write(text)
        m = darknet_ref.DarknetRef(text, seed=0).eval()
        m.write_weights(stem + ".weights")
        m.fold_bn_()
        return BuiltModel(m, lambda px: m(px)[0][0], stem + ".weights", {}, image, "head.0")
    return build


def _ultralytics_detect(yaml: str, image: int = 640):
    """An ultralytics DetectionModel from its yaml (80 classes), pickled as a .pt checkpoint; the
    compared output is Detect's raw maps cat(boxes, scores) [B, 144, anchors] (our ``pred``)."""
    def build(folder: str) -> BuiltModel:
        try:
            from ultralytics.nn.tasks import DetectionModel
        except ImportError as e:  # pragma: no cover - ultralytics is in the test extra (AGPL, test-only)
            raise Skip(f"ultralytics not importable ({e})") from None
        import torch

        torch.manual_seed(0)
        m = DetectionModel(yaml, verbose=False).eval()
        # Seeded weights and BN statistics with O(1) activations (the default init shrinks them
        # layer by layer until the raw maps are the head's biases and every runtime agrees).
        with torch.no_grad():
            for n, p in m.named_parameters():
                if ".dfl." not in n:
                    p.copy_(torch.randn(p.shape) * (1.2 / p[0].numel() ** 0.5 if p.ndim >= 2 else 0.1)
                            + (1.0 if n.endswith("bn.weight") else 0.0))
            for n, b in m.named_buffers():
                if n.endswith("running_var"):
                    b.copy_(0.5 + torch.rand(b.shape))
        path = os.path.join(folder, yaml.replace(".yaml", ".pt"))
        torch.save({"model": m}, path)

        def forward(px):
            _, raw = m(px)  # eval mode: (decoded boxes, raw maps)
            return torch.cat((raw["boxes"], raw["scores"]), 1)
        return BuiltModel(m, forward, path, {}, image, "pred")
    return build

def _hf_swin(v2: bool, image: int, window: int):
    def build(folder: str) -> BuiltModel:
        import torch
        import transformers

        kw = dict(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=window, image_size=image,
                  num_labels=1000)
        cls = "Swinv2ForImageClassification" if v2 else "SwinForImageClassification"
        cfg = (transformers.Swinv2Config if v2 else transformers.SwinConfig)(**kw)
        torch.manual_seed(0)
        m = getattr(transformers, cls)(cfg).eval()
        with torch.no_grad():  # non-zero relative position tables (their inits are zeros)
            for name, p in m.named_parameters():
                if "relative_position_bias_table" in name:
                    p.normal_(0.0, 0.02)
        m.save_pretrained(folder)
        return BuiltModel(m, lambda px: m(pixel_values=px).logits, folder, {}, image, "logits", folder, cls)
    return build


MODELS: Dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> None:
    """Add a model to the bench by name (a new family registers its reference builder here)."""
    MODELS[spec.name] = spec


for _spec in [
    ModelSpec("deit_tiny_patch16_224", _hf_vit(192, 12, 3, 768)),
    ModelSpec("vit_base_patch16_224", _hf_vit(768, 12, 12, 3072)),
    ModelSpec("vit_large_patch16_224", _hf_vit(1024, 24, 16, 4096), max_batch=1),
    ModelSpec("clip_vit_b32", _hf_clip_b32),
    ModelSpec("dinov2_small_224", _hf_dinov2_small(224)),
    ModelSpec("dinov2_small_518", _hf_dinov2_small(518), max_batch=1),
    ModelSpec("resnet50", _timm_cnn("resnet50")),
    ModelSpec("efficientnet_lite0", _timm_cnn("tf_efficientnet_lite0")),
    ModelSpec("yolov8n", _ultralytics_detect("yolov8n.yaml")),
    ModelSpec("yolo11n", _ultralytics_detect("yolo11n.yaml")),
    # segment_anything sam_vit_b's image encoder with its neck at 1024x1024
    ModelSpec("sam_vit_b_encoder", _sam_encoder(768, 12, 12, (2, 5, 8, 11)), max_batch=1),
    # darknet's yolov3-tiny.cfg layer list at 416x416 (head.0, the 13x13 map, is compared)
    ModelSpec("yolov3_tiny", _darknet("yolov3_tiny_cfg")),
    # Swin-T (HF SwinForImageClassification, microsoft/swin-tiny-patch4-window7-224's config) and Swin-V2-T
    ModelSpec("swin_tiny", _hf_swin(False, 224, 7)),
    ModelSpec("swinv2_tiny", _hf_swin(True, 256, 8)),
    # A few-layer toy for the smoke test (tests/test_bench.py): seconds, not minutes.
    ModelSpec("vit_test_tiny", _hf_vit(64, 2, 2, 128, image=32, patch=8), hidden=True),
    ModelSpec("sam_test_tiny", _sam_encoder(72, 2, 3, (1,), image=64, window=3, out=32), hidden=True),
]:
    register_model(_spec)

DEFAULT_MODELS = ["deit_tiny_patch16_224", "vit_base_patch16_224", "vit_large_patch16_224"]


def flops_per_image(module, image_size: int) -> Optional[float]:
    """FLOPs (multiply-add = 2) of one image through the PyTorch reference, counted by
    torch.utils.flop_counter (matmuls, convolutions, attention), or None if unavailable."""
    try:
        import torch
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:
        return None
    px = torch.zeros(1, 3, image_size, image_size)
    with FlopCounterMode(display=False) as fc, torch.inference_mode():
        module(px) if not hasattr(module, "config") else module(pixel_values=px)
    return float(fc.get_total_flops()) or None


# ---------------------------------------------------------------------------------------------
# Runtimes


@dataclass
class Runner:
    name: str
    fn: Callable[[np.ndarray], np.ndarray]
    child: dict = field(default_factory=dict)  # how the fresh-process probe re-opens it


def _cpu_brand() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure_peaks(isa: str, threads: int, seconds: float, int8: bool = False) -> dict:
    """GFLOP/s of our GEMM at a ViT-B shape (M = 197*8, K = 768, N = 3072) and of a
    register-only FMA loop, both at `isa` on `threads` threads (best of 5 chunks); with int8,
    also the GOP/s of the level's int8 dot-product loop (perf.int8_peak) and of our Q8_0 GEMM
    at that shape."""
    from . import perf

    out = {"isa": isa}
    if isa == "ref":
        return out
    out["fma"] = perf.fma_peak(isa, threads=threads, min_seconds=seconds)
    out["gemm"] = perf.gemm_bench(isa, 197 * 8, 3072, 768, "f32", threads=threads, min_seconds=seconds)
    if int8:  # the header's int8 figures: the level's int8 dot-product loop and our Q8_0 GEMM
        out["int8"] = perf.int8_peak(isa, threads=threads, min_seconds=seconds)
        out["q8_0"] = perf.gemm_bench(isa, 197 * 8, 3072, 768, "q8_0", threads=threads, min_seconds=seconds)
        # one core per CPU second of its thread: what a shared machine's wall clock hides
        out["int8_cpu"] = perf.int8_peak(isa, 1, seconds, cpu_time=True)
        out["q8_0_cpu"] = perf.gemm_bench(isa, 197 * 8, 3072, 768, "q8_0", 1, seconds, cpu_time=True)
    return out


def _onnx_export(built: BuiltModel, path: str) -> None:
    import torch

    class Wrap(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, px):
            return built.forward(px)

    s = built.image_size
    # eval(): a fresh wrapper is in training mode, and export restores that mode on the whole
    # tree afterwards, which would leave the reference's batch norms using batch statistics.
    with torch.no_grad():
        torch.onnx.export(Wrap(built.module).eval(), (torch.zeros(1, 3, s, s),), path, input_names=["pixel_values"],
                          output_names=["out"], dynamic_axes={"pixel_values": {0: "b"}}, opset_version=17,
                          dynamo=False)


def _ort_session(path: str, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def build_runners(built: BuiltModel, tmp: str, runtimes: List[str], types: List[str], isas: List[str],
                  threads: int, log) -> List[Runner]:
    import torch

    runners: List[Runner] = []
    for rt in runtimes:
        if rt == "ours":
            import pyvitcpp
            from pyvitcpp.convert import convert

            for t in types:
                path = os.path.join(tmp, f"model-{t}.gguf")
                try:
                    convert(built.src, path, outtype=t, verbose=False, **built.convert_kwargs)
                except Exception as e:  # noqa: BLE001 - any refusal means: not benchable yet
                    log(f"  skip ours {t}: the converter refused ({type(e).__name__}: {e})")
                    continue
                for isa in isas:
                    label = f"ours-{t}" + (f"-{isa}" if isa else "")
                    try:
                        enc = pyvitcpp.Encoder(path, threads=threads, isa=isa or None)
                        if built.ours_output not in enc.output_names:
                            raise Skip(f"no output {built.ours_output!r} (has {enc.output_names})")
                    except Exception as e:  # noqa: BLE001
                        log(f"  skip {label}: {type(e).__name__}: {e}")
                        continue
                    runners.append(Runner(label, lambda px, enc=enc: enc.forward(px, built.ours_output),
                                          {"kind": "ours", "path": path, "isa": isa or "", "output": built.ours_output}))
        elif rt == "torch":
            def run_torch(px, m=built):
                with torch.inference_mode():
                    return m.forward(torch.from_numpy(px)).numpy()
            child = {"kind": "torch", "path": built.hf_folder, "cls": built.hf_class} if built.hf_folder else {}
            runners.append(Runner("torch", run_torch, child))
        elif rt in ("ort", "ort-int8"):
            try:
                import onnxruntime  # noqa: F401
            except ImportError:
                log(f"  skip {rt}: onnxruntime is not installed (pip install 'pyvitcpp[bench]')")
                continue
            onnx_path = os.path.join(tmp, "model.onnx")
            try:
                if not os.path.exists(onnx_path):
                    _onnx_export(built, onnx_path)
                path = onnx_path
                if rt == "ort-int8":
                    from onnxruntime.quantization import QuantType, quantize_dynamic

                    path = os.path.join(tmp, "model-int8.onnx")
                    quantize_dynamic(onnx_path, path, weight_type=QuantType.QInt8)
                sess = _ort_session(path, threads)
            except Exception as e:  # noqa: BLE001
                log(f"  skip {rt}: {type(e).__name__}: {e}")
                continue
            runners.append(Runner(rt, lambda px, s=sess: s.run(None, {"pixel_values": px})[0],
                                  {"kind": "ort", "path": path}))
        else:
            raise ValueError(f"unknown runtime {rt!r} (ours, torch, ort, ort-int8)")
    return runners


# ---------------------------------------------------------------------------------------------
# Fresh-process probe: cold start and peak RSS


def _vm_kib(field_name: str) -> Optional[int]:
    try:
        with open("/proc/self/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _child_main(spec_json: str) -> int:
    """Runs in a fresh interpreter: import the runtime, then time open -> first batch-1 result."""
    spec = json.loads(spec_json)
    threads, size, kind = spec["threads"], spec["image_size"], spec["kind"]
    px = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
    if kind == "ours":
        import pyvitcpp
    elif kind == "torch":
        import torch
        import transformers

        torch.set_num_threads(threads)
    elif kind == "ort":
        import onnxruntime  # noqa: F401
    base = _vm_kib("VmRSS")
    t0 = time.perf_counter()
    if kind == "ours":
        enc = pyvitcpp.Encoder(spec["path"], threads=threads, isa=spec["isa"] or None)
        enc.forward(px, spec["output"])
    elif kind == "torch":
        m = getattr(transformers, spec["cls"]).from_pretrained(spec["path"]).eval()
        with torch.inference_mode():
            m(pixel_values=torch.from_numpy(px))
    else:
        s = _ort_session(spec["path"], threads)
        s.run(None, {"pixel_values": px})
    cold = time.perf_counter() - t0
    hwm = _vm_kib("VmHWM")
    if hwm is None:
        import resource

        hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"cold_s": cold, "peak_rss_kib": hwm, "base_rss_kib": base}))
    return 0


def probe_fresh_process(runner: Runner, threads: int, image_size: int, timeout: float = 600) -> Optional[dict]:
    if not runner.child:
        return None
    spec = dict(runner.child, threads=threads, image_size=image_size)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    cmd = [sys.executable, "-c", "import sys; from pyvitcpp.bench import _child_main; sys.exit(_child_main(sys.argv[1]))",
           json.dumps(spec)]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"fresh-process probe of {runner.name} failed: {r.stderr.strip()[-500:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# The timed part


def time_interleaved(runners: List[Runner], px: np.ndarray, warmup: int, reps: int, settle: float = 0.0,
                     warm_calls: int = 1):
    """Per runtime: wall seconds and CPU cores busy of each timed call. `settle` seconds pass
    before every runtime's turn: thread pools that spin-wait after a call (OpenMP in PyTorch,
    ONNX Runtime's) would otherwise compete for the cores with the next runtime's call. Then
    `warm_calls` untimed calls of the same runtime run right before its timed one: cores that
    idled through the settle start slow (measured on a 2-vCPU VM: yolov3_tiny batch 1 ran 12.4
    ms back to back and 17.7 ms after 0.3 s idle, ONNX Runtime 15.8 and 19.4 ms), a fixed
    penalty that a model served in a loop does not pay and that weighs most on short calls.
    warm_calls=0 times the first call after the idle (the old behaviour)."""
    for _ in range(warmup):
        for r in runners:
            time.sleep(settle)
            r.fn(px)
    times: Dict[str, List[float]] = {r.name: [] for r in runners}
    busy: Dict[str, List[float]] = {r.name: [] for r in runners}
    for i in range(reps):
        # Rotate the order each round so no runtime always follows the same one.
        order = runners[i % len(runners):] + runners[:i % len(runners)]
        for r in order:
            time.sleep(settle)
            for _ in range(warm_calls):
                r.fn(px)
            c0, t0 = time.process_time(), time.perf_counter()
            r.fn(px)
            t1, c1 = time.perf_counter(), time.process_time()
            times[r.name].append(t1 - t0)
            busy[r.name].append((c1 - c0) / max(t1 - t0, 1e-9))
    return times, busy


def _pct(xs: List[float], q: float) -> float:
    s = sorted(xs)
    if len(s) == 1:
        return s[0]
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def _diff(out: np.ndarray, ref: Optional[np.ndarray]) -> str:
    if ref is None or out.shape != ref.shape:
        return ""
    a, b = out.ravel().astype(np.float64), ref.ravel().astype(np.float64)
    cos = float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-300))
    return f"{float(np.abs(a - b).max()):.1e} / {cos:.6f}"


def _bench_model(args, name, spec, tmp, peaks, speed, mem, log) -> Optional[str]:
    """Times one model (all batches, all runtimes) and appends its rows; returns the name of
    the reference runtime (our first), or None when the model was skipped."""
    log(f"{name}: building the seeded-random reference and converting (not timed)")
    try:
        built = spec.build(tmp)
        # Ours first: when we cannot run the model there is nothing to compare (and no export).
        ours = build_runners(built, tmp, ["ours"], args.types, args.isa or [""], args.threads, log)
        if not ours:
            log(f"  skip {name}: no pyvitcpp runtime could be built (see above)")
            return None
        peers = [rt for rt in args.runtimes if rt != "ours"]
        runners = ours + build_runners(built, tmp, peers, args.types, args.isa or [""], args.threads, log)
    except Skip as e:
        log(f"  skip {name}: {e}")
        return None
    base = ours[0].name
    fpi = flops_per_image(built.module, built.image_size)
    batches = [b for b in args.batch if spec.max_batch is None or b <= spec.max_batch]
    rng = np.random.default_rng(0)
    for b in batches:
        s = built.image_size
        px = rng.standard_normal((b, 3, s, s)).astype(np.float32)
        outs = {r.name: np.asarray(r.fn(px)) for r in runners}
        ref = outs.get("torch")
        # The peaks are measured again right before each batch's rounds: on a shared machine
        # the share of the CPU we get drifts, and a peak from minutes ago would not compare.
        if args.peak_seconds > 0 and peaks.get("isa", "ref") != "ref":
            peaks.update(measure_peaks(peaks["isa"], args.threads, args.peak_seconds))
        log(f"  batch {b}: {args.warmup} warm-up + {args.reps} interleaved rounds of {', '.join(r.name for r in runners)}")
        times, busy = time_interleaved(runners, px, args.warmup, args.reps, args.settle, args.warm_calls)
        for r in runners:
            ts = times[r.name]
            p50, p90 = statistics.median(ts), _pct(ts, 0.9)
            ratio = statistics.median([o / a for a, o in zip(times[base], ts)])
            gf = fpi * b / p50 / 1e9 if fpi else None
            cells = [name, str(b), r.name, f"{p50 * 1e3:.1f}", f"{p90 * 1e3:.1f}", f"{b / p50:.2f}",
                     f"{gf:.1f}" if gf else "",
                     f"{100 * gf / peaks['gemm']:.0f}% of {peaks['gemm']:.0f}" if gf and "gemm" in peaks else "",
                     f"{100 * gf / peaks['fma']:.0f}% of {peaks['fma']:.0f}" if gf and "fma" in peaks else "",
                     f"{ratio:.2f}" + (" (ref)" if r.name == base else ""),
                     f"{statistics.median(busy[r.name]):.2f}", _diff(outs[r.name], ref)]
            speed.append("| " + " | ".join(cells) + " |")
            log("  " + speed[-1])
    if args.fresh_process:
        for r in runners:
            try:
                p = probe_fresh_process(r, args.threads, built.image_size)
            except Exception as e:  # noqa: BLE001
                log(f"  {r.name}: {e}")
                continue
            if p is None:
                continue
            extra = (p["peak_rss_kib"] - p["base_rss_kib"]) / 1024 if p.get("base_rss_kib") else float("nan")
            mem.append(f"| {name} | {r.name} | {p['cold_s'] * 1e3:.0f} | {p['peak_rss_kib'] / 1024:.0f} | {extra:.0f} |")
            log("  " + mem[-1])
    return base


def run(args, log=print) -> str:
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError as e:
        raise RuntimeError(f"pyvitcpp bench builds its models with PyTorch and transformers ({e}): "
                           "pip install 'pyvitcpp[bench]'") from None

    from . import _core

    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    info = _core.cpu_info()
    level = info["level"]
    peak_isa = next((i for i in args.isa if i), level) if args.isa else level
    peaks = measure_peaks(peak_isa, args.threads, args.peak_seconds, int8=True) if args.peak_seconds > 0 else {"isa": peak_isa}
    names = [m for m in args.models]
    if names == ["all"]:
        names = [n for n, s in MODELS.items() if not s.hidden]
    cmd = "pyvitcpp bench " + " ".join(shlex.quote(a) for a in (args.argv or []))
    head = [
        f"**pyvitcpp bench**: {_cpu_brand()}, {os.cpu_count()} logical CPUs, {args.threads} threads; "
        f"pyvitcpp level {level} (best {info['best_level']}); Python {platform.python_version()}, "
        f"torch {torch.__version__}" + _ort_version() + f"; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"Command: `{cmd}`",
        "",
        "Peaks (GFLOP/s, measured here before each batch's rounds, shown after 'of'): our F32 GEMM at "
        f"M=1576 K=768 N=3072 and a register-only FMA loop, {peak_isa}, {args.threads} threads; at the start: " + (
            f"GEMM {peaks['gemm']:.1f}, FMA {peaks['fma']:.1f}" if "gemm" in peaks else "not measured"),
        "",
        (f"Int8 (GOP/s, multiply-add = 2, at the start): a register-only "
         f"{'VNNI vpdpbusd' if peak_isa == 'avx512' else 'vpmaddubsw'} loop {peaks['int8']:.1f}; our Q8_0 GEMM at "
         f"that shape (activations quantized in the call) {peaks['q8_0']:.1f}, "
         f"{100 * peaks['q8_0'] / peaks['int8']:.0f}% of it; one thread per CPU second of it (perf cpu_time=True): "
         f"loop {peaks['int8_cpu']:.1f}, Q8_0 GEMM {peaks['q8_0_cpu']:.1f}, "
         f"{100 * peaks['q8_0_cpu'] / peaks['int8_cpu']:.0f}%" if "int8" in peaks else "Int8 peak: not measured"),
        "",
    ]
    speed = ["| model | batch | runtime | p50 ms | p90 ms | images/s | GFLOP/s | % GEMM peak | % FMA peak "
             f"| time / time({'{ref}'}) per round | CPU cores busy | max abs diff / cosine vs torch |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    mem = ["| model | runtime | cold start ms (open -> first result, fresh process) | peak RSS MB | RSS over the "
           "interpreter with the runtime imported MB |", "|---|---|---:|---:|---:|"]
    ref_name = None
    for name in names:
        if name not in MODELS:
            log(f"{name}: unknown model (known: {', '.join(n for n, s in MODELS.items() if not s.hidden)})")
            continue
        with tempfile.TemporaryDirectory(prefix=f"pyvitcpp-bench-{name}-") as tmp:
            ref_name = _bench_model(args, name, MODELS[name], tmp, peaks, speed, mem, log) or ref_name
    speed[0] = speed[0].replace("{ref}", ref_name or "ours")
    notes = ["",
             f"Each round: per runtime, {args.settle:g} s idle (--settle), {args.warm_calls} untimed call(s) "
             "(--warm-calls), then the timed call. "
             "p50/p90 over the timed rounds; GFLOP/s = FLOPs of the PyTorch reference (torch.utils.flop_counter, "
             "multiply-add = 2) x batch / p50. The ratio column is the median over rounds of this runtime's time "
             "over the reference runtime's time in the same round (> 1: ours is faster). CPU cores busy: process "
             "CPU time / wall time during the call (median; at most the thread count, lower when the machine is "
             "shared and the runtime's threads wait to be scheduled; spin-waiting counts as busy). Cold start excludes "
             "interpreter start and library import; peak RSS is VmHWM of that fresh process."]
    table = "\n".join(head + speed + ([""] + mem if len(mem) > 2 else []) + notes) + "\n"
    return table


def _ort_version() -> str:
    try:
        import onnxruntime

        return f", onnxruntime {onnxruntime.__version__}"
    except ImportError:
        return ""


def build_arg_parser(p: Optional[argparse.ArgumentParser] = None) -> argparse.ArgumentParser:
    if p is None:
        p = argparse.ArgumentParser(prog="pyvitcpp bench", description=__doc__,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=DEFAULT_MODELS,
                   help=f"model names or 'all' (default: {' '.join(DEFAULT_MODELS)}); known: "
                        + ", ".join(n for n, s in MODELS.items() if not s.hidden))
    p.add_argument("--batch", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=7, help="timed rounds (each calls every runtime once)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--runtimes", nargs="+", default=["ours", "torch", "ort", "ort-int8"],
                   help="ours, torch, ort, ort-int8")
    p.add_argument("--types", nargs="+", default=["f32"],
                   help="our weight types (pyvitcpp.convert outtypes: f32 f16 q8_0 ...); one row each")
    p.add_argument("--isa", nargs="+", default=None,
                   help="force our kernel levels side by side (e.g. avx2 avx512); default: the best one")
    p.add_argument("--settle", type=float, default=0.3,
                   help="idle seconds before each call, so no runtime's spin-waiting threads overlap "
                        "the next call (default 0.3)")
    p.add_argument("--warm-calls", type=int, default=1,
                   help="untimed calls of the same runtime right before each timed call, after the settle "
                        "(default 1: steady-state time, as a model served in a loop runs; 0: the first call "
                        "after --settle seconds idle, on cores that idled)")
    p.add_argument("--peak-seconds", type=float, default=1.0,
                   help="seconds per peak measurement (GEMM and FMA); 0 skips them")
    p.add_argument("--no-fresh-process", dest="fresh_process", action="store_false",
                   help="skip the cold-start / peak-RSS probes")
    p.add_argument("-o", "--markdown", help="append the markdown table to this file")
    return p


def run_from_args(args) -> int:
    table = run(args, log=lambda s: print(s, file=sys.stderr, flush=True))
    print(table)
    if args.markdown:
        with open(args.markdown, "a", encoding="utf-8") as f:
            f.write(table + "\n")
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_arg_parser().parse_args(argv)
    args.argv = argv
    return run_from_args(args)


if __name__ == "__main__":
    raise SystemExit(main())
