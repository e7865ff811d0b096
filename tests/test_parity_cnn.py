"""CNN families vs PyTorch with the same seeded-random weights and the same pixels.

ResNet-18 (timm and torchvision layouts), a reduced-width bottleneck ResNet (torchvision), and
timm's efficientnet_lite0 (symmetric padding, timm names; the TF-SAME variant with real weights
is tests/test_efficientnet_real.py). Batch-norm statistics are randomised too, so the converter's
folding is exercised. Small images (64x64) keep the run short.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import pyvitcpp
from pyvitcpp.convert import convert
from conftest import cosine, fp32_bound, image_batch, isa_or_skip, randomize_

import timm
import torchvision


def randomize_bn_(model, seed):
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))


def to_gguf(model, tmp_path, name, model_name=None):
    p = tmp_path / f"{name}.pth"
    torch.save(model.state_dict(), p)
    out = tmp_path / f"{name}.gguf"
    convert(str(p), str(out), outtype="f32", verbose=False, model_name=model_name)
    return str(out)


def check(got, want, n_layers, k_max, what):
    assert got.shape == want.shape, what
    c = cosine(got, want)
    assert c >= 0.99999, f"{what}: cosine {c}"
    bound = fp32_bound(want, n_layers, k_max, c=8.0)
    err = np.abs(got - want).max()
    assert err <= bound, f"{what}: max abs err {err:.3g} > bound {bound:.3g}"


def run_resnet(model, path, px, n_layers, k_max, isa, feature_model=None, **enc_kw):
    model.eval()
    enc = pyvitcpp.Encoder(path, isa=isa, **enc_kw)
    names = ["logits", "pooled"] + [f"features.{i}" for i in range(5)]
    out = enc.forward(px, names)
    t = torch.from_numpy(px)
    with torch.no_grad():
        x = model.conv1(t)
        x = model.bn1(x)
        x = model.act1(x) if hasattr(model, "act1") else model.relu(x)
        feats = [x]
        x = model.maxpool(x)
        for layer in (model.layer1, model.layer2, model.layer3, model.layer4):
            x = layer(x)
            feats.append(x)
        pooled = torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1)
        logits = model.fc(pooled)
    check(out["logits"], logits.numpy(), n_layers, k_max, "logits")
    check(out["pooled"], pooled.numpy(), n_layers, k_max, "pooled")
    for i, f in enumerate(feats):
        check(out[f"features.{i}"], f.numpy(), n_layers, k_max, f"features.{i}")
    return enc


@pytest.mark.parametrize("isa", ["avx2", "avx512", "ref"])
def test_resnet18_timm(tmp_path, real_images, isa):
    isa_or_skip(isa)
    m = timm.create_model("resnet18", pretrained=False, num_classes=17)
    randomize_(m, 0)
    randomize_bn_(m, 0)
    path = to_gguf(m, tmp_path, "r18", model_name="resnet18")
    px = image_batch(real_images, 2 if isa != "ref" else 1, 64)
    enc = run_resnet(m, path, px, 18, 9 * 512, isa)
    assert enc.config["architecture"] == "resnet" and enc.config["block_type"] == "basic"
    # timm's features_only names the same maps
    fm = timm.create_model("resnet18", features_only=True, pretrained=False).eval()
    fm.load_state_dict({k: v for k, v in m.state_dict().items() if not k.startswith("fc.")})
    with torch.no_grad():
        ref = fm(torch.from_numpy(px))
    out = enc.forward(px, [f"features.{i}" for i in range(5)])
    for i, r in enumerate(ref):
        assert cosine(out[f"features.{i}"], r.numpy()) >= 0.99999


def test_resnet18_torchvision(tmp_path, real_images):
    m = torchvision.models.resnet18(weights=None, num_classes=10)
    randomize_(m, 1)
    randomize_bn_(m, 1)
    path = to_gguf(m, tmp_path, "tv_r18")
    px = image_batch(real_images, 2, 64, seed=1)
    run_resnet(m, path, px, 18, 9 * 512, "avx2" if pyvitcpp._core.isa_supported("avx2")[0] else "ref")


def test_bottleneck_resnet_reduced_width(tmp_path, real_images):
    from torchvision.models.resnet import Bottleneck, ResNet

    m = ResNet(Bottleneck, [1, 2, 1, 1], num_classes=12, width_per_group=16)
    randomize_(m, 2)
    randomize_bn_(m, 2)
    path = to_gguf(m, tmp_path, "tv_bneck")
    px = image_batch(real_images, 2, 64, seed=2)
    enc = run_resnet(m, path, px, 16, 2048, "avx2" if pyvitcpp._core.isa_supported("avx2")[0] else "ref")
    assert enc.config["block_type"] == "bottleneck"


def test_profile_names_cnn_ops(tmp_path, real_images):
    """PYVITCPP_PROFILE=1 names every CNN op (it printed a bare "op" for them before); the 3x3
    convs and the NCHW stem show as "Conv" (their Im2col fused into the GEMM's gather), and no
    block leaves an activation pass of its own."""
    import os
    import subprocess
    import sys
    from torchvision.models.resnet import Bottleneck, ResNet

    m = ResNet(Bottleneck, [1, 1, 1, 1], num_classes=5, width_per_group=16)
    path = to_gguf(m, tmp_path, "prof")
    np.save(tmp_path / "px.npy", image_batch(real_images, 1, 64, seed=3))
    code = ("import numpy as np, pyvitcpp, sys; "
            "pyvitcpp.Encoder(sys.argv[1], threads=1).forward(np.load(sys.argv[2]))")
    env = dict(os.environ, PYVITCPP_PROFILE="1",
               PYTHONPATH=os.path.dirname(os.path.dirname(pyvitcpp.__file__)))
    r = subprocess.run([sys.executable, "-c", code, path, str(tmp_path / "px.npy")],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = [ln.split()[0] for ln in r.stderr.splitlines() if ln.startswith("  ")]
    assert {"Conv", "Linear", "Pool2d", "Copy"} <= set(rows), r.stderr
    # The blocks' ReLU after the shortcut runs in the last conv's epilogue (relu_out): no Eltwise.
    assert "Eltwise" not in rows, r.stderr
    assert "op" not in rows and "Im2col" not in rows, r.stderr
    assert any(ln.split()[:2] == ["Conv", "1024x147->64"] for ln in r.stderr.splitlines()), r.stderr  # the 7x7 stem


def test_efficientnet_lite0_timm_symmetric_padding(tmp_path, real_images):
    m = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=11).eval()
    randomize_(m, 3)
    randomize_bn_(m, 3)
    path = to_gguf(m, tmp_path, "lite0_timm", model_name="efficientnet_lite0")
    enc = pyvitcpp.Encoder(path)
    assert enc.config["padding"] == "symmetric"
    px = image_batch(real_images, 2, 64, seed=3)
    out = enc.forward(px, ["logits", "pooled", "last_hidden_state"])
    with torch.no_grad():
        f = m.forward_features(torch.from_numpy(px))
        pooled = m.forward_head(f, pre_logits=True)
        logits = m.forward_head(f)
    check(out["last_hidden_state"], f.numpy(), 50, 1152, "last_hidden_state")
    check(out["pooled"], pooled.numpy(), 50, 1280, "pooled")
    check(out["logits"], logits.numpy(), 50, 1280, "logits")


def test_cnn_errors(tmp_path, real_images):
    m = torchvision.models.resnet18(weights=None, num_classes=10)
    path = to_gguf(m, tmp_path, "r18e")
    enc = pyvitcpp.Encoder(path)
    with pytest.raises(ValueError, match="out of range"):
        enc.forward(np.zeros((1, 3, 16, 16), np.float32), "logits")
    with pytest.raises(ValueError, match="channel"):
        enc.forward(np.zeros((1, 4, 64, 64), np.float32), "logits")
    with pytest.raises(ValueError, match="unknown output"):
        enc.forward(np.zeros((1, 3, 64, 64), np.float32), "features.9")
    # a ResNet-D style checkpoint is refused by the converter, naming why
    from pyvitcpp.convert import ConversionError
    sd = m.state_dict()
    sd["layer2.0.downsample.0.weight"] = torch.zeros(128, 64, 3, 3)
    p = tmp_path / "bad.pth"
    torch.save(sd, p)
    with pytest.raises(ConversionError, match="1x1"):
        convert(str(p), str(tmp_path / "bad.gguf"), verbose=False)


def test_inconsistent_cnn_files_are_model_errors(tmp_path):
    """Valid GGUF, wrong CNN content: a ModelError naming the cause, never a crash."""
    from pyvitcpp.convert.cnn import convert_resnet, convert_efficientnet
    from pyvitcpp.convert.writer import write_gguf

    m = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=5)
    sd = {k: v.numpy() for k, v in m.state_dict().items()}
    cm = convert_efficientnet(sd, layout="timm", name="x", source="test", padding="symmetric", bn_eps=1e-5)
    good = str(tmp_path / "good.gguf")
    write_gguf(cm, good, outtype="f32", verbose=False)
    pyvitcpp.Encoder(good)

    def variant(name, edit):
        cm2 = convert_efficientnet(sd, layout="timm", name="x", source="test", padding="symmetric", bn_eps=1e-5)
        edit(cm2)
        p = str(tmp_path / f"{name}.gguf")
        write_gguf(cm2, p, outtype="f32", verbose=False)
        return p

    def strides_short(c):
        c.hparams = [(k, v[:-1], t) if k == "efficientnet.block_strides" else (k, v, t) for k, v, t in c.hparams]

    def dw_wrong(c):
        w = c.tensors["blk.3.conv_dw.weight"]
        c.tensors["blk.3.conv_dw.weight"] = np.zeros((w.shape[0], 2, 3, 3), np.float32)

    def missing(c):
        del c.tensors["blk.2.conv_pwl.weight"]

    def padding(c):
        c.hparams = [(k, "valid" if k == "efficientnet.padding" else v, t) for k, v, t in c.hparams]

    for name, edit, msg in [("strides", strides_short, "block_strides"), ("dw", dw_wrong, "depthwise"),
                            ("missing", missing, "blk.2.conv_pwl.weight"), ("padding", padding, "padding")]:
        with pytest.raises(pyvitcpp.ModelError, match=msg):
            pyvitcpp.Encoder(variant(name, edit))


def test_winograd_option(tmp_path, real_images):
    """Encoder(winograd=False) keeps the 3x3 stride-1 convs direct: no Winograd weights, outputs
    within the same bounds of torch, other bits than the default's (so both paths ran); the option
    survives pickling and is type-checked."""
    import pickle

    isa = "avx512" if pyvitcpp._core.isa_supported("avx512")[0] else "avx2"
    isa_or_skip(isa)
    m = timm.create_model("resnet18", pretrained=False, num_classes=7)
    randomize_(m, 4)
    randomize_bn_(m, 4)
    path = to_gguf(m, tmp_path, "r18w", model_name="resnet18")
    px = image_batch(real_images, 2, 64, seed=4)
    on = run_resnet(m, path, px, 18, 9 * 512, isa)
    off = run_resnet(m, path, px, 18, 9 * 512, isa, winograd=False)
    assert on._model.wino_weight_bytes > 0 and off._model.wino_weight_bytes == 0
    a, b = on.forward(px, ["features.1"])["features.1"], off.forward(px, ["features.1"])["features.1"]
    assert not np.array_equal(a, b)
    again = pickle.loads(pickle.dumps(off))
    assert again._model.wino_weight_bytes == 0
    np.testing.assert_array_equal(again.forward(px, ["features.1"])["features.1"], b)
    with pytest.raises(TypeError, match="winograd"):
        pyvitcpp.Encoder(path, winograd="no")
