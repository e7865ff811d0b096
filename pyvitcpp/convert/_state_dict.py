"""Reading weight files into ``{name: float32 ndarray}``.

safetensors files are read without torch when their dtypes allow it (numpy has no bfloat16);
pickled checkpoints (.pth/.pt/.bin) need torch and are loaded with ``weights_only=True`` so a
checkpoint cannot run code.
"""
from __future__ import annotations

import json
import os
from typing import Dict, Iterable, Optional

import numpy as np

from ._model import ConversionError, as_f32

SAFETENSORS_EXT = (".safetensors",)
TORCH_EXT = (".pth", ".pt", ".bin", ".ckpt")


def _import_torch(path: str):
    try:
        import torch
    except ImportError as e:
        raise ConversionError(
            f"{path} is a PyTorch pickle: reading it needs torch (pip install torch), "
            "or convert it to .safetensors first") from e
    return torch


def _load_safetensors(path: str) -> Dict[str, np.ndarray]:
    try:
        from safetensors import safe_open
    except ImportError as e:
        raise ConversionError("reading .safetensors files needs the safetensors package "
                              "(pip install safetensors)") from e
    try:
        with safe_open(path, framework="numpy") as f:
            return {k: as_f32(f.get_tensor(k)) for k in f.keys()}
    except Exception as e_np:  # bf16 (numpy has none) or a damaged file
        try:
            import torch  # noqa: F401
        except ImportError:
            raise ConversionError(f"cannot read {path} without torch: {e_np}") from e_np
        try:
            with safe_open(path, framework="pt") as f:
                return {k: as_f32(f.get_tensor(k)) for k in f.keys()}
        except Exception as e:
            raise ConversionError(f"cannot read {path}: {e}") from e


def _unwrap(obj, path: str):
    """Checkpoints often wrap the state dict: {'state_dict': ...}, {'model': ...}, {'model_ema': ...}."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "module", "state_dict_ema", "model_ema"):
            inner = obj.get(key)
            if isinstance(inner, dict) and inner and any(hasattr(v, "shape") for v in inner.values()):
                return inner
        if any(hasattr(v, "shape") for v in obj.values()):
            return obj
    raise ConversionError(
        f"{path} does not hold a state dict (a mapping of tensor names to tensors, possibly under "
        "'state_dict' or 'model')")


def _load_torch(path: str) -> Dict[str, np.ndarray]:
    torch = _import_torch(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle errors come in many types
        raise ConversionError(f"cannot read {path} with torch.load(weights_only=True): {e}") from e
    sd = _unwrap(obj, path)
    return {k: as_f32(v) for k, v in sd.items() if hasattr(v, "shape")}


def strip_prefix(sd: Dict[str, np.ndarray], prefixes: Iterable[str] = ("module.",)) -> Dict[str, np.ndarray]:
    """Drop a prefix every key carries (DistributedDataParallel's 'module.')."""
    for p in prefixes:
        if sd and all(k.startswith(p) for k in sd):
            sd = {k[len(p):]: v for k, v in sd.items()}
    return sd


def load_state_dict(path: str) -> Dict[str, np.ndarray]:
    """A weights file -> ``{name: float32 ndarray}``."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"weights file not found: {path}")
    if os.path.isdir(path):
        raise ConversionError(f"{path} is a directory, expected a weights file")
    low = path.lower()
    if low.endswith(SAFETENSORS_EXT):
        sd = _load_safetensors(path)
    elif low.endswith(TORCH_EXT):
        sd = _load_torch(path)
    else:
        raise ConversionError(
            f"unknown weights file type {os.path.basename(path)!r}: expected .safetensors, "
            ".pth, .pt or .bin")
    if not sd:
        raise ConversionError(f"{path} holds no tensors")
    return strip_prefix(sd)


def state_dict_keys(path: str) -> Optional[list]:
    """The tensor names of a weights file without reading the tensors (safetensors header, or
    the pickle of a .pth through the restricted unpickler; a 'module.' prefix dropped), or None
    for other file types. Cheap enough for ``--source auto`` detection."""
    low = path.lower()
    if low.endswith(SAFETENSORS_EXT):
        import struct
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            keys = [k for k in json.loads(f.read(n)) if k != "__metadata__"]
    elif low.endswith(TORCH_EXT):
        from . import torch_zip
        keys = [k for k, _ in torch_zip.keys_and_shapes(path)]
    else:
        return None
    if keys and all(k.startswith("module.") for k in keys):
        keys = [k[len("module."):] for k in keys]
    return keys


def state_dict_keys_or_none(path: str) -> Optional[list]:
    """:func:`state_dict_keys` for source detection: None for anything that is not a readable
    weights file."""
    if not os.path.isfile(path):
        return None
    try:
        return state_dict_keys(path)
    except Exception:
        return None


def find_hf_weights(folder: str) -> Optional[list]:
    """The weight files of a Hugging Face folder, preferring safetensors; sharded checkpoints
    (``*.index.json``) give their shards.  None when there are none."""
    for single, index in (("model.safetensors", "model.safetensors.index.json"),
                          ("pytorch_model.bin", "pytorch_model.bin.index.json")):
        p = os.path.join(folder, single)
        if os.path.isfile(p):
            return [p]
        ip = os.path.join(folder, index)
        if os.path.isfile(ip):
            with open(ip, encoding="utf-8") as f:
                weight_map = json.load(f).get("weight_map", {})
            shards = sorted(set(weight_map.values()))
            paths = [os.path.join(folder, s) for s in shards]
            for sp in paths:
                if not os.path.isfile(sp):
                    raise FileNotFoundError(f"shard listed in {index} not found: {sp}")
            return paths
    return None


def load_files(paths) -> Dict[str, np.ndarray]:
    sd: Dict[str, np.ndarray] = {}
    for p in paths:
        sd.update(load_state_dict(p))
    return sd
