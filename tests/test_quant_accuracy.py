"""Accuracy of each block type end to end: ViT-family models with seeded random weights
(conftest.randomize_: matrices ~ N(0, 1/fan_in)), quantized from their F32 GGUF, against the
PyTorch F32 reference on real-photo crops. Cosine of the pooled output must reach Q8_0 >= 0.999,
Q5_x >= 0.995, Q4_x >= 0.98 (run with -s to see the figures). Also the file-level contract of
the re-quantizer and the converter's block outtypes."""
from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch
import transformers

from conftest import cosine, image_batch, isa_or_skip, randomize_

import pyvitcpp
from pyvitcpp import _testing
from pyvitcpp.convert import convert

import gguf

MIN_COS = {"q8_0": 0.999, "q5_0": 0.995, "q5_1": 0.995, "q4_0": 0.98, "q4_1": 0.98}
TYPES = list(MIN_COS)


def _default_level() -> str:
    return pyvitcpp.cpu_info()["level"]


@pytest.fixture(scope="module")
def hf_vit(tmp_path_factory):
    """HF ViT classifier: hidden 64, 2 layers, 2 heads, MLP 128 (every matrix quantizable)."""
    cfg = transformers.ViTConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
                                 image_size=32, patch_size=16, num_labels=5)
    model = transformers.ViTForImageClassification(cfg).eval()
    randomize_(model, seed=zlib.crc32(b"quant-hf-vit"))
    folder = tmp_path_factory.mktemp("qvit")
    model.save_pretrained(folder)
    f32 = folder / "f32.gguf"
    convert(str(folder), str(f32), outtype="f32", verbose=False)
    return model, folder, f32


@pytest.fixture(scope="module")
def timm_vit(tmp_path_factory):
    """timm vit_tiny_patch16_224: D 192, 12 layers, 3 heads, MLP 768, avg pool + fc_norm."""
    import timm
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, global_pool="avg",
                              fc_norm=True).eval()
    randomize_(model, seed=21)
    folder = tmp_path_factory.mktemp("qtimm")
    sd = folder / "model.pth"
    torch.save(model.state_dict(), sd)
    f32 = folder / "f32.gguf"
    convert(str(sd), str(f32), outtype="f32", model_name="vit_tiny_patch16_224", verbose=False,
            model_kwargs={"global_pool": "avg", "fc_norm": True})
    return model, folder, f32


@pytest.mark.parametrize("level", ["ref", "default"])
@pytest.mark.parametrize("qtype", TYPES)
def test_hf_vit_pooled_cosine(hf_vit, real_images, qtype, level):
    level = _default_level() if level == "default" else isa_or_skip(level)
    model, folder, f32 = hf_vit
    q = folder / f"{qtype}.gguf"
    if not q.exists():
        pyvitcpp.quantize(f32, q, qtype)
    px = image_batch(real_images, 4, 32, seed=5)
    with torch.no_grad():
        ref = model.vit(pixel_values=torch.from_numpy(px)).last_hidden_state[:, 0].numpy()
    ours = pyvitcpp.Encoder(q, isa=level, threads=2).forward(px, "pooled")
    c = cosine(ours, ref)
    print(f"\n[quant accuracy] hf-vit-h64 {qtype} {level}: pooled cosine {c:.6f}")
    assert c >= MIN_COS[qtype], f"{qtype}: cosine {c:.6f} < {MIN_COS[qtype]}"


@pytest.mark.parametrize("qtype", TYPES)
def test_timm_vit_tiny_pooled_cosine(timm_vit, real_images, qtype):
    """12 layers: the format's own rounding compounds. Two references: PyTorch F32, and PyTorch
    with every quantized matrix replaced by gguf-py's dequantization of its blocks (what the
    format can do at best). The engine must match the latter closely (its own error is the
    int8 activation rounding); against F32, Q8_0 must reach 0.999, and the other types' figures
    are printed (measured: Q5_1 0.9955, Q5_0 0.9937, Q4_1 0.980, Q4_0 0.972 -- below the
    issue's 0.995 / 0.98 for Q5_0 and Q4_0 because of the format itself, equal with PyTorch)."""
    import copy

    model, folder, f32 = timm_vit
    q = folder / f"{qtype}.gguf"
    pyvitcpp.quantize(f32, q, qtype)
    px = image_batch(real_images, 2, 224, seed=6)
    qt = getattr(gguf.GGMLQuantizationType, qtype.upper())
    deq = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in deq.named_parameters():
            if p.ndim >= 2 and "pos_embed" not in name and "cls_token" not in name and p.shape[-1] % 32 == 0:
                w = p.numpy().reshape(p.shape[0], -1)
                p.copy_(torch.from_numpy(gguf.quants.dequantize(gguf.quants.quantize(w, qt), qt)).reshape(p.shape))
        ref = model.forward_head(model.forward_features(torch.from_numpy(px)), pre_logits=True).numpy()
        ref_q = deq.forward_head(deq.forward_features(torch.from_numpy(px)), pre_logits=True).numpy()
    ours = pyvitcpp.Encoder(q, threads=2).forward(px, "pooled")
    c, c_fmt, c_eng = cosine(ours, ref), cosine(ref_q, ref), cosine(ours, ref_q)
    print(f"\n[quant accuracy] timm vit_tiny_patch16_224 {qtype} {_default_level()}: pooled cosine vs F32 {c:.6f} "
          f"(PyTorch with the dequantized weights: {c_fmt:.6f}); ours vs that: {c_eng:.6f}")
    # the engine's own error is the activation rounding, step amax / qmax per block: 1 - cosine
    # grows with (127 / qmax)^2 where a level quantizes activations more coarsely (avx2 Q8_0)
    qmax = _testing.qgemm_act_qmax(_default_level(), qtype)
    assert 1 - c_eng <= 1e-5 * (127 / qmax) ** 2, f"{qtype}: engine vs dequantized-weight reference cosine {c_eng:.6f}"
    if qtype == "q8_0":
        assert c >= MIN_COS[qtype]


@pytest.mark.parametrize("qtype", ["q8_0", "q4_1"])
def test_requantized_file_contract(hf_vit, tmp_path, capsys, qtype):
    """Same metadata (file_type set), same tensors in order; matrices in the block type with the
    bytes gguf-py would write, 1-D tensors and embeddings untouched, the 4-D patch conv (rows of
    16) F16 with a note; gguf-py reads the file; the converter writes the same bytes."""
    model, folder, f32 = hf_vit
    out = tmp_path / "out.gguf"
    plan = pyvitcpp.quantize(f32, out, qtype, verbose=True)
    err = capsys.readouterr().err
    assert "v.patch_embd.weight: f16 fallback: rows of 16 are not a multiple of 32" in err
    src, dst = gguf.GGUFReader(str(f32)), gguf.GGUFReader(str(out))
    qt = getattr(gguf.GGMLQuantizationType, qtype.upper())
    keys = [k for k in src.fields if not k.startswith("GGUF.")]
    assert [k for k in dst.fields if not k.startswith("GGUF.")] == keys
    for k in keys:
        if k != "general.file_type":
            assert dst.fields[k].contents() == src.fields[k].contents(), k
    assert dst.fields["general.file_type"].contents() == {"q8_0": 7, "q4_1": 3}[qtype]
    assert [t.name for t in dst.tensors] == [t.name for t in src.tensors]
    by_name = {p[0]: p for p in plan}
    for ts, td in zip(src.tensors, dst.tensors):
        assert list(td.shape) == list(ts.shape), ts.name
        a = np.asarray(ts.data).reshape(-1, int(ts.shape[0]))
        if len(ts.shape) == 1 or ts.name in ("v.class_embd", "v.position_embd.weight"):
            assert td.tensor_type == ts.tensor_type and np.array_equal(np.asarray(td.data), np.asarray(ts.data))
        elif ts.name == "v.patch_embd.weight":
            assert td.tensor_type == gguf.GGMLQuantizationType.F16 and by_name[ts.name][2] == "f16"
        else:
            assert td.tensor_type == qt, ts.name
            np.testing.assert_array_equal(np.asarray(td.data).reshape(a.shape[0], -1), gguf.quants.quantize(a, qt))
    conv = tmp_path / "conv.gguf"
    convert(str(folder), str(conv), outtype=qtype, verbose=False)
    for tc, td in zip(gguf.GGUFReader(str(conv)).tensors, dst.tensors):
        assert tc.name == td.name and tc.tensor_type == td.tensor_type
        assert np.array_equal(np.asarray(tc.data), np.asarray(td.data)), tc.name


def test_quantize_errors(hf_vit, tmp_path):
    model, folder, f32 = hf_vit
    with pytest.raises(FileNotFoundError):
        pyvitcpp.quantize(tmp_path / "missing.gguf", tmp_path / "o.gguf", "q8_0")
    with pytest.raises(ValueError, match="unknown quantization type"):
        pyvitcpp.quantize(f32, tmp_path / "o.gguf", "q3_k")
    with pytest.raises(ValueError, match="different file"):
        pyvitcpp.quantize(f32, f32, "q8_0")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 10)
    with pytest.raises(ValueError):
        pyvitcpp.quantize(bad, tmp_path / "o.gguf", "q8_0")
    assert not (tmp_path / "o.gguf").exists() and not (tmp_path / "o.gguf.tmp").exists()


def test_cli_quantize(hf_vit, tmp_path, capsys):
    from pyvitcpp.cli import main

    model, folder, f32 = hf_vit
    out = tmp_path / "cli.gguf"
    assert main(["quantize", str(f32), str(out), "--type", "q5_1"]) == 0
    assert "as q5_1" in capsys.readouterr().err
    r = gguf.GGUFReader(str(out))
    assert r.fields["general.file_type"].contents() == 9
    assert main(["quantize", str(tmp_path / "nope.gguf"), str(out)]) == 2


def test_quantized_weights_stay_quantized_in_memory(hf_vit, tmp_path):
    """The engine keeps block weights in their quantized form: the packed copy of every matrix
    is about the size of its blocks (not F32)."""
    model, folder, f32 = hf_vit
    q = tmp_path / "q8.gguf"
    pyvitcpp.quantize(f32, q, "q8_0")
    enc = pyvitcpp.Encoder(q, threads=1)
    n_quant, bound = 0, 0
    for t in gguf.GGUFReader(str(q)).tensors:
        if len(t.shape) < 2 or t.name == "v.position_embd.weight":
            continue
        ne = [int(x) for x in t.shape]  # ggml order: a matrix [N, K] is (K, N), the conv (p, p, C, D)
        K, N = int(np.prod(ne[:-1])), ne[-1]
        n_pad = -(-N // 16) * 16
        if t.tensor_type == gguf.GGMLQuantizationType.Q8_0:
            n_quant += N * K
            bound += n_pad * K * 1.125          # codes + f32 scale per 32
        else:
            bound += -(-N // 64) * 64 * K * 4   # an F32/F16 pack, at most F32 padded to 64 columns
    packed = enc._model.packed_weight_bytes
    if _default_level() == "ref":
        assert packed == 0  # ref computes from the mapped blocks
        return
    assert 0 < packed <= bound
    assert enc._model.owned_weight_bytes < 0.5 * n_quant


def test_split_qkv_quantized_matches_fused(hf_vit, real_images, tmp_path):
    """The llama.cpp mmproj layout (attn_q/k/v separate) with block weights: fused at load by
    stacking block rows; outputs identical to the file with attn_qkv."""
    model, folder, f32 = hf_vit
    fused = tmp_path / "fused.gguf"
    pyvitcpp.quantize(f32, fused, "q4_1")
    r = gguf.GGUFReader(str(fused))
    w = gguf.GGUFWriter(str(tmp_path / "split.gguf"), "vit")
    skip = {"GGUF.version", "GGUF.tensor_count", "GGUF.kv_count", "general.architecture"}
    for key, f in r.fields.items():
        if key in skip:
            continue
        vtype = f.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            w.add_key_value(key, f.contents(), vtype, sub_type=f.types[-1])
        else:
            w.add_key_value(key, f.contents(), vtype)
    for t in r.tensors:
        data = np.asarray(t.data)
        if ".attn_qkv." in t.name:
            parts = np.split(data, 3, axis=0)
            for nm, part in zip(("attn_q", "attn_k", "attn_v"), parts):
                name = t.name.replace("attn_qkv", nm)
                if t.tensor_type == gguf.GGMLQuantizationType.Q4_1:
                    w.add_tensor(name, np.ascontiguousarray(part), raw_shape=part.shape, raw_dtype=t.tensor_type)
                else:
                    w.add_tensor(name, np.ascontiguousarray(part))
        elif t.tensor_type in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
            w.add_tensor(t.name, np.ascontiguousarray(data))
        else:
            w.add_tensor(t.name, np.ascontiguousarray(data), raw_shape=data.shape, raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    assert any("attn_k" in t.name for t in gguf.GGUFReader(str(tmp_path / "split.gguf")).tensors)
    px = image_batch(real_images, 2, 32, seed=8)
    for level in ("ref", _default_level()):
        a = pyvitcpp.Encoder(fused, isa=level, threads=2).forward(px, "last_hidden_state")
        b = pyvitcpp.Encoder(tmp_path / "split.gguf", isa=level, threads=2).forward(px, "last_hidden_state")
        np.testing.assert_array_equal(a, b)


def test_patch32_conv_quantized_as_4d(real_images, tmp_path):
    """A 32x32 patch conv has rows of 32, so the converter and the re-quantizer quantize it while
    it is still 4-D [D, C, 32, 32]; the engine must take it as the [D, C*32*32] matrix it is
    bytewise (CLIP B/32's layout), not refuse it."""
    cfg = transformers.CLIPVisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                        num_attention_heads=2, image_size=64, patch_size=32, projection_dim=32)
    model = transformers.CLIPVisionModelWithProjection(cfg).eval()
    randomize_(model, seed=zlib.crc32(b"clip-p32"))
    folder = tmp_path / "clip_p32"
    model.save_pretrained(folder)
    px = image_batch(real_images, 2, 64, seed=9)
    with torch.no_grad():
        ref = model(pixel_values=torch.from_numpy(px)).image_embeds.numpy()
    f32 = tmp_path / "f32.gguf"
    convert(str(folder), str(f32), outtype="f32", verbose=False)
    conv_q = tmp_path / "conv-q8_0.gguf"
    convert(str(folder), str(conv_q), outtype="q8_0", verbose=False)
    req_q = tmp_path / "req-q8_0.gguf"
    pyvitcpp.quantize(str(f32), str(req_q), "q8_0")
    for path in (conv_q, req_q):
        types = {t.name: t.tensor_type for t in gguf.GGUFReader(str(path)).tensors}
        assert types["v.patch_embd.weight"] == gguf.GGMLQuantizationType.Q8_0
        got = pyvitcpp.Encoder(str(path), threads=1).forward(px, "embedding")
        assert cosine(got, ref) >= 0.999, path.name
