"""Bad input gives a Python exception naming the cause: never a crash, never a silent answer."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import gguf

import pyvitcpp  # noqa: E402
from pyvitcpp import _core  # noqa: E402

D, HEADS, FF, P, IMG, L = 32, 2, 64, 8, 16, 1


def write_vit_gguf(path, *, drop=(), arch="vit", shapes=None, kv_override=None, dtype=np.float32):
    """A tiny ViT GGUF written directly with gguf-py (independent of our converter)."""
    rng = np.random.default_rng(0)
    w = gguf.GGUFWriter(str(path), arch)
    kv = {
        f"{arch}.block_count": L, f"{arch}.embedding_length": D, f"{arch}.feed_forward_length": FF,
        f"{arch}.attention.head_count": HEADS, f"{arch}.patch_size": P, f"{arch}.image_size": IMG,
        f"{arch}.num_channels": 3,
    }
    kv.update(kv_override or {})
    for k, v in kv.items():
        (w.add_uint64 if v >= 2**32 else w.add_uint32)(k, v)
    w.add_float32(f"{arch}.attention.layer_norm_epsilon", 1e-6)
    w.add_string(f"{arch}.hidden_act", "gelu")
    w.add_string(f"{arch}.pooling", "cls")
    w.add_array("preprocess.image_size", [IMG, IMG])
    w.add_string("preprocess.resize_mode", "squash")
    w.add_float32("preprocess.crop_pct", 1.0)
    w.add_string("preprocess.interpolation", "bilinear")
    w.add_float32("preprocess.rescale_factor", 1 / 255)
    w.add_array("preprocess.mean", [0.5, 0.5, 0.5])
    w.add_array("preprocess.std", [0.5, 0.5, 0.5])
    T = 1 + (IMG // P) ** 2
    tensors = {
        "v.patch_embd.weight": (D, 3, P, P), "v.patch_embd.bias": (D,), "v.class_embd": (D,),
        "v.position_embd.weight": (T, D),
        "v.blk.0.ln1.weight": (D,), "v.blk.0.ln1.bias": (D,),
        "v.blk.0.attn_qkv.weight": (3 * D, D), "v.blk.0.attn_qkv.bias": (3 * D,),
        "v.blk.0.attn_out.weight": (D, D), "v.blk.0.attn_out.bias": (D,),
        "v.blk.0.ln2.weight": (D,), "v.blk.0.ln2.bias": (D,),
        "v.blk.0.ffn_up.weight": (FF, D), "v.blk.0.ffn_up.bias": (FF,),
        "v.blk.0.ffn_down.weight": (D, FF), "v.blk.0.ffn_down.bias": (D,),
        "v.post_ln.weight": (D,), "v.post_ln.bias": (D,),
        "v.head.weight": (4, D), "v.head.bias": (4,),
    }
    tensors.update(shapes or {})
    for name, shape in tensors.items():
        if name in drop:
            continue
        a = rng.standard_normal(shape).astype(np.float32) * 0.1
        if len(shape) >= 2:
            a = a.astype(dtype)
        w.add_tensor(name, a)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return str(path)


@pytest.fixture
def good(tmp_path):
    return write_vit_gguf(tmp_path / "good.gguf")


def test_good_file_runs(good):
    enc = pyvitcpp.Encoder(good, threads=1)
    out = enc.forward(np.zeros((2, 3, IMG, IMG), np.float32), ["logits", "pooled", "last_hidden_state"])
    assert out["logits"].shape == (2, 4)
    assert out["last_hidden_state"].shape == (2, 1 + (IMG // P) ** 2, D)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.gguf"):
        pyvitcpp.Encoder(tmp_path / "nope.gguf")


def test_directory(tmp_path):
    with pytest.raises(IsADirectoryError):
        pyvitcpp.Encoder(tmp_path)


def test_not_gguf(tmp_path):
    p = tmp_path / "image.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    with pytest.raises(pyvitcpp.GGUFError, match="(?i)magic"):
        pyvitcpp.Encoder(p)


def test_truncated_prefixes(good, tmp_path):
    """Every prefix length of a small model file is rejected by the engine (in a subprocess,
    so a crash would be seen as a failure rather than killing the test run)."""
    data = open(good, "rb").read()
    script = f"""
import sys
from pyvitcpp import _core
data = open({good!r}, 'rb').read()
path = {str(tmp_path / 'cut.gguf')!r}
bad = 0
for n in range(0, len(data), max(1, len(data) // 1500)):
    open(path, 'wb').write(data[:n])
    try:
        _core.Model(path, 1, '')
    except (ValueError, OSError) as e:
        continue
    print('accepted prefix', n); bad += 1
sys.exit(1 if bad else 0)
"""
    env = dict(os.environ)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                       cwd=os.path.dirname(os.path.dirname(pyvitcpp.__file__)))
    assert r.returncode == 0, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    assert len(data) > 1000


def test_data_past_end(good, tmp_path):
    data = open(good, "rb").read()
    p = tmp_path / "short.gguf"
    p.write_bytes(data[:-100])
    with pytest.raises(pyvitcpp.GGUFError, match="(?i)end of file|past|truncat"):
        pyvitcpp.Encoder(p)


def test_missing_tensor(tmp_path):
    p = write_vit_gguf(tmp_path / "m.gguf", drop={"v.blk.0.ffn_up.weight"})
    with pytest.raises(pyvitcpp.ModelError, match="v.blk.0.ffn_up.weight"):
        pyvitcpp.Encoder(p)


def test_wrong_tensor_shape(tmp_path):
    p = write_vit_gguf(tmp_path / "s.gguf", shapes={"v.blk.0.attn_out.weight": (D, D + 1)})
    with pytest.raises(pyvitcpp.ModelError, match="attn_out"):
        pyvitcpp.Encoder(p)


def test_bad_hparams(tmp_path):
    p = write_vit_gguf(tmp_path / "h.gguf", kv_override={"vit.attention.head_count": 5})
    with pytest.raises(pyvitcpp.ModelError, match="divisible"):
        pyvitcpp.Encoder(p)


def test_unsupported_architecture(tmp_path):
    p = write_vit_gguf(tmp_path / "a.gguf", arch="llama")
    with pytest.raises(pyvitcpp.ModelError, match="llama"):
        pyvitcpp.Encoder(p)


def test_bad_pixels(good):
    enc = pyvitcpp.Encoder(good, threads=1)
    with pytest.raises(TypeError, match="float32"):
        enc.forward(np.zeros((1, 3, IMG, IMG), np.float64))
    with pytest.raises(TypeError):
        enc.forward([[1.0]])
    with pytest.raises(ValueError, match="shape"):
        enc.forward(np.zeros((1, 1, 3, IMG, IMG), np.float32))
    with pytest.raises(ValueError, match="channels"):
        enc.forward(np.zeros((1, 4, IMG, IMG), np.float32))
    with pytest.raises(ValueError, match="patch"):  # any resolution runs, but not below one patch
        enc.forward(np.zeros((1, 3, P - 1, IMG), np.float32))
    with pytest.raises(ValueError, match="batch of 0"):
        enc.forward(np.zeros((0, 3, IMG, IMG), np.float32))
    with pytest.raises(ValueError, match="unknown output"):
        enc.forward(np.zeros((1, 3, IMG, IMG), np.float32), "features")
    # non-contiguous input is accepted (copied), giving the same result as contiguous
    x = np.random.default_rng(0).standard_normal((2, 3, IMG, IMG)).astype(np.float32)
    a = enc.forward(x, "pooled")
    b = enc.forward(np.asfortranarray(x), "pooled")
    np.testing.assert_array_equal(a, b)


def test_bad_isa(good):
    with pytest.raises(ValueError, match="avx9"):
        pyvitcpp.Encoder(good, isa="avx9")
    r = subprocess.run([sys.executable, "-c", f"import pyvitcpp; pyvitcpp.Encoder({good!r})"],
                       env={**os.environ, "PYVITCPP_ISA": "sse9"}, capture_output=True, text=True)
    assert r.returncode == 1 and "sse9" in r.stderr


def test_bad_threads(good):
    with pytest.raises(ValueError, match="threads"):
        pyvitcpp.Encoder(good, threads=0)


def test_cpu_info():
    info = pyvitcpp.cpu_info()
    assert "ref" in info["supported_levels"]
    assert info["level"] in info["supported_levels"]
    if "avx2" in info["supported_levels"]:
        assert info["features"]["avx2"] and info["features"]["fma"] and info["features"]["f16c"]
    if "avx512" in info["supported_levels"]:
        assert info["features"]["avx512f"] and info["features"]["avx512bw"] and info["features"]["avx512_vnni"]
