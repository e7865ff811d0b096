"""CLIP vision towers (HF CLIPVisionModel, CLIPVisionModelWithProjection, vision half of
CLIPModel; open_clip ViT) vs the reference: seeded weights, every output, native and other
resolutions (one non-square), batch 1 and 3."""
from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch
import transformers

import pyvitcpp
from conftest import randomize_
from pyvitcpp.convert import convert
from test_tower_util import CASE_IDS, CASES, check_outputs, pixels, token_outputs

P = 14
VISION = dict(num_hidden_layers=2, image_size=28, patch_size=P)
HF_CASES = {
    # quick-GELU (CLIP's default), hidden 48, 3 heads
    "vision_h48_quickgelu": (transformers.CLIPVisionModel,
                             transformers.CLIPVisionConfig(hidden_size=48, intermediate_size=100,
                                                           num_attention_heads=3, **VISION)),
    # projection to 20, GELU, 1 head, hidden 36
    "withproj_h36_gelu_1head": (transformers.CLIPVisionModelWithProjection,
                                transformers.CLIPVisionConfig(hidden_size=36, intermediate_size=72,
                                                              num_attention_heads=1, hidden_act="gelu",
                                                              projection_dim=20, **VISION)),
    # the full CLIPModel (text tower dropped by the converter)
    "clipmodel_h40": (transformers.CLIPModel,
                      transformers.CLIPConfig(
                          text_config=dict(hidden_size=16, intermediate_size=24, num_hidden_layers=1,
                                           num_attention_heads=2),
                          vision_config=dict(hidden_size=40, intermediate_size=88, num_attention_heads=5, **VISION),
                          projection_dim=24)),
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
    with torch.no_grad():
        if isinstance(model, transformers.CLIPModel):
            o = model.vision_model(pixel_values=x, output_hidden_states=True, interpolate_pos_encoding=True)
            emb = model.visual_projection(o.pooler_output)
            # get_image_features is the same projection of the same pooled token
            feats = model.get_image_features(pixel_values=x, interpolate_pos_encoding=True)
            feats = feats.pooler_output if hasattr(feats, "pooler_output") else feats
            torch.testing.assert_close(feats, emb)
        else:
            o = model(pixel_values=x, output_hidden_states=True, interpolate_pos_encoding=True)
            emb = o.image_embeds if hasattr(o, "image_embeds") else o.pooler_output
    lhs = o.last_hidden_state
    gh, gw = px.shape[2] // P, px.shape[3] // P
    ref = {"last_hidden_state": lhs, "pooled": o.pooler_output if hasattr(o, "pooler_output") else None,
           "embedding": emb, "cls": lhs[:, 0], **token_outputs(lhs, 1, gh, gw)}
    if ref["pooled"] is None:  # CLIPVisionModelWithProjection output has no pooler_output
        ref.pop("pooled")
    for i, h in enumerate(o.hidden_states):
        ref[f"hidden_states.{i}"] = h
    return ref


@pytest.mark.parametrize("batch,grid", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("name", list(HF_CASES))
def test_hf_clip(hf_models, real_images, name, batch, grid):
    model, enc = hf_models[name]
    px = pixels(real_images, batch, grid[0] * P, grid[1] * P, seed=batch)
    ref = hf_ref(model, px)
    ours = enc.forward(px, list(ref))
    vc = model.config.vision_config if hasattr(model.config, "vision_config") else model.config
    check_outputs(ours, ref, vc.num_hidden_layers, vc.intermediate_size)


def test_hf_clip_normalized_embedding(hf_models, real_images):
    model, enc = hf_models["withproj_h36_gelu_1head"]
    px = pixels(real_images, 3, 28, 28, seed=4)
    with torch.no_grad():
        e = model(pixel_values=torch.from_numpy(px)).image_embeds
        e = torch.nn.functional.normalize(e, dim=-1).numpy()
    ours = enc.encode(px, normalize=True)
    np.testing.assert_allclose(ours, e, atol=2e-6)


# ---------------------------------------------------------------------------------------------
# open_clip: a tiny tower through create_model overrides; encode_image is the embedding.
OC_CASES = {
    "ViT-B-32": dict(layers=2, width=48, head_width=16, patch_size=14, image_size=28),  # 3 heads, GELU
    "ViT-B-16-quickgelu": dict(layers=1, width=40, head_width=40, patch_size=14, image_size=28, ls_init_value=0.5),
}
TEXT = dict(context_length=8, vocab_size=50, width=16, heads=2, layers=1)


@pytest.fixture(scope="module")
def oc_models(tmp_path_factory):
    import open_clip

    out = {}
    for name, vcfg in OC_CASES.items():
        kw = dict(embed_dim=24, vision_cfg=vcfg, text_cfg=TEXT)
        model = open_clip.create_model(name, pretrained=None, **kw).eval()
        randomize_(model.visual, seed=zlib.crc32(name.encode()))
        folder = tmp_path_factory.mktemp(name)
        torch.save(model.state_dict(), folder / "m.pth")
        convert(str(folder / "m.pth"), str(folder / "m.gguf"), outtype="f32", model_name=name, model_kwargs=kw,
                verbose=False)
        out[name] = (model, pyvitcpp.Encoder(folder / "m.gguf", threads=2))
    return out


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("name", list(OC_CASES))
def test_open_clip(oc_models, real_images, name, batch):
    model, enc = oc_models[name]
    px = pixels(real_images, batch, 28, 28, seed=batch)
    v = model.visual
    with torch.no_grad():
        x = torch.from_numpy(px)
        emb = model.encode_image(x)
        tokens = v.transformer(v._embeds(x))
        pooled, _ = v._pool(tokens)
        lhs = v.ln_post(tokens)
    ref = {"embedding": emb, "pooled": pooled, "last_hidden_state": lhs, "cls": lhs[:, 0],
           **token_outputs(lhs, 1, 2, 2)}
    ours = enc.forward(px, list(ref))
    check_outputs(ours, ref, len(v.transformer.resblocks), v.transformer.resblocks[0].mlp.c_fc.out_features)
