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


# ---------------------------------------------------------------------------------------------
# llama.cpp mmproj files (general.architecture = clip, clip.vision.* keys, v.* / mm.* tensors),
# written with gguf-py in that layout from a reference HF model.

from gguf import GGUFReader  # noqa: E402


def write_mmproj(path, model, *, f16=False, legacy_ffn_names=False, siglip=False):
    import gguf

    cfg = model.config
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    sd = {k[len("vision_model."):] if k.startswith("vision_model.") else k: v for k, v in sd.items()}
    w = gguf.GGUFWriter(str(path), "clip")
    w.add_bool("clip.has_vision_encoder", True)
    w.add_bool("clip.has_text_encoder", False)
    assert cfg.hidden_act in ("quick_gelu", "gelu_pytorch_tanh")  # what use_gelu can say
    w.add_bool("clip.use_gelu", cfg.hidden_act != "quick_gelu")
    w.add_string("clip.projector_type", "mlp")
    w.add_uint32("clip.vision.image_size", cfg.image_size)
    w.add_uint32("clip.vision.patch_size", cfg.patch_size)
    w.add_uint32("clip.vision.embedding_length", cfg.hidden_size)
    w.add_uint32("clip.vision.feed_forward_length", cfg.intermediate_size)
    w.add_uint32("clip.vision.projection_dim", 32)
    w.add_uint32("clip.vision.block_count", cfg.num_hidden_layers)
    w.add_uint32("clip.vision.attention.head_count", cfg.num_attention_heads)
    w.add_float32("clip.vision.attention.layer_norm_epsilon", cfg.layer_norm_eps)
    w.add_array("clip.vision.image_mean", [0.48145466, 0.4578275, 0.40821073])
    w.add_array("clip.vision.image_std", [0.26862954, 0.26130258, 0.27577711])

    def t(name, a):
        a = np.ascontiguousarray(a, np.float32)
        w.add_tensor(name, a.astype(np.float16) if f16 and a.ndim >= 2 else a)

    names = {"layer_norm1": "ln1", "layer_norm2": "ln2", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
             "self_attn.v_proj": "attn_v", "self_attn.out_proj": "attn_out",
             "mlp.fc1": "ffn_down" if legacy_ffn_names else "ffn_up",
             "mlp.fc2": "ffn_up" if legacy_ffn_names else "ffn_down"}
    if not siglip:
        t("v.class_embd", sd["embeddings.class_embedding"])
        t("v.pre_ln.weight", sd["pre_layrnorm.weight"])
        t("v.pre_ln.bias", sd["pre_layrnorm.bias"])
    t("v.patch_embd.weight", sd["embeddings.patch_embedding.weight"])
    if "embeddings.patch_embedding.bias" in sd:
        t("v.patch_embd.bias", sd["embeddings.patch_embedding.bias"])
    t("v.position_embd.weight", sd["embeddings.position_embedding.weight"])
    for i in range(cfg.num_hidden_layers):
        for hf, ours in names.items():
            for kind in ("weight", "bias"):
                t(f"v.blk.{i}.{ours}.{kind}", sd[f"encoder.layers.{i}.{hf}.{kind}"])
    t("v.post_ln.weight", sd["post_layernorm.weight"])
    t("v.post_ln.bias", sd["post_layernorm.bias"])
    rng = np.random.default_rng(0)  # a LLaVA-style projector (output mm_projection)
    t("mm.0.weight", rng.standard_normal((32, cfg.hidden_size)) / np.sqrt(cfg.hidden_size))
    t("mm.0.bias", 0.1 * rng.standard_normal(32))
    t("mm.2.weight", rng.standard_normal((20, 32)) / np.sqrt(32))
    t("mm.2.bias", 0.1 * rng.standard_normal(20))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.mark.parametrize("variant", ["clip_f32", "clip_legacy_ffn_names", "clip_f16", "siglip_f32"])
def test_llama_cpp_mmproj(real_images, tmp_path, variant):
    siglip = variant.startswith("siglip")
    if siglip:
        cfg = transformers.SiglipVisionConfig(hidden_size=48, intermediate_size=100, num_attention_heads=3,
                                              vision_use_head=False, **VISION)
        model = transformers.SiglipVisionModel(cfg).eval()
    else:
        cfg = transformers.CLIPVisionConfig(hidden_size=48, intermediate_size=100, num_attention_heads=3, **VISION)
        model = transformers.CLIPVisionModel(cfg).eval()
    randomize_(model, seed=zlib.crc32(variant.encode()))
    path = tmp_path / "mmproj.gguf"
    write_mmproj(path, model, f16=variant.endswith("f16"), legacy_ffn_names="legacy" in variant, siglip=siglip)
    enc = pyvitcpp.Encoder(path, threads=2)
    assert enc.config["architecture"] == "clip"
    px = pixels(real_images, 3, 28, 28, seed=1)
    vm = getattr(model, "vision_model", model)
    with torch.no_grad():
        o = vm(pixel_values=torch.from_numpy(px), output_hidden_states=True)
    # llama.cpp applies post_ln to every token; HF CLIP only to the pooled one
    lhs = o.last_hidden_state if siglip else vm.post_layernorm(o.last_hidden_state)
    pooled = lhs.mean(1) if siglip else o.pooler_output
    ref = {"last_hidden_state": lhs, "pooled": pooled, "embedding": pooled, **token_outputs(lhs, 0 if siglip else 1, 2, 2)}
    for i, h in enumerate(o.hidden_states):
        ref[f"hidden_states.{i}"] = h
    ours = enc.forward(px, list(ref))
    f16 = variant.endswith("f16")
    check_outputs(ours, ref, cfg.num_hidden_layers, cfg.intermediate_size, min_cos=0.9999 if f16 else 0.99999,
                  bound=not f16)
    # the LLaVA projector: mm.2(gelu_tanh(mm.0(patch tokens)))
    r = GGUFReader(path)
    mm = {t.name: np.asarray(t.data, np.float32).reshape([int(d) for d in reversed(t.shape)]) for t in r.tensors
          if t.name.startswith("mm.")}
    pt = ref["patch_tokens"].detach().numpy()
    h = torch.nn.functional.gelu(torch.from_numpy(pt @ mm["mm.0.weight"].T + mm["mm.0.bias"]), approximate="tanh")
    proj = h.numpy() @ mm["mm.2.weight"].T + mm["mm.2.bias"]
    got = enc.forward(px, "mm_projection")
    assert got.shape == proj.shape
    check_outputs({"mm_projection": got}, {"mm_projection": proj}, cfg.num_hidden_layers + 1,
                  max(32, cfg.intermediate_size), min_cos=0.9999 if f16 else 0.99999, bound=not f16)
    # the processor the file implies (CLIP: shortest edge bicubic + crop, its mean/std)
    assert enc.preprocessor.config()["resize_mode"] == "shortest_edge_crop"
    np.testing.assert_allclose(enc.preprocessor.config()["mean"], [0.48145466, 0.4578275, 0.40821073], rtol=1e-6)
    emb = enc.encode([real_images[0]])
    assert emb.shape == (1, 48) and np.isfinite(emb).all()


def test_mmproj_without_vision_encoder(tmp_path):
    import gguf

    w = gguf.GGUFWriter(str(tmp_path / "a.gguf"), "clip")
    w.add_bool("clip.has_vision_encoder", False)
    w.add_bool("clip.has_audio_encoder", True)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(ValueError, match="no vision encoder"):
        pyvitcpp.Encoder(tmp_path / "a.gguf")


@pytest.mark.parametrize("level", ["ref", "avx2", "avx512"])
def test_every_kernel_level(hf_models, real_images, level):
    from conftest import isa_or_skip

    isa_or_skip(level)
    model, enc0 = hf_models["withproj_h36_gelu_1head"]
    enc = pyvitcpp.Encoder(enc0.path, isa=level, threads=3)
    px = pixels(real_images, 3, 56, 42, seed=13)
    ref = hf_ref(model, px)
    check_outputs(enc.forward(px, list(ref)), ref, 2, 72)


def test_f16_weights(hf_models, real_images, tmp_path):
    import os

    model, enc = hf_models["clipmodel_h40"]
    out = tmp_path / "f16.gguf"
    convert(str(os.path.dirname(enc.path)), str(out), outtype="f16", verbose=False)
    px = pixels(real_images, 3, 28, 42, seed=22)
    ref = hf_ref(model, px)
    check_outputs(pyvitcpp.Encoder(out, threads=2).forward(px, list(ref)), ref, 2, 88, min_cos=0.9999, bound=False)


@pytest.mark.parametrize("size", [(42, 42), (28, 56)])
def test_open_clip_other_resolution(oc_models, real_images, size):
    """open_clip resizes a position table with resize_pos_embed when it loads a checkpoint into a
    model of another image size; the engine's run at that size matches that model."""
    import open_clip
    from open_clip.model import resize_pos_embed

    name = "ViT-B-32"
    model, enc = oc_models[name]
    kw = dict(embed_dim=24, vision_cfg=dict(OC_CASES[name], image_size=size), text_cfg=TEXT)
    big = open_clip.create_model(name, pretrained=None, **kw).eval()
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    resize_pos_embed(sd, big)
    big.load_state_dict(sd)
    px = pixels(real_images, 3, *size, seed=6)
    with torch.no_grad():
        emb = big.encode_image(torch.from_numpy(px))
    check_outputs({"embedding": enc.forward(px, "embedding")}, {"embedding": emb}, 2, 192)
