"""Measurement tools: the peaks `pyvitcpp bench` reports our GEMM and the models against.

    >>> import pyvitcpp
    >>> pyvitcpp.perf.fma_peak("avx2", threads=2)                      # GFLOP/s, FMA loop
    >>> pyvitcpp.perf.gemm_bench("avx2", 197 * 8, 3072, 768, threads=2)  # GFLOP/s, our GEMM
    >>> pyvitcpp.perf.int8_peak("avx512", threads=2)                   # GOP/s, vpdpbusd loop
    >>> pyvitcpp.perf.gemm_bench("avx512", 197 * 8, 3072, 768, "q8_0", threads=2)  # vs int8_peak

All three run the named kernel level ("avx2" or "avx512"; `gemm_bench` also "ref"), raise ValueError
for an unknown level and RuntimeError for one this CPU cannot run, release the GIL, time on
real threads with a barrier after each round, and return the best of 5 timed chunks after a
warm-up (the best chunk is the one least disturbed by other work on a shared machine). With
`per_cycle=True` (one thread) they count core cycles of the calling thread instead
(perf_event_open) and return flop per cycle; with `cpu_time=True` (one thread) they divide by
the CPU seconds of the calling thread instead of wall seconds, which on a shared machine gives
the rate of the core while the thread actually ran (where perf_event_open is refused). docs/PERFORMANCE.md says how the figures are used.
"""
from __future__ import annotations

from ._core import perf as _perf

__all__ = ["fma_peak", "gemm_bench", "int8_peak"]


def fma_peak(isa: str, threads: int = 1, min_seconds: float = 0.5, per_cycle: bool = False,
             cpu_time: bool = False) -> float:
    """GFLOP/s of a register-only loop of independent FMAs at the level's vector width, summed
    over `threads` threads: the machine's peak as our kernels can reach it. per_cycle=True
    (threads=1): flop per core cycle instead."""
    return _perf.fma_peak(isa, threads=threads, min_seconds=min_seconds, per_cycle=per_cycle, cpu_time=cpu_time)


def gemm_bench(isa: str, M: int, N: int, K: int, wtype: str = "f32", threads: int = 1,
               min_seconds: float = 1.0, per_cycle: bool = False, cpu_time: bool = False) -> float:
    """GFLOP/s (2*M*N*K per call) of the level's GEMM with bias, Y[M,N] = X[M,K] . W[N,K]^T + b,
    on seeded random data, W packed once outside the timing as a loaded model's is. wtype: f32,
    f16, or a block type (q8_0, q4_0, q4_1, q5_0, q5_1; K a multiple of 32), which times the
    quantized GEMM with the activations quantized inside the timed call. per_cycle=True
    (threads=1): flop per core cycle instead; cpu_time=True (threads=1): per CPU second."""
    return _perf.gemm_bench(isa, M, N, K, wtype, threads=threads, min_seconds=min_seconds, per_cycle=per_cycle,
                            cpu_time=cpu_time)


def int8_peak(isa: str, threads: int = 1, min_seconds: float = 0.5, per_cycle: bool = False,
              cpu_time: bool = False) -> float:
    """GOP/s (multiply-add = 2, as gemm_bench counts 2*M*N*K) of a register-only loop of the
    level's int8 dot-product instruction, independent accumulators, summed over `threads`
    threads: avx512, VNNI vpdpbusd (u8 x s8 -> s32, 64 products per instruction), the
    instruction of the avx512 block-quantized GEMM; avx2, vpmaddubsw (u8 x s8 -> s16 pairs,
    32 products), the avx2 one's. The peak a block-type gemm_bench is judged by.
    per_cycle=True (threads=1): ops per core cycle instead."""
    return _perf.int8_peak(isa, threads=threads, min_seconds=min_seconds, per_cycle=per_cycle, cpu_time=cpu_time)
