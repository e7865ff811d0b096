#!/usr/bin/env python
"""Folder-embedding benchmark: `pyvitcpp embed DIR` with the default model (EfficientNet-Lite0)
with --workers 0 (decode in the main thread), 1, and the default pool, against the same loop in
PyTorch (timm tf_efficientnet_lite0 + a DataLoader with workers decoding and preprocessing the
same way: PIL bicubic shortest edge 256, centre crop 224). Images/s over a folder of JPEGs cut
from scikit-image photos (random crops, 300..640 px). Runs are interleaved and repeated; the
machine may be shared, so compare ratios within a round, and the medians.

    python scripts/bench_embed_folder.py --images 300 --rounds 3
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np


def make_folder(folder: str, n: int, seed: int = 0) -> None:
    import skimage.data as d
    from PIL import Image

    srcs = [d.chelsea(), d.coffee(), d.astronaut(), d.rocket(), d.immunohistochemistry()]
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    for i in range(n):
        img = srcs[i % len(srcs)]
        h = int(rng.integers(min(300, img.shape[0] // 2), img.shape[0]))
        w = int(rng.integers(min(300, img.shape[1] // 2), img.shape[1]))
        y, x = int(rng.integers(0, img.shape[0] - h + 1)), int(rng.integers(0, img.shape[1] - w + 1))
        crop = Image.fromarray(np.ascontiguousarray(img[y:y + h, x:x + w]))
        s = float(rng.uniform(1.0, 1.6))  # some larger than the source
        crop.resize((int(w * s), int(h * s)), Image.Resampling.BILINEAR).save(
            os.path.join(folder, f"{i:05d}.jpg"), quality=90)


def timed(cmd, **kw):
    """(wall seconds, CPU seconds user + system) of a child process."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, **kw)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def run_ours(folder: str, out: str, workers: int | None, batch: int):
    cmd = [sys.executable, "-m", "pyvitcpp", "embed", folder, "-o", out, "-q", "-b", str(batch)]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    return timed(cmd)


_TORCH = r'''
import sys, time, os, torch, timm
from PIL import Image
from torchvision import transforms as T
folder, workers, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
t0 = time.perf_counter()
files = sorted(os.path.join(folder, f) for f in os.listdir(folder))
tf = T.Compose([T.Resize(256, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224), T.ToTensor(),
                T.Normalize((0.5,) * 3, (0.5,) * 3)])
class DS(torch.utils.data.Dataset):
    def __len__(self): return len(files)
    def __getitem__(self, i):
        with Image.open(files[i]) as im:
            return tf(im.convert("RGB"))
model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000).eval()
dl = torch.utils.data.DataLoader(DS(), batch_size=batch, num_workers=workers)
out = []
with torch.inference_mode():
    for x in dl:
        out.append(model.forward_head(model.forward_features(x), pre_logits=True))
emb = torch.cat(out).numpy()
assert emb.shape == (len(files), 1280)
print(time.perf_counter() - t0)
'''


def run_torch(folder: str, workers: int, batch: int):
    return timed([sys.executable, "-c", _TORCH, folder, str(workers), str(batch)], stdout=subprocess.DEVNULL)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--torch-workers", type=int, default=2)
    ap.add_argument("--folder", default=None, help="reuse / create the JPEG folder here")
    args = ap.parse_args()
    from pyvitcpp.default_model import default_model_path
    from pyvitcpp.pipeline import default_workers

    default_model_path(verbose=True)  # convert once outside the timing
    tmp = tempfile.mkdtemp(prefix="pyvitcpp-bench-")
    folder = args.folder or os.path.join(tmp, "jpgs")
    if not os.path.isdir(folder) or len(os.listdir(folder)) < args.images:
        make_folder(folder, args.images)
    n = len(os.listdir(folder))
    cases = {
        "pyvitcpp embed --workers 0": lambda: run_ours(folder, os.path.join(tmp, "a.npy"), 0, args.batch),
        "pyvitcpp embed --workers 1": lambda: run_ours(folder, os.path.join(tmp, "b.npy"), 1, args.batch),
        f"pyvitcpp embed (default: {default_workers()} workers)":
            lambda: run_ours(folder, os.path.join(tmp, "c.npy"), None, args.batch),
        f"PyTorch timm + DataLoader(num_workers={args.torch_workers})":
            lambda: run_torch(folder, args.torch_workers, args.batch),
    }
    times = {k: [] for k in cases}
    for r in range(args.rounds):
        for k, fn in cases.items():
            times[k].append(fn())
            w, c = times[k][-1]
            print(f"round {r}: {k}: {n / w:.1f} img/s, {1000 * c / n:.1f} CPU ms/img", file=sys.stderr, flush=True)
    print(f"\n{n} JPEGs, batch {args.batch}, {os.cpu_count()} logical CPUs, the whole command (process start, "
          "model load, decode, run, write); images/s = wall clock, CPU ms/img = user + system time of the process:")
    print("| command | images/s (median) | all rounds | CPU ms/img (median) |")
    print("|---|---|---|---|")
    for k, ts in times.items():
        walls = [t[0] for t in ts]
        print(f"| {k} | {n / statistics.median(walls):.1f} | {', '.join(f'{n / t:.1f}' for t in walls)} | "
              f"{1000 * statistics.median(t[1] for t in ts) / n:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
