"""Hugging Face CLIP folders (``CLIPVisionModel``, ``CLIPVisionModelWithProjection``, the vision
half of ``CLIPModel``) -> ConvertedModel (architecture ``clip``, llama.cpp's mmproj key and
tensor names, so the same loader reads both).

====================================================  ======================================
checkpoint (``vision_model.`` prefix dropped)          GGUF
====================================================  ======================================
embeddings.class_embedding [D]                        v.class_embd
embeddings.patch_embedding (no bias)                  v.patch_embd.weight
embeddings.position_embedding.weight [1+N,D]          v.position_embd.weight
pre_layrnorm                                          v.pre_ln
encoder.layers.i.self_attn.q/k/v_proj, out_proj       v.blk.i.attn_q/k/v, attn_out
encoder.layers.i.layer_norm1 / layer_norm2            v.blk.i.ln1 / ln2
encoder.layers.i.mlp.fc1 / fc2                        v.blk.i.ffn_up / ffn_down
post_layernorm                                        v.post_ln (applied to the pooled token only)
visual_projection.weight [E,D]                        v.proj.weight -> `embedding` (image_embeds)
====================================================  ======================================

Outputs as HF defines them: ``last_hidden_state`` is the encoder output before post_layernorm,
``pooled`` = post_layernorm(token 0) (pooler_output), ``embedding`` = the projection of it
(``get_image_features`` / image_embeds) or ``pooled`` when the checkpoint has no projection.
"""
from __future__ import annotations

from typing import Optional

from ._model import ConversionError, ConvertedModel
from ._state_dict import find_hf_weights, load_files
from ._tower_common import (HF_ACT, HF_CLIP_STYLE_RULES, HF_VISION, OPENAI_MEAN, OPENAI_STD, check_tower_tensors,
                            compile_rules, folder_name, hf_config, hf_model_type, hf_processor_spec, map_state_dict, square, tower_hparams)

MODEL_TYPES = ("clip", "clip_vision_model")

_V = HF_VISION
RULES = compile_rules(HF_CLIP_STYLE_RULES + [
    (_V + r"embeddings\.class_embedding", "v.class_embd"),
    (_V + r"pre_layrnorm\.(weight|bias)", "v.pre_ln.{0}"),
    (r"visual_projection\.weight", "v.proj.weight"),
])
IGNORED = [r"text_model\..*", r"text_projection\..*", r"logit_scale", r"(?:vision_model\.)?embeddings\.position_ids"]

# CLIPImageProcessor defaults (openai/clip-vit-*).
PROCESSOR_DEFAULTS = dict(do_resize=True, size={"shortest_edge": 224}, resample=3, do_center_crop=True,
                          crop_size={"height": 224, "width": 224}, do_rescale=True, rescale_factor=1 / 255,
                          do_normalize=True, image_mean=OPENAI_MEAN, image_std=OPENAI_STD)


def is_hf_clip(src: str) -> bool:
    return hf_model_type(src) in MODEL_TYPES


def load_hf_clip(src: str, *, labels=None, name: Optional[str] = None) -> ConvertedModel:
    cfg = hf_config(src)
    mt = cfg.get("model_type")
    if mt not in MODEL_TYPES:
        raise ConversionError(f"{src}: model_type {mt!r} is not CLIP ({', '.join(MODEL_TYPES)})")
    archs = cfg.get("architectures") or []
    ok = ("CLIPModel", "CLIPVisionModel", "CLIPVisionModelWithProjection")
    if archs and archs[0] not in ok:
        raise ConversionError(f"{src}: {archs[0]} is not supported (supported: {', '.join(ok)})")
    vc = (cfg.get("vision_config") or {}) if mt == "clip" else cfg
    weights = find_hf_weights(src)
    if weights is None:
        raise FileNotFoundError(f"no weights in {src}: expected model.safetensors or pytorch_model.bin")
    act = vc.get("hidden_act", "quick_gelu")
    if act not in HF_ACT:
        raise ConversionError(f"hidden_act {act!r} is not supported (supported: {', '.join(HF_ACT)})")
    D = int(vc.get("hidden_size", 768))
    tensors = map_state_dict(load_files(weights), RULES, IGNORED, what=src)
    E = int(tensors["v.proj.weight"].shape[0]) if "v.proj.weight" in tensors else 0
    hp = tower_hparams(
        "clip", block_count=int(vc.get("num_hidden_layers", 12)), embedding_length=D,
        feed_forward_length=int(vc.get("intermediate_size", 3072)),
        head_count=int(vc.get("num_attention_heads", 12)), layer_norm_epsilon=float(vc.get("layer_norm_eps", 1e-5)),
        patch_size=square(vc.get("patch_size", 32), "patch_size"),
        image_size=square(vc.get("image_size", 224), "image_size"), hidden_act=HF_ACT[act], pooling="cls",
        pos_resize="bicubic", post_norm="pooled", num_channels=int(vc.get("num_channels", 3)), projection_dim=E)
    check_tower_tensors(tensors, hp, "clip")
    pre = hf_processor_spec(src, PROCESSOR_DEFAULTS, "CLIPImageProcessor")
    return ConvertedModel(arch="clip", name=name or folder_name(src), source="hf",
                          source_class=archs[0] if archs else "CLIPVisionModel", hparams=hp, preprocess=pre,
                          tensors=tensors)
