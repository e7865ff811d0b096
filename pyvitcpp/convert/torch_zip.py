"""Reading PyTorch checkpoints (``torch.save`` files) without torch, and without running code.

Both on-disk formats are handled:

- the zip format (torch >= 1.6): ``<root>/data.pkl`` plus one ``<root>/data/<key>`` entry per storage;
- the legacy format (torch < 1.6): a magic-number pickle, protocol and sys-info pickles, the object
  pickle, the list of storage keys, then per storage an int64 element count and the raw bytes.

The object pickle is read by an unpickler whose ``find_class`` only allows what a state dict needs
(an allow-list: tensor rebuild functions, storage types, ``collections.OrderedDict``, and plain
numeric numpy scalars, which training checkpoints use for metrics); anything else,
e.g. ``os.system``, raises :class:`UnsafeCheckpointError` before it can be called. Tensors come back
as numpy arrays (bfloat16 widened to float32, since numpy has no bfloat16).
"""
from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from typing import Any, Dict, Tuple

import numpy as np


class UnsafeCheckpointError(pickle.UnpicklingError):
    """The pickle asks for a global outside the allow-list (it could run arbitrary code)."""


_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

# storage class name -> numpy dtype (bfloat16 is read as uint16 then widened)
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
# torch.dtype names (UntypedStorage pickles carry a dtype instead of a storage class)
_DTYPE_NAMES = {
    "float32": np.float32, "float": np.float32, "float64": np.float64, "double": np.float64,
    "float16": np.float16, "half": np.float16, "bfloat16": "bfloat16", "int64": np.int64, "long": np.int64,
    "int32": np.int32, "int": np.int32, "int16": np.int16, "int8": np.int8, "uint8": np.uint8, "bool": np.bool_,
}


class _StorageType:
    def __init__(self, name: str):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]


class _Dtype:
    def __init__(self, name: str):
        self.dtype = _DTYPE_NAMES[name]


def _np_dtype(d):
    return np.dtype(np.uint16) if d == "bfloat16" else np.dtype(d)


def _widen(arr: np.ndarray, d) -> np.ndarray:
    if d == "bfloat16":
        return (arr.astype(np.uint32) << 16).view(np.float32)
    return arr


class _Storage:
    """A flat typed buffer (filled later in the legacy format)."""

    def __init__(self, dtype, numel: int):
        self.dtype = dtype
        self.numel = numel
        self.data: np.ndarray | None = None


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    return ("tensor", storage, int(storage_offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


def _rebuild_parameter_with_state(data, requires_grad=False, backward_hooks=None, state=None):
    return data


def _np_dtype_ctor(name, align=False, copy=False):
    if not isinstance(name, str):
        raise UnsafeCheckpointError(f"refusing numpy.dtype({name!r})")
    dt = np.dtype(name)
    if dt.kind == "O":
        raise UnsafeCheckpointError("refusing an object dtype in a weights file")
    return dt


def _np_scalar(dtype, data=None):
    """numpy scalars (training checkpoints store metrics this way); plain numeric dtypes only."""
    if not isinstance(dtype, np.dtype) or dtype.kind not in "biufc" or not isinstance(data, bytes):
        raise UnsafeCheckpointError("refusing a numpy scalar that is not a plain number")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _codecs_encode(text, encoding="utf-8"):
    # protocol-2 pickles spell bytes as _codecs.encode(str, 'latin1'): a pure conversion
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafeCheckpointError("refusing _codecs.encode other than str -> latin1 bytes")
    return text.encode("latin1")


_ALLOWED = {
    ("_codecs", "encode"): _codecs_encode,
    ("numpy", "dtype"): _np_dtype_ctor,
    ("numpy.core.multiarray", "scalar"): _np_scalar,
    ("numpy._core.multiarray", "scalar"): _np_scalar,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
    ("collections", "OrderedDict"): collections.OrderedDict,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, f, persistent_load):
        super().__init__(f)
        self._pl = persistent_load

    def find_class(self, module: str, name: str):
        fn = _ALLOWED.get((module, name))
        if fn is not None:
            return fn
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module == "torch" and name in _DTYPE_NAMES:
            return _Dtype(name)
        raise UnsafeCheckpointError(
            f"refusing to load global {module}.{name}: only tensors, storages and OrderedDict are allowed "
            "in a weights file")

    def persistent_load(self, pid):
        return self._pl(pid)


def _materialise(obj):
    """Replace the ('tensor', ...) placeholders by numpy arrays, recursively."""
    if isinstance(obj, tuple) and len(obj) == 5 and obj[0] == "tensor" and isinstance(obj[1], _Storage):
        _, st, off, size, stride = obj
        dt = _np_dtype(st.dtype)
        numel = int(np.prod(size)) if size else 1
        if numel == 0:
            return np.zeros(size, _np_dtype(st.dtype) if st.dtype != "bfloat16" else np.float32)
        need = off + sum((n - 1) * s for n, s in zip(size, stride)) + 1
        if st.data is None or need > st.data.size:
            raise pickle.UnpicklingError("a tensor reaches beyond its storage: the file is damaged")
        arr = np.lib.stride_tricks.as_strided(st.data[off:], shape=size,
                                              strides=tuple(s * dt.itemsize for s in stride))
        return _widen(np.array(arr, copy=True), st.dtype)
    if isinstance(obj, dict):
        out = collections.OrderedDict() if isinstance(obj, collections.OrderedDict) else {}
        for k, v in obj.items():
            out[k] = _materialise(v)
        return out
    if isinstance(obj, list):
        return [_materialise(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_materialise(v) for v in obj)
    return obj


def _storage_dtype(storage_type):
    if isinstance(storage_type, (_StorageType, _Dtype)):
        return storage_type.dtype
    raise pickle.UnpicklingError(f"unexpected storage type {storage_type!r}")


def _load_zip(path: str, with_data: bool = True) -> Any:
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        pkl = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if not pkl:
            raise pickle.UnpicklingError(f"{path}: a zip file without <root>/data.pkl is not a torch checkpoint")
        root = pkl[0][: -len("data.pkl")]
        byteorder = "little"
        if root + "byteorder" in names:
            byteorder = z.read(root + "byteorder").decode().strip()
        storages: Dict[str, _Storage] = {}

        def persistent_load(pid):
            if not isinstance(pid, tuple) or not pid or pid[0] not in ("storage", b"storage"):
                raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
            _, storage_type, key, _location, numel = pid[:5]
            key = str(key)
            if key not in storages:
                d = _storage_dtype(storage_type)
                st = _Storage(d, int(numel))
                storages[key] = st
                if not with_data:
                    return st
                raw = z.read(root + "data/" + key)
                dt = _np_dtype(d).newbyteorder("<" if byteorder == "little" else ">")
                st.data = np.frombuffer(raw, dtype=dt).astype(_np_dtype(d), copy=False)
                storages[key] = st
            return storages[key]

        obj = _RestrictedUnpickler(io.BytesIO(z.read(pkl[0])), persistent_load).load()
    return _materialise(obj) if with_data else obj


def _load_legacy(path: str, with_data: bool = True) -> Any:
    with open(path, "rb") as f:
        def safe_load():
            return _RestrictedUnpickler(f, lambda pid: (_ for _ in ()).throw(
                pickle.UnpicklingError("unexpected persistent id"))).load()

        magic = safe_load()
        if magic != _LEGACY_MAGIC:
            raise pickle.UnpicklingError(f"{path}: not a PyTorch checkpoint (bad magic number)")
        safe_load()  # protocol version
        safe_load()  # sys info
        storages: Dict[str, _Storage] = {}

        def persistent_load(pid):
            if not isinstance(pid, tuple) or not pid or pid[0] not in ("storage", b"storage"):
                raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
            storage_type, root_key, _location, numel, view_metadata = pid[1:6]
            if view_metadata is not None:
                raise pickle.UnpicklingError("storage views (torch < 0.4 files) are not supported")
            key = str(root_key)
            if key not in storages:
                storages[key] = _Storage(_storage_dtype(storage_type), int(numel))
            return storages[key]

        obj = _RestrictedUnpickler(f, persistent_load).load()
        if not with_data:
            return obj
        keys = safe_load()
        for key in keys:
            st = storages.get(str(key))
            if st is None:
                raise pickle.UnpicklingError(f"storage {key} listed but never used")
            dt = _np_dtype(st.dtype)
            (n,) = struct.unpack("<q", f.read(8))
            raw = f.read(n * dt.itemsize)
            if n < 0 or len(raw) != n * dt.itemsize:
                raise pickle.UnpicklingError(f"{path}: truncated storage data")
            st.data = np.frombuffer(raw, dtype=dt.newbyteorder("<"))
    return _materialise(obj)


def load(path) -> Any:
    """A torch.save file -> the same structure with numpy arrays in place of tensors.

    Raises FileNotFoundError, UnsafeCheckpointError (a global outside the allow-list), or
    pickle.UnpicklingError (not a checkpoint / damaged).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if zipfile.is_zipfile(path):
        return _load_zip(path)
    return _load_legacy(path)


def load_state_dict(path) -> Dict[str, np.ndarray]:
    """Only the arrays of a (possibly wrapped) state dict, in file order."""
    obj = load(path)
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "module", "state_dict_ema", "model_ema"):
            inner = obj.get(key)
            if isinstance(inner, dict) and any(isinstance(v, np.ndarray) for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, dict):
        raise pickle.UnpicklingError(f"{path} does not hold a state dict")
    return collections.OrderedDict((k, v) for k, v in obj.items() if isinstance(v, np.ndarray))


def _is_tensor(v) -> bool:
    return isinstance(v, tuple) and len(v) == 5 and v[0] == "tensor"


def keys_and_shapes(path) -> Tuple[Tuple[str, Tuple[int, ...]], ...]:
    """(name, shape) of every tensor of the state dict, reading only the pickle (not the tensor
    data): cheap enough for format detection."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    obj = _load_zip(path, False) if zipfile.is_zipfile(path) else _load_legacy(path, False)
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "module", "state_dict_ema", "model_ema"):
            inner = obj.get(key)
            if isinstance(inner, dict) and any(_is_tensor(v) for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, dict):
        raise pickle.UnpicklingError(f"{path} does not hold a state dict")
    return tuple((k, v[3]) for k, v in obj.items() if _is_tensor(v))
