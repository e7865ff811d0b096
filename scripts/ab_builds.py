#!/usr/bin/env python
"""A/B two builds of pyvitcpp on the same models, interleaved: is the new build slower?

Each tree is a source checkout with its built `_core` copied into its `pyvitcpp/` (what
scripts/dev_build.sh leaves). The models are pyvitcpp.bench's seeded-random references,
converted once (by the first tree's converter) and run by both builds. Every round runs each
(model, type, batch) once per build, alternating which build goes first, each in a fresh
process (warmup, then `--reps` timed forwards; the round's figure is their median). The report
gives, per row, the median time (wall, or process CPU time with --cpu-time) of each build and the new/old ratio's median and range over the
rounds: read a range that straddles 1 as a tie.

    python scripts/ab_builds.py --old /path/old --new /path/new --models all --batch 1 8 \
        --types f32 q8_0 --threads 2 --rounds 3

One build with a switch off and on: the same tree twice, `--old-env VAR=VALUE` set for the old
side only (e.g. `--old . --new . --old-env PYVITCPP_WINOGRAD=0`).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = r"""
import json, sys, time
import numpy as np
import pyvitcpp
path, out, batch, size, threads, warmup, reps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
enc = pyvitcpp.Encoder(path, threads=threads)
px = np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32)
for _ in range(warmup):
    enc.forward(px, [out])
ts, cs = [], []
for _ in range(reps):
    t0, c0 = time.perf_counter(), time.process_time()
    enc.forward(px, [out])
    ts.append(time.perf_counter() - t0)
    cs.append(time.process_time() - c0)
ts.sort()
cs.sort()
print(json.dumps({"p50": ts[len(ts) // 2], "cpu50": cs[len(cs) // 2], "file": pyvitcpp.__file__}))
"""


def run_child(tree, path, out, batch, size, threads, warmup, reps, metric, extra_env=None):
    env = dict(os.environ, PYTHONPATH=tree, **(extra_env or {}))
    r = subprocess.run([sys.executable, "-c", CHILD, path, out, str(batch), str(size), str(threads), str(warmup),
                        str(reps)], capture_output=True, text=True, env=env, timeout=1800, cwd=tempfile.gettempdir())
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-2000:])
    res = json.loads(r.stdout.strip().splitlines()[-1])
    if not res["file"].startswith(os.path.abspath(tree)):
        raise RuntimeError(f"{tree}: imported {res['file']} instead")
    return res[metric]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", required=True)
    ap.add_argument("--new", required=True)
    ap.add_argument("--models", nargs="+", default=["all"])
    ap.add_argument("--batch", nargs="+", type=int, default=[1, 8])
    ap.add_argument("--types", nargs="+", default=["f32", "q8_0"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--cpu-time", action="store_true",
                    help="compare process CPU time per forward instead of wall time (steadier on a busy "
                         "machine; with --threads 1 it is the work itself, spin-waiting aside)")
    ap.add_argument("--old-env", nargs="*", default=[], metavar="VAR=VALUE",
                    help="environment variables set for the old side only (an A/B of a switch in one build)")
    args = ap.parse_args()
    old_env = {}
    for kv in args.old_env:
        if "=" not in kv:
            ap.error(f"--old-env takes VAR=VALUE, got {kv!r}")
        k, v = kv.split("=", 1)
        old_env[k] = v
    sys.path.insert(0, os.path.abspath(args.new))
    from pyvitcpp import bench, convert

    names = [n for n, s in bench.MODELS.items() if not s.hidden] if args.models == ["all"] else args.models
    tmp = tempfile.mkdtemp(prefix="ab_builds_")
    rows = []
    for name in names:
        spec = bench.MODELS[name]
        folder = os.path.join(tmp, name)
        os.makedirs(folder, exist_ok=True)
        built = spec.build(folder)
        for t in args.types:
            path = os.path.join(tmp, f"{name}-{t}.gguf")
            convert(built.src, path, outtype=t, **built.convert_kwargs)
            for b in args.batch:
                if spec.max_batch and b > spec.max_batch:
                    continue
                rows.append((name, t, b, path, built.ours_output, built.image_size))
    trees = {"old": os.path.abspath(args.old), "new": os.path.abspath(args.new)}
    times = {r[:3]: {"old": [], "new": []} for r in rows}
    for rnd in range(args.rounds):
        order = ["old", "new"] if rnd % 2 == 0 else ["new", "old"]
        for name, t, b, path, out, size in rows:
            for k in order:
                times[(name, t, b)][k].append(
                    run_child(trees[k], path, out, b, size, args.threads, args.warmup, args.reps,
                              "cpu50" if args.cpu_time else "p50", old_env if k == "old" else None))
        print(f"round {rnd + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    what = "CPU s" if args.cpu_time else "p50"
    print(f"| model | type | batch | old {what} | new {what} | new/old (median, range over {args.rounds} rounds) |")
    print("|---|---|---:|---:|---:|---|")
    for name, t, b, *_ in rows:
        o, n = times[(name, t, b)]["old"], times[(name, t, b)]["new"]
        ratios = [x / y for x, y in zip(n, o)]
        print(f"| {name} | {t} | {b} | {statistics.median(o) * 1e3:.1f} ms | {statistics.median(n) * 1e3:.1f} ms | "
              f"{statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f}) |")


if __name__ == "__main__":
    main()
