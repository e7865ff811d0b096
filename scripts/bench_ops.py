#!/usr/bin/env python
"""Perf mode of the graph-op cases (tests/op_cases.py): each case at its model size, at every
kernel level the CPU runs, through _testing.graph_op_bench (a one-op graph run `--reps` times;
the figure is the median run, which includes copying the output out of the arena).
Prints GB/s as (bytes read + bytes written) / time, counting each input and output once.

    python scripts/bench_ops.py --threads 1 2 --reps 50
"""
import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, ROOT)

from op_cases import CASES  # noqa: E402
from pyvitcpp import _core, _testing  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--cases", nargs="*", default=None)
    args = ap.parse_args()
    levels = [lv for lv in ("ref", "avx2", "avx512") if _core.isa_supported(lv)[0]]
    print(f"| case | shapes | threads | " + " | ".join(f"{lv} us (GB/s)" for lv in levels) + " |")
    print("|---|---|---:|" + "---:|" * len(levels))
    for case in CASES:
        if args.cases and case.name not in args.cases:
            continue
        inputs = case.make(np.random.default_rng(0), case.perf)
        params = case.params(case.perf)
        out = _testing.graph_op("ref", case.op, inputs, 1, **params)
        nbytes = sum(x.size for x in inputs) * 4 + 2 * out.nbytes
        shapes = " ".join("x".join(map(str, x.shape)) for x in inputs)
        for nth in args.threads:
            cells = []
            for lv in levels:
                s = _testing.graph_op_bench(lv, case.op, inputs, nth, args.reps, **params)
                cells.append(f"{s * 1e6:.0f} ({nbytes / s * 1e-9:.1f})")
            print(f"| {case.name} | {shapes} | {nth} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
