"""DINOv2 (HF Dinov2Model with MLP and SwiGLU, Dinov2WithRegistersModel; timm vit_*_dinov2 with and
without registers) vs the reference: seeded weights, every output, native and other resolutions
(one non-square), batch 1 and 3."""
from __future__ import annotations

import os
import zlib

import pytest
import torch
import transformers

import pyvitcpp
from conftest import randomize_
from pyvitcpp.convert import convert
from test_tower_util import CASE_IDS, CASES, check_outputs, pixels, token_outputs

P = 14
HF_CASES = {
    # hidden 48 (not a multiple of 32), 3 heads, GELU MLP 96
    "mlp_h48": (transformers.Dinov2Config, transformers.Dinov2Model,
                dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=3, mlp_ratio=2, image_size=28,
                     patch_size=P)),
    # SwiGLU (the giant variant's MLP), 1 head, hidden 40
    "swiglu_h40_1head": (transformers.Dinov2Config, transformers.Dinov2Model,
                         dict(hidden_size=40, num_hidden_layers=2, num_attention_heads=1, mlp_ratio=4,
                              use_swiglu_ffn=True, image_size=28, patch_size=P)),
    # 3 register tokens (no position), antialiased position resize
    "registers_h36": (transformers.Dinov2WithRegistersConfig, transformers.Dinov2WithRegistersModel,
                      dict(hidden_size=36, num_hidden_layers=2, num_attention_heads=3, mlp_ratio=3,
                           num_register_tokens=3, image_size=28, patch_size=P)),
}


@pytest.fixture(scope="module")
def hf_models(tmp_path_factory):
    out = {}
    for name, (Cfg, Model, kw) in HF_CASES.items():
        model = Model(Cfg(**kw)).eval()
        randomize_(model, seed=zlib.crc32(name.encode()))
        folder = tmp_path_factory.mktemp(name)
        model.save_pretrained(folder)
        convert(str(folder), str(folder / "m.gguf"), outtype="f32", verbose=False)
        out[name] = (model, pyvitcpp.Encoder(folder / "m.gguf", threads=2))
    return out


def hf_ref(model, px, n_reg):
    with torch.no_grad():
        o = model(pixel_values=torch.from_numpy(px), output_hidden_states=True)
    lhs = o.last_hidden_state
    gh, gw = px.shape[2] // P, px.shape[3] // P
    ref = {"last_hidden_state": lhs, "pooled": o.pooler_output, "embedding": o.pooler_output, "cls": lhs[:, 0],
           **token_outputs(lhs, 1 + n_reg, gh, gw)}
    for i, h in enumerate(o.hidden_states):
        ref[f"hidden_states.{i}"] = h
    return ref


@pytest.mark.parametrize("batch,grid", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("name", list(HF_CASES))
def test_hf_dinov2(hf_models, real_images, name, batch, grid):
    model, enc = hf_models[name]
    px = pixels(real_images, batch, grid[0] * P, grid[1] * P, seed=batch)
    n_reg = getattr(model.config, "num_register_tokens", 0)
    ref = hf_ref(model, px, n_reg)
    ours = enc.forward(px, list(ref))
    check_outputs(ours, ref, model.config.num_hidden_layers, 4 * model.config.hidden_size)
    assert enc.config["num_register_tokens"] == n_reg


# ---------------------------------------------------------------------------------------------
# timm: reference run with dynamic_img_size=True (its position resize), tiny overrides of the
# named architectures.
TIMM_CASES = {
    "vit_small_patch14_dinov2": dict(embed_dim=48, num_heads=3, depth=2),
    "vit_small_patch14_reg4_dinov2": dict(embed_dim=36, num_heads=1, depth=2),
    "vit_giant_patch14_dinov2": dict(embed_dim=48, num_heads=3, depth=1),  # SwiGLUPacked
}


@pytest.fixture(scope="module")
def timm_models(tmp_path_factory):
    import timm

    out = {}
    for name, kw in TIMM_CASES.items():
        kw = dict(kw, img_size=28, num_classes=0)
        model = timm.create_model(name, pretrained=False, dynamic_img_size=True, **kw).eval()
        randomize_(model, seed=zlib.crc32(name.encode()))
        folder = tmp_path_factory.mktemp(name)
        torch.save(model.state_dict(), folder / "m.pth")
        convert(str(folder / "m.pth"), str(folder / "m.gguf"), outtype="f32", model_name=name, model_kwargs=kw,
                verbose=False)
        out[name] = (model, pyvitcpp.Encoder(folder / "m.gguf", threads=2))
    return out


@pytest.mark.parametrize("batch,grid", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("name", list(TIMM_CASES))
def test_timm_dinov2(timm_models, real_images, name, batch, grid):
    model, enc = timm_models[name]
    px = pixels(real_images, batch, grid[0] * P, grid[1] * P, seed=batch)
    n_prefix = model.num_prefix_tokens
    with torch.no_grad():
        x = torch.from_numpy(px)
        feats = model.forward_features(x)
        pooled = model.forward_head(feats, pre_logits=True)
        inter = model.forward_intermediates(x, indices=[0], norm=False, intermediates_only=True,
                                            output_fmt="NLC") if hasattr(model, "forward_intermediates") else None
    ref = {"last_hidden_state": feats, "pooled": pooled, "embedding": pooled, "cls": feats[:, 0],
           **token_outputs(feats, n_prefix, grid[0], grid[1])}
    ours = enc.forward(px, list(ref) + ["hidden_states.1"])
    h1 = ours.pop("hidden_states.1")
    check_outputs(ours, ref, len(model.blocks), 4 * model.embed_dim)
    if inter is not None:  # timm's intermediate (patch tokens of block 0's output, no norm)
        import numpy as np

        from conftest import fp32_bound
        r = inter[0].numpy()
        np.testing.assert_allclose(h1[:, n_prefix:], r, rtol=0, atol=fp32_bound(r, 1, 4 * model.embed_dim))


@pytest.mark.parametrize("level", ["ref", "avx2", "avx512"])
def test_every_kernel_level(hf_models, real_images, level):
    from conftest import isa_or_skip

    isa_or_skip(level)
    for name in ("swiglu_h40_1head", "registers_h36"):
        model, enc0 = hf_models[name]
        enc = pyvitcpp.Encoder(enc0.path, isa=level, threads=3)
        px = pixels(real_images, 3, 42, 28, seed=12)
        ref = hf_ref(model, px, getattr(model.config, "num_register_tokens", 0))
        check_outputs(enc.forward(px, list(ref)), ref, 2, 160)


def test_refusals(tmp_path):
    from pyvitcpp.convert import ConversionError

    cfg = transformers.Dinov2Config(hidden_size=24, num_hidden_layers=1, num_attention_heads=3, image_size=28,
                                    patch_size=P, num_labels=3)
    transformers.Dinov2ForImageClassification(cfg).save_pretrained(tmp_path / "cls")
    with pytest.raises(ConversionError, match="Dinov2ForImageClassification"):
        convert(str(tmp_path / "cls"), str(tmp_path / "a.gguf"), verbose=False)
    import timm

    m = timm.create_model("vit_small_patch14_dinov2", pretrained=False, img_size=28, embed_dim=24, num_heads=3,
                          depth=1, num_classes=4)
    torch.save(m.state_dict(), tmp_path / "m.pth")
    with pytest.raises(ConversionError, match="classifier head"):
        convert(str(tmp_path / "m.pth"), str(tmp_path / "b.gguf"), model_name="vit_small_patch14_dinov2",
                model_kwargs=dict(img_size=28, embed_dim=24, num_heads=3, depth=1, num_classes=4), verbose=False)


def test_f16_weights(hf_models, real_images, tmp_path):
    for name in ("swiglu_h40_1head", "registers_h36"):
        model, enc = hf_models[name]
        out = tmp_path / f"{name}-f16.gguf"
        convert(str(os.path.dirname(enc.path)), str(out), outtype="f16", verbose=False)
        px = pixels(real_images, 3, 42, 28, seed=21)
        ref = hf_ref(model, px, getattr(model.config, "num_register_tokens", 0))
        check_outputs(pyvitcpp.Encoder(out, threads=2).forward(px, list(ref)), ref, 2, 160, min_cos=0.9999,
                      bound=False)
