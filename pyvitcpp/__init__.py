"""pyvitcpp: vision encoders on the CPU from GGUF weights.

    >>> import pyvitcpp
    >>> enc = pyvitcpp.Encoder("vit.gguf")
    >>> emb = enc.encode(["cat.jpg", "dog.jpg"])          # (2, D) float32
    >>> enc.classify("cat.jpg", top_k=3)                   # [{'label', 'score', 'index'}, ...]
"""
from __future__ import annotations

__version__ = "0.1.0"

from ._core import GGUFError, ModelError  # noqa: E402
from .encoder import Encoder, load  # noqa: E402
from . import perf  # noqa: E402  (measurement tools: pyvitcpp.perf.fma_peak, gemm_bench)
# The function deliberately shadows its submodule's name: pyvitcpp.quantize(src, dst, "q8_0").
from .quantize import quantize  # noqa: E402


def cpu_info() -> dict:
    """CPU features, the kernel levels this machine can run and the level in use."""
    from . import _core

    return _core.cpu_info()


def convert(src, out, **kwargs):
    """Convert a checkpoint (HF folder or timm state dict) to GGUF; see pyvitcpp.convert.convert."""
    from .convert import convert as _convert

    return _convert(src, out, **kwargs)


__all__ = ["Encoder", "load", "convert", "quantize", "cpu_info", "perf", "GGUFError", "ModelError", "__version__"]
