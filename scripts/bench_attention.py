#!/usr/bin/env python
"""Fused attention GFLOP/s vs the same level's F32 GEMM, same thread count, same run.

    python scripts/bench_attention.py [--levels avx2 avx512] [--threads 1 2] [--repeats 3]

Attention flops are counted as 4 B H Tq Tk Dh (Q.K^T and P.V); the relative-position term's own
work (2 (gh + gw) Dh per query row and head for the dot products, one add per score) is NOT
counted, so "with rel-pos" shows what that term costs in attention throughput. The GEMM is
gemm_bench's F32 GEMM with bias (2 M N K flops) at M=4096, N=768, K=768 (a 4096-token layer's
projection); the ratio is attention GFLOP/s / GEMM GFLOP/s.

Shapes: B=1, H=12, Dh=64 at T=4096 (a 64 x 64 grid: SAM ViT-B global attention) and T=197
(ViT-B/16; no grid, so its rel-pos row uses T=196, a 14 x 14 window as in SAM's windowed blocks).
Times are attention_bench's median per call (real threads). On a shared, noisy machine the GEMM
and the attention are measured --repeats times, interleaved, and both the best and the median
rates are printed with their ratios (the best of each is the least disturbed).
"""
import argparse
import math
import statistics

from pyvitcpp import _testing as T


def gflops_attention(level, B, H, T_, Dh, threads, min_s, rel_gh=0):
    s = T.attention_bench(level, B, H, T_, Dh, threads, min_s, rel_gh=rel_gh)
    return 4.0 * B * H * T_ * T_ * Dh / s / 1e9, s


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", nargs="+", default=["avx2", "avx512"])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--tokens", nargs="+", type=int, default=[4096, 197])
    ap.add_argument("--gemm", default="4096x768x768", help="MxNxK of the F32 GEMM")
    ap.add_argument("--min-seconds", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=3,
                    help="per level and thread count, measure the GEMM and every attention shape this many "
                         "times, interleaved; print the best and the median of each, and both ratios")
    a = ap.parse_args()
    M, N, K = (int(x) for x in a.gemm.split("x"))
    B, H, Dh = 1, 12, 64
    print(f"attention B={B} H={H} Dh={Dh}; flops 4*B*H*T*T*Dh (rel-pos work not counted); "
          f"GEMM f32 {M}x{N}x{K} (2MNK); {a.repeats} interleaved repeats: best / median GFLOP/s")
    print(f"{'level':>6} {'thr':>3} {'T':>5} {'rel':>6} {'attn best':>9} {'med':>6} {'gemm best':>9} {'med':>6} "
          f"{'ratio best':>10} {'med':>5}")
    for level in a.levels:
        ok, missing = T.ops_isa_supported(level)
        if not ok:
            print(f"{level}: skipped (needs {missing})")
            continue
        for thr in a.threads:
            rows = []
            for T_ in a.tokens:
                rows.append((T_, 0))
                g = int(math.isqrt(T_))
                if g * g == T_:
                    rows.append((T_, g))
                else:
                    g = int(math.isqrt(T_ - 1))
                    if g * g == T_ - 1:
                        rows.append((T_ - 1, g))
            gemm, attn = [], {r: [] for r in rows}
            for _ in range(a.repeats):
                gemm.append(T.gemm_bench(level, M, N, K, "f32", thr, a.min_seconds))
                for t, gh in rows:
                    attn[(t, gh)].append(gflops_attention(level, B, H, t, Dh, thr, a.min_seconds, gh)[0])
            gb, gm = max(gemm), statistics.median(gemm)
            for t, gh in rows:
                v = attn[(t, gh)]
                ab, am = max(v), statistics.median(v)
                rel = f"{gh}x{t // gh}" if gh else "-"
                print(f"{level:>6} {thr:>3} {t:>5} {rel:>6} {ab:>9.1f} {am:>6.1f} {gb:>9.1f} {gm:>6.1f} "
                      f"{ab / gb:>10.2f} {am / gm:>5.2f}", flush=True)


if __name__ == "__main__":
    main()
