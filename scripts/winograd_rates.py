"""One 3x3 stride-1 conv at a time, one thread: the direct conv against Winograd F(4x4, 3x3)
(GFLOP/s of the thread's CPU time, the direct conv's FLOPs over the time, SiLU epilogue, best of
two passes), at YOLO and ResNet shapes, on the avx512 and avx2 levels this CPU runs.

    PYTHONPATH=. python scripts/winograd_rates.py
"""
from __future__ import annotations

from pyvitcpp import _core
from pyvitcpp import _testing as T

SHAPES = [(160, 160, 16, 16), (80, 80, 32, 32), (80, 80, 64, 64), (40, 40, 64, 64), (20, 20, 64, 64),
          (20, 20, 128, 128), (56, 56, 64, 64), (28, 28, 128, 128), (14, 14, 256, 256), (7, 7, 512, 512)]
SILU = 7


def main() -> None:
    levels = [isa for isa in ("avx512", "avx2") if _core.isa_supported(isa)[0]]
    head = "| H x W, C -> OC |" + "".join(f" {isa} direct | {isa} Winograd | ratio |" for isa in levels)
    print(head)
    print("|---|" + "---:|" * (3 * len(levels)))
    for (H, W, C, OC) in SHAPES:
        cells = []
        for isa in levels:
            r = [T.conv_rate(isa, 1, H, W, C, OC, 3, 1, 1, path=p, reps=3, act=SILU)
                 for p in ("direct", "winograd", "direct", "winograd")]
            d, w = max(r[0], r[2]), max(r[1], r[3])
            cells += [f"{d:.0f}", f"{w:.0f}", f"{w / d:.2f}"]
        print(f"| {H}x{W}, {C} -> {OC} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
