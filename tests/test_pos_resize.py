"""Position-table resizing (csrc/ops/pos_resize.cpp) vs torch.nn.functional.interpolate as the
reference libraries call it: HF interpolate_pos_encoding (bicubic, align_corners=False) and timm
resample_abs_pos_embed (bicubic, antialias=True); up, down, identity and non-square grids."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pyvitcpp import _testing

GRIDS = [((4, 4), (4, 4)), ((4, 4), (7, 5)), ((14, 14), (37, 37)), ((16, 16), (9, 13)),
         ((5, 5), (2, 11)), ((3, 3), (1, 1)), ((16, 16), (24, 16)), ((7, 7), (3, 3))]


def _torch(src, gh, gw, antialias):
    x = torch.from_numpy(src).permute(2, 0, 1)[None]
    y = F.interpolate(x, size=(gh, gw), mode="bicubic", align_corners=False, antialias=antialias)
    return y[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize("mode", ["bicubic", "bicubic_antialias"])
@pytest.mark.parametrize("grids", GRIDS, ids=lambda g: f"{g[0][0]}x{g[0][1]}-{g[1][0]}x{g[1][1]}")
def test_matches_torch(mode, grids):
    (gh0, gw0), (gh, gw) = grids
    rng = np.random.default_rng(gh0 * 100 + gh * 10 + gw)
    src = rng.standard_normal((gh0, gw0, 19)).astype(np.float32)
    ours = _testing.resize_pos_table(src, gh, gw, mode)
    ref = _torch(src, gh, gw, mode == "bicubic_antialias")
    assert ours.shape == ref.shape
    # a few float roundings of O(1) values over <= 4 * scale taps per axis
    np.testing.assert_allclose(ours, ref, rtol=0, atol=2e-6 * np.abs(src).max() * max(1, gh0 / gh, gw0 / gw))


def test_identity_and_none():
    src = np.random.default_rng(0).standard_normal((6, 6, 5)).astype(np.float32)
    for mode in ("bicubic", "bicubic_antialias", "none"):
        np.testing.assert_array_equal(_testing.resize_pos_table(src, 6, 6, mode), src)
    with pytest.raises(ValueError, match="only runs"):
        _testing.resize_pos_table(src, 7, 6, "none")
    with pytest.raises(ValueError, match="unknown"):
        _testing.resize_pos_table(src, 7, 6, "bilinear")


# ---------------------------------------------------------------------------------------------
# End to end: ViT / DeiT at resolutions other than the native one.

import os  # noqa: E402
import zlib  # noqa: E402

import transformers  # noqa: E402

import pyvitcpp  # noqa: E402
from conftest import cosine, fp32_bound, image_batch, randomize_  # noqa: E402
from pyvitcpp.convert import convert  # noqa: E402


def pixels(real_images, n, h, w, seed=0):
    return np.ascontiguousarray(image_batch(real_images, n, max(h, w), seed=seed)[:, :, :h, :w])


def check(ours, ref, n_layers, k_max):
    for key, r in ref.items():
        r = r.detach().numpy() if hasattr(r, "detach") else np.asarray(r)
        o = ours[key]
        assert o.shape == r.shape, (key, o.shape, r.shape)
        c = cosine(o, r)
        assert c >= 0.99999, f"{key}: cosine {c:.8f}"
        err = float(np.abs(o - r).max())
        assert err <= fp32_bound(r, n_layers, k_max), f"{key}: max abs error {err:.3g}"


@pytest.fixture(scope="module")
def hf_vit(tmp_path_factory):
    cfg = transformers.ViTConfig(hidden_size=48, num_hidden_layers=2, num_attention_heads=3, intermediate_size=100,
                                 image_size=28, patch_size=14)
    model = transformers.ViTModel(cfg).eval()
    randomize_(model, seed=zlib.crc32(b"hf_vit_resize"))
    folder = tmp_path_factory.mktemp("hfvit")
    model.save_pretrained(folder)
    convert(str(folder), str(folder / "m.gguf"), outtype="f32", verbose=False)
    return model, pyvitcpp.Encoder(folder / "m.gguf", threads=2)


@pytest.mark.parametrize("hw", [(28, 28), (70, 70), (42, 98), (56, 30), (31, 45)])  # last: remainders dropped
@pytest.mark.parametrize("batch", [1, 3])
def test_hf_vit_any_resolution(hf_vit, real_images, hw, batch):
    model, enc = hf_vit
    px = pixels(real_images, batch, *hw, seed=batch)
    with torch.no_grad():
        o = model(pixel_values=torch.from_numpy(px), interpolate_pos_encoding=True)
    lhs = o.last_hidden_state
    gh, gw = hw[0] // 14, hw[1] // 14
    ref = {"last_hidden_state": lhs, "pooled": o.pooler_output, "patch_tokens": lhs[:, 1:],
           "feature_map": lhs[:, 1:].reshape(batch, gh, gw, -1).permute(0, 3, 1, 2)}
    ours = enc.forward(px, list(ref))
    check(ours, ref, 2, 100)


@pytest.fixture(scope="module")
def timm_deit(tmp_path_factory):
    import timm

    model = timm.create_model("deit_tiny_distilled_patch16_224", pretrained=False, num_classes=5,
                              dynamic_img_size=True, depth=2).eval()
    randomize_(model, seed=3)
    folder = tmp_path_factory.mktemp("timmdeit")
    torch.save(model.state_dict(), folder / "m.pth")
    convert(str(folder / "m.pth"), str(folder / "m.gguf"), outtype="f32", model_name="deit_tiny_distilled_patch16_224",
            model_kwargs={"depth": 2}, verbose=False)
    return model, pyvitcpp.Encoder(folder / "m.gguf", threads=2)


@pytest.mark.parametrize("hw", [(224, 224), (160, 160), (128, 288)])
def test_timm_dynamic_img_size(timm_deit, real_images, hw):
    model, enc = timm_deit
    px = pixels(real_images, 2, *hw, seed=5)
    with torch.no_grad():
        feats = model.forward_features(torch.from_numpy(px))
        ref = {"last_hidden_state": feats, "logits": model.forward_head(feats)}
    check(enc.forward(px, list(ref)), ref, 2, 768)


def _rewritten(hf_vit_folder, tmp_path, key, value):
    from pyvitcpp.convert import load_model
    from pyvitcpp.convert.writer import write_gguf

    m = load_model(str(hf_vit_folder))
    m.hparams = [(k, value if k == key else v, kind) for k, v, kind in m.hparams]
    return write_gguf(m, str(tmp_path / "x.gguf"), outtype="f32", verbose=False)


def test_pos_resize_errors(hf_vit, real_images, tmp_path):
    model, enc = hf_vit
    folder = os.path.dirname(enc.path)
    fixed = pyvitcpp.Encoder(_rewritten(folder, tmp_path, "vit.pos_resize", "none"), threads=1)
    fixed.forward(pixels(real_images, 1, 28, 28), "pooled")  # native still runs
    with pytest.raises(ValueError, match="native 28x28 resolution only"):
        fixed.forward(pixels(real_images, 1, 28, 42), "pooled")
    with pytest.raises(ValueError, match="pos_resize"):
        pyvitcpp.Encoder(_rewritten(folder, tmp_path, "vit.pos_resize", "lanczos"))


def test_pos_table_cached_per_grid(hf_vit, real_images):
    """Alternating sizes reuses the resized tables: results identical to the first run's."""
    model, enc = hf_vit
    a = [enc.forward(pixels(real_images, 2, h, w, seed=3), "pooled") for h, w in ((42, 56), (28, 70), (70, 28))]
    for _ in range(2):
        b = [enc.forward(pixels(real_images, 2, h, w, seed=3), "pooled") for h, w in ((42, 56), (28, 70), (70, 28))]
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


def test_hf_deit_distilled_any_resolution(real_images, tmp_path):
    """DeiT: two prefix positions (class, distillation) kept, the patch grid resized."""
    cfg = transformers.DeiTConfig(hidden_size=48, num_hidden_layers=1, num_attention_heads=3, intermediate_size=96,
                                  image_size=32, patch_size=16, num_labels=4)
    model = transformers.DeiTForImageClassificationWithTeacher(cfg).eval()
    randomize_(model, seed=9)
    model.save_pretrained(tmp_path)
    convert(str(tmp_path), str(tmp_path / "m.gguf"), outtype="f32", verbose=False)
    enc = pyvitcpp.Encoder(tmp_path / "m.gguf", threads=2)
    px = pixels(real_images, 2, 48, 80, seed=2)
    with torch.no_grad():
        o = model(pixel_values=torch.from_numpy(px), interpolate_pos_encoding=True, output_hidden_states=True)
    lhs = model.deit.layernorm(o.hidden_states[-1])
    check(enc.forward(px, ["last_hidden_state", "logits"]), {"last_hidden_state": lhs, "logits": o.logits}, 1, 96)
