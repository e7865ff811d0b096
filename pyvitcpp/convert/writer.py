"""GGUF writing (and reading back) for every converter loader.

Tensors are handed to gguf-py in PyTorch shape order; gguf-py stores ggml's reversed ``ne`` itself.
Type policy (docs/GGUF_SCHEMA.md): 1-D tensors, ``v.class_embd``, ``v.dist_embd`` and
``v.position_embd.weight`` stay F32; with ``outtype="f16"`` every other tensor (matrices and the 4-D
patch conv) is F16, unless it holds values F16 cannot represent (kept F32, with a note).
With a block type (``q8_0``, ``q4_0``, ``q4_1``, ``q5_0``, ``q5_1``) the matrices are quantized by
pyvitcpp's C++ quantizer (byte-identical to ``gguf.quants.quantize``); a matrix whose rows are not a
multiple of 32 (the 4-D patch conv: rows of ``p``) falls back to F16, with a note.
"""
from __future__ import annotations

import os
import sys
import uuid
from typing import Dict, List, Tuple

import numpy as np

from ._model import (BOOL, F32, F32_ARRAY, STR, STR_ARRAY, U32, U32_ARRAY, ConversionError,
                     ConvertedModel)

QUANT_OUTTYPES = ("q8_0", "q4_0", "q4_1", "q5_0", "q5_1")
OUTTYPES = ("f32", "f16") + QUANT_OUTTYPES
# ggml's LLAMA_FTYPE: ALL_F32, MOSTLY_F16, MOSTLY_Q8_0, MOSTLY_Q4_0, MOSTLY_Q4_1, MOSTLY_Q5_0, MOSTLY_Q5_1
FILE_TYPE = {"f32": 0, "f16": 1, "q8_0": 7, "q4_0": 2, "q4_1": 3, "q5_0": 8, "q5_1": 9}

# Tensors that stay F32 whatever the outtype: the engine adds them to activations directly
# (SAM's rel-pos tables enter the attention scores).
ALWAYS_F32 = frozenset({"v.class_embd", "v.dist_embd", "v.position_embd.weight"})
ALWAYS_F32_SUFFIXES = (".attn_rel_h", ".attn_rel_w",
                       ".attn_rel_bias", ".cpb_fc1.weight", ".cpb_fc2.weight")  # Swin's position bias
# Tensors kept for a later decoder (SAM's prompt encoder and mask decoder): F32, or F16 for
# matrices, never block-quantized.
NEVER_QUANTIZED_PREFIXES = ("sam.pe.", "sam.md.", "sam.shared_pe.")


def always_f32(name: str) -> bool:
    return name in ALWAYS_F32 or name.endswith(ALWAYS_F32_SUFFIXES)

_F16_MAX = float(np.finfo(np.float16).max)


def tensor_dtype(name: str, arr: np.ndarray, outtype: str) -> np.dtype:
    if outtype == "f32" or arr.ndim < 2 or always_f32(name):
        return np.dtype(np.float32)
    if arr.size and float(np.max(np.abs(arr))) > _F16_MAX:
        return np.dtype(np.float32)
    return np.dtype(np.float16)


def _add_kv(w, key: str, value, kind: str) -> None:
    import gguf
    T = gguf.GGUFValueType
    if kind == U32:
        w.add_uint32(key, int(value))
    elif kind == F32:
        w.add_float32(key, float(value))
    elif kind == STR:
        w.add_string(key, str(value))
    elif kind == BOOL:
        w.add_bool(key, bool(value))
    elif kind in (U32_ARRAY, F32_ARRAY, STR_ARRAY):
        sub = {U32_ARRAY: T.UINT32, F32_ARRAY: T.FLOAT32, STR_ARRAY: T.STRING}[kind]
        conv = {U32_ARRAY: int, F32_ARRAY: float, STR_ARRAY: str}[kind]
        vals = [conv(v) for v in value]
        try:
            w.add_key_value(key, vals, T.ARRAY, sub_type=sub)
        except TypeError:  # gguf-py without sub_type: element type inferred (ints become i32)
            w.add_array(key, vals)
    else:  # pragma: no cover - programming error
        raise ValueError(f"unknown metadata kind {kind!r} for {key}")


def write_gguf(model: ConvertedModel, out: str, outtype: str = "f16", verbose: bool = True) -> str:
    """Write ``model`` to ``out`` (atomically: a temporary file renamed on success)."""
    import gguf

    if outtype not in OUTTYPES:
        raise ConversionError(f"unsupported outtype {outtype!r} (choose from {', '.join(OUTTYPES)})")
    out = os.fspath(out)
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"output directory does not exist: {parent}")

    typed: List[Tuple[str, np.ndarray]] = []
    kept_f32: List[str] = []
    quantized: Dict[str, object] = {}   # name -> gguf quant type of the uint8 blocks in typed
    fell_back: List[str] = []
    for name, arr in model.tensors.items():
        if (outtype in QUANT_OUTTYPES and arr.ndim >= 2 and not always_f32(name)
                and not name.startswith(NEVER_QUANTIZED_PREFIXES)):
            if arr.shape[-1] % 32 == 0 and np.all(np.isfinite(arr)):
                from .. import _core
                qt = getattr(gguf.GGMLQuantizationType, outtype.upper())
                typed.append((name, _core.quantize(np.ascontiguousarray(arr, dtype=np.float32), outtype)))
                quantized[name] = qt
                continue
            fell_back.append(name)
        dt = tensor_dtype(name, arr, "f16" if outtype in QUANT_OUTTYPES else outtype)
        if outtype != "f32" and dt == np.float32 and arr.ndim >= 2 and not always_f32(name):
            kept_f32.append(name)
        typed.append((name, np.ascontiguousarray(arr.astype(dt, copy=False))))

    if os.path.exists(out) and not os.path.isfile(out):
        raise (IsADirectoryError if os.path.isdir(out) else OSError)(
            f"output is not a regular file: {out}")
    # A temporary name of our own in the same folder, renamed over ``out`` only when complete:
    # a reader that has ``out`` memory-mapped keeps the old file, a failure leaves no partial
    # output, and an existing ``out`` survives a failed conversion.
    tmp = os.path.join(parent, f".{os.path.basename(out)}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")
    w = gguf.GGUFWriter(tmp, model.arch)
    try:
        w.add_file_type(FILE_TYPE[outtype])
        for key, value, kind in model.metadata():
            _add_kv(w, key, value, kind)
        for name, arr in typed:
            if name in quantized:
                w.add_tensor(name, arr, raw_shape=arr.shape, raw_dtype=quantized[name])
            else:
                w.add_tensor(name, arr)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        os.replace(tmp, out)
    except BaseException:
        w.close()
        if os.path.exists(tmp):
            os.remove(tmp)
        raise

    if verbose:
        n_f16 = sum(1 for _, a in typed if a.dtype == np.float16)
        n_q = len(quantized)
        n_params = sum(int(a.size) for a in model.tensors.values())
        size = os.path.getsize(out)
        counts = f"{n_f16} F16, {len(typed) - n_f16 - n_q} F32" + (f", {n_q} {outtype.upper()}" if n_q else "")
        msg = (f"wrote {out}: {model.arch} '{model.name}' from {model.source} "
               f"({model.source_class}), {len(typed)} tensors ({counts}), "
               f"{n_params / 1e6:.2f} M parameters, {size / 2**20:.2f} MiB")
        print(msg, file=sys.stderr)
        for note in model.notes:
            print(f"  note: {note}", file=sys.stderr)
        if fell_back:
            print(f"  note: F16 instead of {outtype.upper()} (rows not a multiple of 32, or non-finite "
                  f"values): {', '.join(fell_back)}", file=sys.stderr)
        if kept_f32:
            print(f"  note: kept F32 (values beyond the F16 range): {', '.join(kept_f32)}",
                  file=sys.stderr)
    return out


def read_gguf_metadata(path: str) -> Dict[str, object]:
    """All key/value pairs of a GGUF file as plain Python values (arrays as lists), e.g. to build
    a :class:`pyvitcpp.preprocess.Preprocessor` with ``from_metadata``."""
    import gguf
    r = gguf.GGUFReader(os.fspath(path))
    return {k: f.contents() for k, f in r.fields.items() if not k.startswith("GGUF.")}
