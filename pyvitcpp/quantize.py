"""Re-quantize a GGUF model file (F32/F16) into a ggml block type, in C++ (multi-threaded).

    >>> import pyvitcpp
    >>> pyvitcpp.quantize("vit-f32.gguf", "vit-q8_0.gguf", "q8_0")

Every metadata key is kept (``general.file_type`` is set to the target's ggml file type); 1-D
tensors and the position/class/distillation embeddings keep their type; a matrix whose rows
(ggml ``ne[0]``) are not a multiple of 32 (e.g. the 4-D patch-embedding conv, rows of ``p``)
falls back to F16, and the summary says so.
"""
from __future__ import annotations

import numbers
import os
import sys
from typing import List, Tuple

QUANT_TYPES = ("q8_0", "q4_0", "q4_1", "q5_0", "q5_1")


def quantize(src, dst, type: str = "q8_0", *, threads: int = 0,
             verbose: bool = False) -> List[Tuple[str, str, str, str]]:
    """Write ``dst`` (atomically) from ``src`` with its matrices in ``type``.

    Returns one ``(name, from_type, to_type, note)`` per tensor; ``note`` is empty when the
    tensor became ``type`` and otherwise says why it did not.
    """
    from . import _core

    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral):
        raise TypeError(f"threads must be an integer (0: all cores), got {threads!r}")
    if not 0 <= threads <= _core.MAX_THREADS:
        raise ValueError(f"threads must be between 0 (all cores) and {_core.MAX_THREADS}, got {threads}")
    src, dst = os.fspath(src), os.fspath(dst)
    if not os.path.exists(src):
        raise FileNotFoundError(f"no such file: {src}")
    if os.path.abspath(src) == os.path.abspath(dst):
        raise ValueError("the output must be a different file from the input")
    parent = os.path.dirname(os.path.abspath(dst))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"output directory does not exist: {parent}")
    if type.lower() not in QUANT_TYPES + ("f16", "f32"):
        raise ValueError(f"unknown quantization type {type!r}; choose from {', '.join(QUANT_TYPES)}")
    plan = _core.requantize(src, dst, type.lower(), threads)
    if verbose:
        print_summary(dst, type.lower(), plan)
    return plan


def print_summary(dst: str, type: str, plan, file=None) -> None:
    file = file if file is not None else sys.stderr
    n_q = sum(1 for p in plan if p[2] == type)
    print(f"wrote {dst}: {len(plan)} tensors, {n_q} as {type}, {os.path.getsize(dst) / 2**20:.2f} MiB", file=file)
    fallback = [p for p in plan if p[3].startswith("f16 fallback")]
    for name, _f, _t, why in fallback:
        print(f"  note: {name}: {why}", file=file)
