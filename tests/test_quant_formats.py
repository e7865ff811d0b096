"""Our C++ quantizer vs gguf-py's gguf.quants: identical bytes for every block type, and
dequantization identical to gguf.quants.dequantize; plus the file re-quantizer."""
from __future__ import annotations

import numpy as np
import pytest

from pyvitcpp import _core

import gguf
from gguf import GGMLQuantizationType as QT  # noqa: E402
from gguf import quants as gq  # noqa: E402

TYPES = {"q8_0": QT.Q8_0, "q4_0": QT.Q4_0, "q4_1": QT.Q4_1, "q5_0": QT.Q5_0, "q5_1": QT.Q5_1}


def _cases(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = [
        rng.standard_normal(256),
        rng.standard_normal(256) * 0.02,
        np.zeros(256),                                    # all-zero blocks: d = 0
        rng.standard_normal(256) * 1e4,                   # large magnitudes (d still F16-finite)
        rng.standard_normal(256) * 6e5,                   # d beyond F16's range: inf, as numpy rounds it
        rng.standard_normal(256) * 1e-6,                  # d in F16's subnormal range
        np.round(rng.standard_normal(256) * 8) / 2,       # many exact ties in x / d
        np.tile(np.array([-1.0, 1.0, 0.5, -0.5]), 64),    # equal +/- maxima: first-index argmax
        rng.uniform(0, 1, 256),                           # one-signed rows (the _1 types' offset)
        -rng.uniform(3, 4, 256),
        np.concatenate([np.zeros(31), [5.0], rng.standard_normal(224)]),
    ]
    x = np.stack(rows).astype(np.float32)
    return x


@pytest.mark.parametrize("name", list(TYPES))
@pytest.mark.parametrize("seed", [0, 1])
def test_quantize_bytes_match_gguf_py(name, seed):
    x = _cases(seed)
    with np.errstate(all="ignore"):
        want = gq.quantize(x, TYPES[name])
    got = _core.quantize(x, name)
    assert got.dtype == np.uint8 and got.shape == want.shape
    bad = np.nonzero((got != want).any(axis=1))[0]
    assert bad.size == 0, f"{name}: rows {bad.tolist()} differ from gguf-py"


@pytest.mark.parametrize("name", list(TYPES))
def test_quantize_many_random_rows(name):
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((300, 96)) * rng.uniform(0.001, 100, (300, 1))).astype(np.float32)
    np.testing.assert_array_equal(_core.quantize(x, name, threads=2), gq.quantize(x, TYPES[name]))


@pytest.mark.parametrize("name", list(TYPES))
def test_dequantize_matches_gguf_py(name):
    x = _cases(3)
    with np.errstate(all="ignore"):
        q = gq.quantize(x, TYPES[name])
        want = gq.dequantize(q, TYPES[name])
    got = _core.dequantize(q, name)
    assert got.dtype == np.float32 and got.shape == x.shape
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", list(TYPES))
def test_dequantize_random_bytes(name):
    """Arbitrary block bytes (any codes, any F16 scale incl. subnormals) decode like gguf-py."""
    rng = np.random.default_rng(11)
    ts = gguf.GGML_QUANT_SIZES[TYPES[name]][1]
    q = rng.integers(0, 256, (40, 3 * ts), dtype=np.uint8)
    # keep scales finite so that the comparison is about decoding, not inf * 0
    for b in range(3):
        q[:, b * ts + 1] &= 0x7B
        if name.endswith("_1"):
            q[:, b * ts + 3] &= 0x7B
    np.testing.assert_array_equal(_core.dequantize(q, name), gq.dequantize(q, TYPES[name]))


def test_bad_arguments():
    with pytest.raises(ValueError, match="multiple of the block size 32"):
        _core.quantize(np.zeros((2, 33), np.float32), "q8_0")
    with pytest.raises(ValueError, match="unknown quantization type"):
        _core.quantize(np.zeros((2, 32), np.float32), "q3_k")
    with pytest.raises(ValueError, match="blocks of 34 bytes"):
        _core.dequantize(np.zeros((2, 35), np.uint8), "q8_0")


def test_requantize_generic_file(tmp_path):
    """Every metadata value type survives; each tensor gets the documented type: quantized
    (from F32 or F16, bytes as gguf-py), F16 for rows not a multiple of 32 or non-finite values,
    untouched for 1-D tensors and position embeddings."""
    rng = np.random.default_rng(5)
    src = tmp_path / "src.gguf"
    w = gguf.GGUFWriter(str(src), "vit")
    w.add_uint8("t.u8", 7)
    w.add_int8("t.i8", -7)
    w.add_uint16("t.u16", 65000)
    w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4_000_000_000)
    w.add_int32("t.i32", -2_000_000_000)
    w.add_uint64("t.u64", 2**63 + 5)
    w.add_int64("t.i64", -(2**62))
    w.add_float32("t.f32", 0.1)
    w.add_float64("t.f64", 0.1)
    w.add_bool("t.bool", True)
    w.add_string("t.str", "héllo")
    w.add_array("t.arr_s", ["a", "bb", ""])
    w.add_array("t.arr_f", [0.5, -1.25])
    w.add_array("t.arr_i", [1, -2, 3])
    tensors = {
        "m.weight": rng.standard_normal((4, 64)).astype(np.float32),
        "odd.weight": rng.standard_normal((3, 48)).astype(np.float32),
        "vec.bias": rng.standard_normal(64).astype(np.float32),
        "h.weight": rng.standard_normal((2, 32)).astype(np.float16),
        "inf.weight": np.where(np.arange(64) == 3, np.inf, 1.0).reshape(2, 32).astype(np.float32),
        "v.position_embd.weight": rng.standard_normal((5, 64)).astype(np.float32),
    }
    for k, v in tensors.items():
        w.add_tensor(k, v)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    dst = tmp_path / "dst.gguf"
    plan = {p[0]: p for p in _core.requantize(str(src), str(dst), "q5_0")}
    a, b = gguf.GGUFReader(str(src)), gguf.GGUFReader(str(dst))
    for k, f in a.fields.items():
        if not k.startswith("GGUF."):
            assert b.fields[k].types == f.types and b.fields[k].contents() == f.contents(), k
    assert b.fields["general.file_type"].contents() == 8
    got = {t.name: t for t in b.tensors}
    Q = gguf.GGMLQuantizationType
    assert got["m.weight"].tensor_type == Q.Q5_0
    np.testing.assert_array_equal(np.asarray(got["m.weight"].data), gq.quantize(tensors["m.weight"], Q.Q5_0))
    assert got["h.weight"].tensor_type == Q.Q5_0
    np.testing.assert_array_equal(np.asarray(got["h.weight"].data),
                                  gq.quantize(tensors["h.weight"].astype(np.float32), Q.Q5_0))
    assert got["odd.weight"].tensor_type == Q.F16 and "not a multiple of 32" in plan["odd.weight"][3]
    np.testing.assert_array_equal(np.asarray(got["odd.weight"].data), tensors["odd.weight"].astype(np.float16))
    assert got["inf.weight"].tensor_type == Q.F16 and "non-finite" in plan["inf.weight"][3]
    for k in ("vec.bias", "v.position_embd.weight"):
        assert got[k].tensor_type == Q.F32
        np.testing.assert_array_equal(np.asarray(got[k].data), tensors[k])
