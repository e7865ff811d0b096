#!/usr/bin/env python
"""A/B timing of kernel hooks (layernorm, activation, dwconv2d, pool2d, qgemm) between two
builds of pyvitcpp._testing, loaded side by side in one process and called interleaved (the
order alternates per round), so machine noise hits both alike. Each sample is the best of
`--reps` calls; the report gives, per case and level, the median and the spread (min..max) of
the samples over the rounds, and the median of the per-round ratios new/old. Also checks that
both builds give the same bits for every case.

    python scripts/ab_kernels.py OLD/_testing.so NEW/_testing.so [--rounds 7] [--reps 5]
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this tree's pyvitcpp


def load(path: str, tag: str):
    spec = importlib.util.spec_from_file_location(f"ab_{tag}._testing", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def cases():
    g = np.random.default_rng(0)
    x_ln = (g.standard_normal((197 * 4, 768)) * 2).astype(np.float32)
    gam = g.standard_normal(768).astype(np.float32)
    bet = g.standard_normal(768).astype(np.float32)
    x_ln_odd = (g.standard_normal((256, 1000)) * 2).astype(np.float32)
    x_act = (g.standard_normal(197 * 3072) * 2).astype(np.float32)
    x_dw = g.standard_normal((1, 56, 56, 96)).astype(np.float32)
    w7 = (g.standard_normal((49, 96)) / 7).astype(np.float32)
    b96 = g.standard_normal(96).astype(np.float32)
    x_dw3 = g.standard_normal((1, 28, 28, 240)).astype(np.float32)
    w3 = (g.standard_normal((9, 240)) / 3).astype(np.float32)
    b240 = g.standard_normal(240).astype(np.float32)
    x_dw5 = g.standard_normal((1, 14, 14, 1000)).astype(np.float32)
    w5 = (g.standard_normal((25, 1000)) / 5).astype(np.float32)
    x_pool = g.standard_normal((1, 112, 112, 64)).astype(np.float32)
    from pyvitcpp import _core  # the quantizer only (the same in both builds)
    x_q = g.standard_normal((197, 768)).astype(np.float32)
    w8 = _core.quantize((g.standard_normal((768, 768)) * 0.05).astype(np.float32), "q8_0")
    w4 = _core.quantize((g.standard_normal((1024, 768)) * 0.05).astype(np.float32), "q4_1")
    return {
        "layernorm 788x768": lambda T, isa: T.layernorm(isa, x_ln, gam, bet, 1e-6, 1, False),
        "layernorm 256x1000 nogamma": lambda T, isa: T.layernorm(isa, x_ln_odd, None, None, 1e-6, 1, False),
        "gelu_erf 605k": lambda T, isa: T.activation(isa, x_act, 1, 1),
        "gelu_tanh 605k": lambda T, isa: T.activation(isa, x_act, 2, 1),
        "silu 605k": lambda T, isa: T.activation(isa, x_act, 7, 1),
        "dwconv 7x7 56x56x96": lambda T, isa: T.dwconv2d(isa, x_dw, w7, b96, 7, pad=3),
        "dwconv 3x3 s1 28x28x240 silu": lambda T, isa: T.dwconv2d(isa, x_dw3, w3, b240, 3, pad=1, act=7),
        "dwconv 5x5 s2 14x14x1000": lambda T, isa: T.dwconv2d(isa, x_dw5, w5, None, 5, stride=2, pad=2),
        "maxpool 3x3 s2 112x112x64": lambda T, isa: T.pool2d(isa, x_pool, 3, 2, pad=1),
        "avgpool 3x3 s1 112x112x64": lambda T, isa: T.pool2d(isa, x_pool, 3, 1, pad=1, is_max=False,
                                                             count_include_pad=False),
        "qgemm q8_0 197x768x768": lambda T, isa: T.qgemm(isa, x_q, w8, "q8_0"),
        "qgemm q4_1 197x1024x768 gelu": lambda T, isa: T.qgemm(isa, x_q, w4, "q4_1", None, 1),
        "qgemm q8_0 1x768x768": lambda T, isa: T.qgemm(isa, x_q[:1], w8, "q8_0"),
    }


def best_of(f, reps):
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--isa", nargs="*", default=["avx2", "avx512"])
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    old, new = load(args.old, "old"), load(args.new, "new")
    cs = {k: v for k, v in cases().items() if args.only in k}
    for isa in args.isa:
        for name, f in cs.items():
            a, b = f(old, isa), f(new, isa)
            if not np.array_equal(a, b, equal_nan=True):
                print(f"BITS DIFFER: {isa} {name}: max abs {np.nanmax(np.abs(a - b))}", flush=True)
    res = {}
    for r in range(args.rounds):
        for isa in args.isa:
            for name, f in cs.items():
                order = [("old", old), ("new", new)] if r % 2 == 0 else [("new", new), ("old", old)]
                for tag, T in order:
                    f(T, isa)  # warm
                    res.setdefault((isa, name, tag), []).append(best_of(lambda: f(T, isa), args.reps))
    print(f"{'level':7s} {'case':32s} {'old ms median (min..max)':>28s} {'new ms median (min..max)':>28s} "
          f"{'new/old median (min..max)':>26s}")
    for isa in args.isa:
        for name in cs:
            o, n = res[(isa, name, "old")], res[(isa, name, "new")]
            ratios = [b / a for a, b in zip(o, n)]
            fmt = lambda v: f"{1e3 * statistics.median(v):8.3f} ({1e3 * min(v):.3f}..{1e3 * max(v):.3f})"
            print(f"{isa:7s} {name:32s} {fmt(o):>28s} {fmt(n):>28s} "
                  f"{statistics.median(ratios):8.3f} ({min(ratios):.3f}..{max(ratios):.3f})", flush=True)


if __name__ == "__main__":
    sys.exit(main())
