"""SigLIP vision towers (HF SiglipVisionModel, vision half of SiglipModel; the fixed-resolution
SigLIP 2 checkpoints share the class) vs the reference: no class token, tanh-GELU, the
attention-pooling (MAP) head; seeded weights, every output, native and other resolutions (one
non-square), batch 1 and 3."""
from __future__ import annotations

import zlib

import pytest
import torch
import transformers

import pyvitcpp
from conftest import randomize_
from pyvitcpp.convert import ConversionError, convert
from test_tower_util import CASE_IDS, CASES, check_outputs, pixels, token_outputs

P = 14
VISION = dict(num_hidden_layers=2, image_size=28, patch_size=P)
HF_CASES = {
    "vision_h48": (transformers.SiglipVisionModel,
                   transformers.SiglipVisionConfig(hidden_size=48, intermediate_size=100, num_attention_heads=3,
                                                   **VISION)),
    "vision_h36_1head": (transformers.SiglipVisionModel,
                         transformers.SiglipVisionConfig(hidden_size=36, intermediate_size=60, num_attention_heads=1,
                                                         **VISION)),
    "siglipmodel_h40": (transformers.SiglipModel,
                        transformers.SiglipConfig(
                            text_config=dict(hidden_size=16, intermediate_size=24, num_hidden_layers=1,
                                             num_attention_heads=2),
                            vision_config=dict(hidden_size=40, intermediate_size=72, num_attention_heads=5,
                                               **VISION))),
    # no MAP head: pooled is the mean of the tokens
    "nohead_h24": (transformers.SiglipVisionModel,
                   transformers.SiglipVisionConfig(hidden_size=24, intermediate_size=40, num_attention_heads=3,
                                                   vision_use_head=False, **VISION)),
}


@pytest.fixture(scope="module")
def hf_models(tmp_path_factory):
    out = {}
    for name, (Model, cfg) in HF_CASES.items():
        model = Model(cfg).eval()
        randomize_(model, seed=zlib.crc32(name.encode()))
        folder = tmp_path_factory.mktemp(name)
        model.save_pretrained(folder)
        convert(str(folder), str(folder / "m.gguf"), outtype="f32", verbose=False)
        out[name] = (model, pyvitcpp.Encoder(folder / "m.gguf", threads=2))
    return out


def hf_ref(model, px):
    x = torch.from_numpy(px)
    vm = getattr(model, "vision_model", model)  # SiglipModel: its vision tower
    with torch.no_grad():
        o = vm(pixel_values=x, output_hidden_states=True, interpolate_pos_encoding=True)
    lhs = o.last_hidden_state
    gh, gw = px.shape[2] // P, px.shape[3] // P
    pooled = o.pooler_output if o.pooler_output is not None else lhs.mean(1)
    ref = {"last_hidden_state": lhs, "pooled": pooled, "embedding": pooled, **token_outputs(lhs, 0, gh, gw)}
    for i, h in enumerate(o.hidden_states):
        ref[f"hidden_states.{i}"] = h
    return ref


@pytest.mark.parametrize("batch,grid", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("name", list(HF_CASES))
def test_hf_siglip(hf_models, real_images, name, batch, grid):
    model, enc = hf_models[name]
    px = pixels(real_images, batch, grid[0] * P, grid[1] * P, seed=batch)
    ref = hf_ref(model, px)
    ours = enc.forward(px, list(ref))
    vc = model.config.vision_config if hasattr(model.config, "vision_config") else model.config
    check_outputs(ours, ref, vc.num_hidden_layers + 1, vc.intermediate_size)


def test_naflex_refused(tmp_path):
    import json

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "siglip2", "architectures": ["Siglip2Model"]}))
    with pytest.raises(ConversionError, match="NaFlex"):
        convert(str(tmp_path), str(tmp_path / "m.gguf"), verbose=False)


@pytest.mark.parametrize("level", ["ref", "avx2", "avx512"])
def test_every_kernel_level(hf_models, real_images, level):
    """The MAP head's one-query attention (batch stride 0) at every kernel level, non-square."""
    from conftest import isa_or_skip

    isa_or_skip(level)
    model, enc0 = hf_models["vision_h48"]
    enc = pyvitcpp.Encoder(enc0.path, isa=level, threads=3)
    px = pixels(real_images, 3, 28, 70, seed=11)
    ref = hf_ref(model, px)
    check_outputs(enc.forward(px, list(ref)), ref, 3, 100)


def test_f16_weights(hf_models, real_images, tmp_path):
    import os

    model, enc = hf_models["vision_h48"]
    out = tmp_path / "f16.gguf"
    convert(str(os.path.dirname(enc.path)), str(out), outtype="f16", verbose=False)
    px = pixels(real_images, 3, 42, 28, seed=23)
    ref = hf_ref(model, px)
    check_outputs(pyvitcpp.Encoder(out, threads=2).forward(px, list(ref)), ref, 3, 100, min_cos=0.9999, bound=False)


# ---------------------------------------------------------------------------------------------
# timm SigLIP towers (global_pool='map', AttentionPoolLatent), reference with dynamic_img_size.
TIMM_CASES = {
    "vit_base_patch16_siglip_224": dict(embed_dim=48, num_heads=3, depth=2, patch_size=14),
    "vit_so400m_patch14_siglip_224": dict(embed_dim=36, num_heads=1, depth=1, mlp_ratio=2.5),
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
def test_timm_siglip(timm_models, real_images, name, batch, grid):
    model, enc = timm_models[name]
    assert enc.config["architecture"] == "siglip" and enc.config["pooling"] == "map"
    px = pixels(real_images, batch, grid[0] * P, grid[1] * P, seed=batch)
    with torch.no_grad():
        feats = model.forward_features(torch.from_numpy(px))
        pooled = model.forward_head(feats, pre_logits=True)
    ref = {"last_hidden_state": feats, "pooled": pooled, "embedding": pooled, **token_outputs(feats, 0, *grid)}
    check_outputs(enc.forward(px, list(ref)), ref, len(model.blocks) + 1, model.blocks[0].mlp.fc1.out_features)
