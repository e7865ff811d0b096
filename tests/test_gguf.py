"""GGUF reader (csrc/io/gguf.cpp) through pyvitcpp._core.

Valid files are written with gguf-py's GGUFWriter and what we read is compared with gguf-py's
GGUFReader. Broken files are built byte by byte (the writer refuses to write them), and each
must raise GGUFError with a message that says what is wrong. The truncation sweep and the
random mutation fuzz run in a child process, so a crash in the reader shows up as a failed test
with the child's exit status instead of killing pytest.
"""
import gc
import os
import pathlib
import random
import struct
import subprocess
import sys

import numpy as np
import pytest

import gguf
from gguf import GGMLQuantizationType as QT  # noqa: E402
from gguf import GGUFValueType as VT  # noqa: E402

import pyvitcpp  # noqa: E402
from pyvitcpp import _core  # noqa: E402

GGUFError = _core.GGUFError

# ---------------------------------------------------------------------------------------------
# Valid files via gguf-py

# (key, value, GGUF type, array element type). Edge values on purpose: min/max of every
# integer type, a float32 that is not exactly representable, non-ASCII and empty strings.
_SCALARS = [
    ("t.u8", 255, VT.UINT8),
    ("t.i8", -128, VT.INT8),
    ("t.u16", 65535, VT.UINT16),
    ("t.i16", -32768, VT.INT16),
    ("t.u32", 2**32 - 1, VT.UINT32),
    ("t.i32", -(2**31), VT.INT32),
    ("t.u64", 2**64 - 1, VT.UINT64),
    ("t.i64", -(2**63), VT.INT64),
    ("t.f32", 0.1, VT.FLOAT32),
    ("t.f64", 1e-300, VT.FLOAT64),
    ("t.true", True, VT.BOOL),
    ("t.false", False, VT.BOOL),
    ("t.str", "ViT-B/16 · größe ✓", VT.STRING),
    ("t.empty_str", "", VT.STRING),
]
_ARRAYS = [
    ("a.u8", [0, 1, 255], VT.UINT8),
    ("a.i8", [-128, 0, 127], VT.INT8),
    ("a.u16", [0, 65535], VT.UINT16),
    ("a.i16", [-32768, 32767], VT.INT16),
    ("a.u32", [224, 224], VT.UINT32),
    ("a.i32", [-(2**31), 2**31 - 1], VT.INT32),
    ("a.u64", [0, 2**63, 2**64 - 1], VT.UINT64),
    ("a.i64", [-(2**63), 2**63 - 1], VT.INT64),
    ("a.f32", [0.48145466, 0.4578275, 0.40821073], VT.FLOAT32),
    ("a.f64", [1.5, -2.25, 1e300], VT.FLOAT64),
    ("a.bool", [True, False, True], VT.BOOL),
    ("a.str", ["tench", "", "goldfish", "日本語"], VT.STRING),
]
_NESTED = ("a.nested", [[1, 2, 3], [4], [5, 6]])


def _write_with_gguf_py(path, tensors, alignment=None, metadata=True):
    w = gguf.GGUFWriter(str(path), "vit")
    if alignment is not None:
        w.add_custom_alignment(alignment)
    if metadata:
        for key, val, vt in _SCALARS:
            w.add_key_value(key, val, vt)
        for key, val, vt in _ARRAYS:
            w.add_key_value(key, val, VT.ARRAY, sub_type=vt)
        w.add_array(*_NESTED)
    for name, arr, raw_dtype in tensors:
        if raw_dtype is None:
            w.add_tensor(name, arr)
        else:
            w.add_tensor(name, arr, raw_dtype=raw_dtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _model_tensors():
    rng = np.random.default_rng(0)
    w_q8 = rng.standard_normal((6, 64)).astype(np.float32)
    return [
        ("v.patch_embd.weight", rng.standard_normal((4, 3, 2, 2)).astype(np.float32), None),
        ("v.blk.0.attn_qkv.weight", rng.standard_normal((12, 5)).astype(np.float16), None),
        ("v.blk.0.ffn_up.weight", gguf.quants.quantize(w_q8, QT.Q8_0), QT.Q8_0),
        ("v.post_ln.bias", rng.standard_normal(7).astype(np.float32), None),
    ], w_q8


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    tensors, w_q8 = _model_tensors()
    path = _write_with_gguf_py(tmp_path_factory.mktemp("gguf") / "model.gguf", tensors)
    return path, tensors, w_q8


def _reader_value(field):
    """A GGUFReader field as a Python value (its contents() flattens nested arrays)."""
    return field.contents()


def test_metadata_matches_gguf_reader(model_file):
    path, _, _ = model_file
    f = _core.GGUFFile(path)
    r = gguf.GGUFReader(path)
    assert f.version == 3
    ours = f.metadata
    # gguf-py's reader adds nothing: same keys in the same (file) order.
    assert list(ours) == [k for k in r.fields if not k.startswith("GGUF.")]
    for key, field in r.fields.items():
        if key.startswith("GGUF.") or key == _NESTED[0]:
            continue
        assert ours[key] == _reader_value(field), key
        assert type(ours[key]) is type(_reader_value(field)), key
    # Exact values, checked independently of the reader.
    for key, val, vt in _SCALARS:
        expect = float(np.float32(val)) if vt == VT.FLOAT32 else val
        assert ours[key] == expect and type(ours[key]) is type(expect), key
        assert f.metadata_types[key] == vt.name.lower()
    for key, val, vt in _ARRAYS:
        expect = [float(np.float32(v)) for v in val] if vt == VT.FLOAT32 else val
        assert ours[key] == expect, key
        assert f.metadata_types[key] == f"array[{vt.name.lower()}]"
    assert ours[_NESTED[0]] == _NESTED[1]
    assert f.metadata_types[_NESTED[0]] == "array[array[int32]]"
    assert ours["general.architecture"] == "vit"


def test_tensors_match_gguf_reader(model_file):
    path, tensors, w_q8 = model_file
    f = _core.GGUFFile(path)
    r = gguf.GGUFReader(path)
    assert f.data_offset == r.data_offset
    assert f.alignment == 32
    assert f.file_size == os.path.getsize(path)
    infos = f.tensors
    assert [t["name"] for t in infos] == [t.name for t in r.tensors] == [t[0] for t in tensors]
    for info, rt, (name, arr, raw_dtype) in zip(infos, r.tensors, tensors):
        assert info["type_id"] == int(rt.tensor_type)
        assert info["type"] == rt.tensor_type.name.lower()
        assert info["ne"] == tuple(int(d) for d in rt.shape)
        assert info["shape"] == tuple(reversed(info["ne"]))
        assert info["file_offset"] == rt.data_offset
        assert info["offset"] == rt.data_offset - r.data_offset
        assert info["offset"] % f.alignment == 0
        assert info["nbytes"] == rt.n_bytes == arr.nbytes
        view = f.tensor(name)
        assert view.dtype == rt.data.dtype
        assert view.shape == rt.data.shape
        assert view.tobytes() == rt.data.tobytes()
        assert view.tobytes() == arr.tobytes()
        if raw_dtype is None:
            assert view.shape == arr.shape and view.dtype == arr.dtype
    q8 = f.tensor("v.blk.0.ffn_up.weight")
    assert q8.dtype == np.uint8 and q8.shape == (6, 64 // 32 * 34)
    np.testing.assert_array_equal(gguf.quants.dequantize(q8, QT.Q8_0),
                                  gguf.quants.dequantize(gguf.quants.quantize(w_q8, QT.Q8_0), QT.Q8_0))
    assert f.tensor_names() == [t[0] for t in tensors]


def test_alignment_64(tmp_path):
    tensors, _ = _model_tensors()
    path = _write_with_gguf_py(tmp_path / "a64.gguf", tensors, alignment=64)
    f = _core.GGUFFile(path)
    r = gguf.GGUFReader(path)
    assert f.alignment == 64 and f.metadata["general.alignment"] == 64
    assert f.metadata_types["general.alignment"] == "uint32"
    assert f.data_offset % 64 == 0 and f.data_offset == r.data_offset
    for info, rt in zip(f.tensors, r.tensors):
        assert info["file_offset"] == rt.data_offset and info["offset"] % 64 == 0
        assert f.tensor(info["name"]).tobytes() == rt.data.tobytes()


def test_mapping_api_and_getters(model_file):
    path, _, _ = model_file
    f = _core.GGUFFile(pathlib.Path(path))  # os.PathLike
    assert f.path == str(path)
    assert "t.u32" in f and "nope" not in f
    assert f.keys() == list(f.metadata)
    assert f["a.str"] == ["tench", "", "goldfish", "日本語"]
    assert f.get("nope") is None and f.get("nope", 7) == 7
    with pytest.raises(KeyError):
        f["nope"]
    with pytest.raises(KeyError):
        f.tensor("nope")
    assert "GGUFFile" in repr(f)
    # The C++ typed getters, as the engine sees them.
    assert f._get("int", "t.u32") == 2**32 - 1
    assert f._get("int", "t.i64") == -(2**63)
    assert f._get("int", "t.u8") == 255
    assert f._get("float", "t.u16") == 65535.0  # integers are accepted where a float is wanted
    assert f._get("float", "t.f32") == float(np.float32(0.1))
    assert f._get("str", "t.str") == "ViT-B/16 · größe ✓"
    assert f._get("bool", "t.true") is True and f._get("bool", "t.false") is False
    assert f._get("float_array", "a.f32") == [float(np.float32(v)) for v in _ARRAYS[8][1]]
    assert f._get("float_array", "a.u32") == [224.0, 224.0]
    assert f._get("int_array", "a.i64") == [-(2**63), 2**63 - 1]
    assert f._get("str_array", "a.str") == ["tench", "", "goldfish", "日本語"]
    # *_or forms: default only when absent.
    assert f._get("int", "missing", 5) == 5
    assert f._get("str", "missing", "x") == "x"
    assert f._get("float", "missing", 2.5) == 2.5
    assert f._get("bool", "missing", True) is True
    # Present with the wrong type: the message names key, actual and expected type.
    with pytest.raises(GGUFError, match=r"'t.str' has type string, expected an integer type"):
        f._get("int", "t.str")
    with pytest.raises(GGUFError, match=r"'t.str' has type string, expected an integer type"):
        f._get("int", "t.str", 3)
    with pytest.raises(GGUFError, match=r"'t.true' has type bool, expected an integer type"):
        f._get("int", "t.true")
    with pytest.raises(GGUFError, match=r"'t.u32' has type uint32, expected bool"):
        f._get("bool", "t.u32", False)
    with pytest.raises(GGUFError, match=r"'t.u8' has type uint8, expected string"):
        f._get("str", "t.u8")
    with pytest.raises(GGUFError, match=r"'a.str' has type array\[string\], expected an array of numbers"):
        f._get("float_array", "a.str")
    with pytest.raises(GGUFError, match=r"'a.f32' has type array\[float32\], expected an array of integers"):
        f._get("int_array", "a.f32")
    with pytest.raises(GGUFError, match=r"'a.u32' has type array\[uint32\], expected an array of strings"):
        f._get("str_array", "a.u32")
    with pytest.raises(GGUFError, match=r"'t.f32' has type float32, expected an array"):
        f._get("float_array", "t.f32")
    # uint64 is fine within int64 range, an error beyond it.
    with pytest.raises(GGUFError, match="does not fit in int64"):
        f._get("int", "t.u64")
    with pytest.raises(GGUFError, match="does not fit in int64"):
        f._get("int_array", "a.u64")
    with pytest.raises(GGUFError, match=r"required metadata key 'missing' is missing"):
        f._get("int", "missing")
    with pytest.raises(GGUFError, match="missing"):
        f._get("str_array", "missing")


def test_view_outlives_file_object(model_file):
    path, tensors, _ = model_file
    f = _core.GGUFFile(path)
    view = f.tensor("v.patch_embd.weight")
    sub = view[1:3]
    del f, view
    gc.collect()
    np.testing.assert_array_equal(sub, tensors[0][1][1:3])
    assert not sub.flags.writeable  # the mapping is read-only; a write would be a segfault
    with pytest.raises(ValueError):
        sub[0, 0, 0, 0] = 1.0


def test_error_classes():
    assert issubclass(GGUFError, ValueError)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        _core.GGUFFile(tmp_path / "does_not_exist.gguf")


def test_directory(tmp_path):
    with pytest.raises(OSError) as ei:
        _core.GGUFFile(tmp_path)
    assert isinstance(ei.value, IsADirectoryError)
    assert not isinstance(ei.value, GGUFError)


@pytest.mark.parametrize("content", [
    b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,
    b"hello, this is a text file and certainly not a model\n",
    b"\xff\xfe\x00\x01",
    b"lmgg" + b"\x00" * 64,  # legacy ggml magic
])
def test_not_gguf(tmp_path, content):
    p = tmp_path / "x.bin"
    p.write_bytes(content)
    with pytest.raises(GGUFError, match="magic"):
        _core.GGUFFile(p)


def test_empty_and_tiny(tmp_path):
    p = tmp_path / "empty.gguf"
    p.write_bytes(b"")
    with pytest.raises(GGUFError, match="empty"):
        _core.GGUFFile(p)
    p.write_bytes(b"GGUF\x03\x00")
    with pytest.raises(GGUFError, match="too small"):
        _core.GGUFFile(p)


# ---------------------------------------------------------------------------------------------
# Hand-built files: exact control over every byte


def _str(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def _kv(key, vtype, payload):
    return _str(key) + struct.pack("<I", int(vtype)) + payload


def _kv_str(key, s):
    return _kv(key, VT.STRING, _str(s))


def _ti(name, ne, ttype, offset):
    return (_str(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne)
            + struct.pack("<IQ", int(ttype), offset))


def _gguf(kvs=(), tis=(), data=b"", version=3, n_tensors=None, n_kv=None, alignment=32,
          magic=b"GGUF"):
    head = magic + struct.pack("<IQQ", version, len(tis) if n_tensors is None else n_tensors,
                               len(kvs) if n_kv is None else n_kv)
    body = head + b"".join(kvs) + b"".join(tis)
    body += b"\x00" * (-len(body) % alignment)
    return body + data


_ARCH = _kv_str("general.architecture", "vit")
_F32_8 = np.arange(8, dtype=np.float32).tobytes()  # 32 bytes: one aligned tensor


def _valid(**kw):
    args = dict(kvs=[_ARCH], tis=[_ti("t", [8], 0, 0)], data=_F32_8)
    args.update(kw)
    return _gguf(**args)


def _open_bytes(tmp_path, data, name="f.gguf"):
    p = tmp_path / name
    p.write_bytes(data)
    return _core.GGUFFile(p)


def test_hand_built_baseline(tmp_path):
    f = _open_bytes(tmp_path, _valid())
    assert f.metadata == {"general.architecture": "vit"}
    np.testing.assert_array_equal(f.tensor("t"), np.arange(8, dtype=np.float32))
    # GGUF v2 has the same layout as v3 (v3 only added big-endian files).
    f2 = _open_bytes(tmp_path, _valid(version=2), "v2.gguf")
    assert f2.version == 2
    np.testing.assert_array_equal(f2.tensor("t"), np.arange(8, dtype=np.float32))
    # No tensors, no metadata: a valid (empty) file.
    f3 = _open_bytes(tmp_path, _gguf(), "e.gguf")
    assert f3.metadata == {} and f3.tensors == []


def test_zero_size_dim_is_harmless(tmp_path):
    f = _open_bytes(tmp_path, _valid(tis=[_ti("t", [8], 0, 0), _ti("z", [0, 4], 0, 32)]))
    z = f.tensor("z")
    assert z.shape == (4, 0) and z.dtype == np.float32 and f.tensors[1]["nbytes"] == 0


def test_nested_arrays_up_to_depth_4(tmp_path):
    payload = struct.pack("<IQ", VT.ARRAY, 1) * 3 + struct.pack("<IQ", VT.UINT8, 2) + b"\x07\x09"
    f = _open_bytes(tmp_path, _valid(kvs=[_ARCH, _kv("deep", VT.ARRAY, payload)]))
    assert f["deep"] == [[[[7, 9]]]]
    assert f.metadata_types["deep"] == "array[array[array[array[uint8]]]]"


def _depth_bomb(levels):
    return _kv("bomb", VT.ARRAY, struct.pack("<IQ", VT.ARRAY, 1) * (levels - 1)
               + struct.pack("<IQ", VT.UINT8, 1) + b"\x00")


_HUGE = 2**62

# (id, file bytes, substring the GGUFError message must contain)
_CORRUPT = [
    ("bad_magic", _valid(magic=b"GGUX"), "bad magic"),
    ("version_1", _valid(version=1), "version 1 is not supported"),
    ("version_99", _valid(version=99), "unsupported GGUF version 99"),
    ("version_0", _valid(version=0), "unsupported GGUF version 0"),
    ("big_endian", _valid(version=0x03000000), "big-endian"),
    ("n_tensors_huge", _valid(n_tensors=_HUGE), "tensor count 4611686018427387904"),
    ("n_tensors_max", _valid(n_tensors=2**64 - 1), "tensor count"),
    ("n_tensors_too_many", _gguf(kvs=[_ARCH], tis=[_ti("t", [8], 0, 0)], n_tensors=2, alignment=1),
     "tensor count 2 cannot fit in the 33 bytes left"),
    ("tensor_info_truncated", _gguf(kvs=[_ARCH], tis=[_ti("tensor_one", [8], 0, 0),
                                                     _ti("tensor_two", [8], 0, 32)[:-4]], alignment=1),
     "file truncated: reading tensor 'tensor_two' data offset needs 8 bytes, only 4 left"),
    ("n_kv_huge", _valid(n_kv=_HUGE), "key/value count 4611686018427387904"),
    ("n_kv_too_many", _gguf(kvs=[_ARCH], n_kv=2, alignment=1), "file truncated: reading key of metadata entry 1"),
    ("key_len_huge", _valid(kvs=[struct.pack("<Q", 2**63) + b"k" * 16]), "string length 9223372036854775808"),
    ("str_len_huge", _valid(kvs=[_kv("k", VT.STRING, struct.pack("<Q", 2**64 - 1) + b"abc")]),
     "string length 18446744073709551615"),
    ("str_len_past_eof", _valid(kvs=[_kv("k", VT.STRING, struct.pack("<Q", 1000) + b"abc")]),
     "string length 1000 exceeds"),
    ("array_len_huge", _valid(kvs=[_kv("k", VT.ARRAY, struct.pack("<IQ", VT.UINT32, _HUGE))]),
     "array length 4611686018427387904"),
    ("str_array_len_huge", _valid(kvs=[_kv("k", VT.ARRAY, struct.pack("<IQ", VT.STRING, 2**61))]),
     "array length 2305843009213693952"),
    ("array_elem_str_huge", _valid(kvs=[_kv("k", VT.ARRAY, struct.pack("<IQQ", VT.STRING, 1, 2**62))]),
     "string length 4611686018427387904"),
    ("array_bad_elem_type", _valid(kvs=[_kv("k", VT.ARRAY, struct.pack("<IQ", 13, 1))]),
     "unknown GGUF value type 13"),
    ("bad_value_type", _valid(kvs=[_kv("k", 77, b"\x00" * 8)]), "unknown GGUF value type 77"),
    ("bool_not_0_1", _valid(kvs=[_kv("k", VT.BOOL, b"\x02")]), "must be 0 or 1"),
    ("depth_bomb", _valid(kvs=[_depth_bomb(2000)]), "nested deeper than 4"),
    ("depth_5", _valid(kvs=[_depth_bomb(5)]), "nested deeper than 4"),
    ("duplicate_key", _valid(kvs=[_ARCH, _kv_str("general.architecture", "clip")]),
     "duplicate metadata key 'general.architecture'"),
    ("key_not_utf8", _valid(kvs=[_kv_str(b"bad\xff\xfekey", "x")]), "is not valid UTF-8"),
    ("alignment_0", _valid(kvs=[_kv("general.alignment", VT.UINT32, struct.pack("<I", 0))]),
     "general.alignment 0 is not a nonzero power of two"),
    ("alignment_3", _valid(kvs=[_kv("general.alignment", VT.UINT32, struct.pack("<I", 3))]),
     "general.alignment 3 is not a nonzero power of two"),
    ("alignment_u64", _valid(kvs=[_kv("general.alignment", VT.UINT64, struct.pack("<Q", 32))]),
     "general.alignment has type uint64, must be uint32"),
    ("unknown_tensor_type", _valid(tis=[_ti("v.x", [8], 99, 0)]), "tensor 'v.x' has unknown type id 99"),
    ("k_quant_type", _valid(tis=[_ti("v.x", [256], 12, 0)]), "unknown type id 12"),
    ("n_dims_0", _valid(tis=[_ti("v.x", [], 0, 0)]), "tensor 'v.x' has n_dims 0"),
    ("n_dims_5", _valid(tis=[_ti("v.x", [8, 1, 1, 1, 1], 0, 0)]), "tensor 'v.x' has n_dims 5"),
    ("dim_negative", _valid(tis=[_ti("v.x", [2**64 - 8], 0, 0)]), "more than INT64_MAX"),
    ("dims_overflow", _valid(tis=[_ti("v.x", [2**32, 2**32], 0, 0)]), "element count overflows"),
    ("dims_overflow_zero_row", _valid(tis=[_ti("v.x", [0, 2**40, 2**40], 0, 0)]), "overflows"),
    # 0 elements, but 9 * 2^60 overflows when the dims are multiplied in order (found by fuzz/)
    ("dims_overflow_zero_last", _valid(tis=[_ti("v.x", [9, 2**60, 0], 0, 0)]), "element count overflows"),
    ("bytes_overflow", _valid(tis=[_ti("v.x", [2**62], 0, 0)]), "byte size overflows"),
    ("q8_0_row_not_block", _valid(tis=[_ti("v.x", [33], QT.Q8_0, 0)]),
     "ne[0] = 33 is not a multiple of the q8_0 block size 32"),
    ("data_past_eof", _valid(tis=[_ti("v.x", [9], 0, 0)]), "tensor 'v.x' data [128, 164) extends past end of file (size 160)"),
    ("offset_past_eof", _valid(tis=[_ti("v.x", [8], 0, 2**40)]), "extends past end of file"),
    ("offset_wraps", _valid(tis=[_ti("v.x", [8], 0, 2**64 - 32)]), "extends past end of file"),
    ("misaligned_offset", _valid(tis=[_ti("v.x", [4], 0, 4)]), "misaligned"),
    ("duplicate_tensor", _valid(tis=[_ti("t", [4], 0, 0), _ti("t", [4], 0, 16)], alignment=16),
     "duplicate tensor name 't'"),
    ("overlap", _valid(tis=[_ti("a", [8], 0, 0), _ti("b", [8], 0, 0)]), "tensor 'b' data [160, 192) overlaps tensor 'a' data [160, 192)"),
    ("header_only_truncated", _valid()[:20], "too small"),
    ("truncated_data", _valid()[:-1], "extends past end of file"),
]


@pytest.mark.parametrize("data,needle", [c[1:] for c in _CORRUPT], ids=[c[0] for c in _CORRUPT])
def test_corrupt_file_raises(tmp_path, data, needle):
    p = tmp_path / "corrupt.gguf"
    p.write_bytes(data)
    with pytest.raises(GGUFError) as ei:
        _core.GGUFFile(p)
    msg = str(ei.value)
    assert needle in msg, msg
    assert str(p) in msg, msg  # names the file
    if "too small" not in needle:
        assert "at byte offset" in msg, msg


def test_error_offsets_point_at_the_fault(tmp_path):
    # The n_dims field of the one tensor info sits right after its name.
    data = _valid(tis=[_ti("v.x", [8, 1, 1, 1, 1], 0, 0)])
    at = len(_gguf(kvs=[_ARCH], alignment=1)) + 8 + 3
    with pytest.raises(GGUFError, match=f"at byte offset {at}\\)"):
        _open_bytes(tmp_path, data)
    with pytest.raises(GGUFError, match=r"at byte offset 4\)"):
        _open_bytes(tmp_path, _valid(version=7), "v7.gguf")


# ---------------------------------------------------------------------------------------------
# Truncation sweep and mutation fuzz, in a child process


def _small_valid_file(path):
    """A small gguf-py file whose last tensor ends exactly at EOF (no trailing padding), so that
    every strict prefix is necessarily broken."""
    rng = np.random.default_rng(1)
    tensors = [
        ("v.class_embd", rng.standard_normal(8).astype(np.float32), None),
        ("v.head.weight", gguf.quants.quantize(rng.standard_normal((1, 64)).astype(np.float32), QT.Q8_0),
         QT.Q8_0),
        ("v.blk.0.attn_out.weight", rng.standard_normal((2, 8)).astype(np.float16), None),
    ]
    w = gguf.GGUFWriter(str(path), "vit")
    w.add_uint32("vit.block_count", 1)
    w.add_float32("vit.attention.layer_norm_epsilon", 1e-6)
    w.add_bool("t.flag", True)
    w.add_array("classifier.labels", ["cat", "dog"])
    w.add_array("preprocess.mean", [0.5, 0.5, 0.5])
    for name, arr, raw in tensors:
        w.add_tensor(name, arr, raw_dtype=raw) if raw is not None else w.add_tensor(name, arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _exercise(f):
    """Touch everything a caller might, so the fuzz also covers the binding."""
    f.metadata, f.metadata_types, f.keys()
    for t in f.tensors:
        v = f.tensor(t["name"])
        assert v.nbytes == t["nbytes"]
        v.tobytes()


def _child_truncation(path, scratch):
    data = open(path, "rb").read()
    bad = []
    for n in range(len(data)):
        with open(scratch, "wb") as fh:
            fh.write(data[:n])
        try:
            _core.GGUFFile(scratch)
            bad.append(f"prefix {n}: opened")
        except GGUFError:
            pass
        except Exception as e:  # noqa: BLE001 - anything but GGUFError is a failure
            bad.append(f"prefix {n}: {type(e).__name__}: {e}")
    print(f"checked {len(data)} prefixes")
    print("\n".join(bad) if bad else "ALL-RAISED")


def _child_fuzz(path, scratch, n_mutations, seed):
    data = open(path, "rb").read()
    head_end = _core.GGUFFile(path).data_offset  # mutations in tensor data are uninteresting
    rng = random.Random(seed)
    interesting = [0, 1, 2, 3, 4, 7, 8, 15, 16, 31, 32, 33, 63, 64, 127, 128, 255, 2**31, 2**32 - 1,
                   2**32, 2**62, 2**63, 2**64 - 1]
    opened = raised = 0
    bad = []
    for i in range(n_mutations):
        buf = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            kind = rng.random()
            pos = rng.randrange(head_end)
            if kind < 0.5:
                buf[pos] ^= 1 << rng.randrange(8)
            elif kind < 0.8:
                buf[pos] = rng.randrange(256)
            elif pos + 8 <= len(buf):  # a whole (unaligned) u64/u32 field set to an edge value
                width = rng.choice([4, 8])
                v = rng.choice(interesting) & ((1 << (8 * width)) - 1)
                buf[pos:pos + width] = v.to_bytes(width, "little")
        if rng.random() < 0.1:
            del buf[rng.randrange(len(buf)):]
        with open(scratch, "wb") as fh:
            fh.write(buf)
        try:
            f = _core.GGUFFile(scratch)
            _exercise(f)
            opened += 1
        except GGUFError:
            raised += 1
        except Exception as e:  # noqa: BLE001
            bad.append(f"mutation {i}: {type(e).__name__}: {e}")
    print(f"opened {opened} raised {raised}")
    print("\n".join(bad) if bad else "ALL-OK")


def _run_child(call):
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(os.path.abspath(pyvitcpp.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, tests_dir, os.environ.get("PYTHONPATH", "")]))
    code = f"import test_gguf as t; t.{call}"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"child crashed or failed (status {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_every_truncated_prefix_raises(tmp_path):
    path = _small_valid_file(tmp_path / "small.gguf")
    f = _core.GGUFFile(path)
    _exercise(f)
    size = os.path.getsize(path)
    assert max(t["file_offset"] + t["nbytes"] for t in f.tensors) == size  # premise: no tail padding
    out = _run_child(f"_child_truncation({str(path)!r}, {str(tmp_path / 'prefix.gguf')!r})")
    assert f"checked {size} prefixes" in out and "ALL-RAISED" in out, out


def test_random_mutations_open_or_raise_gguf_error(tmp_path):
    path = _small_valid_file(tmp_path / "small.gguf")
    out = _run_child(f"_child_fuzz({str(path)!r}, {str(tmp_path / 'mut.gguf')!r}, 2000, 1234)")
    assert "ALL-OK" in out, out
