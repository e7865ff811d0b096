"""Hugging Face SigLIP / SigLIP 2 fixed-resolution folders (``SiglipVisionModel``, the vision half
of ``SiglipModel``) -> ConvertedModel (architecture ``siglip``).

==================================================  =========================================
checkpoint (``vision_model.`` prefix dropped)        GGUF
==================================================  =========================================
embeddings.patch_embedding                          v.patch_embd
embeddings.position_embedding.weight [N,D]          v.position_embd.weight (no class token)
encoder.layers.i.*                                  v.blk.i.* (as CLIP)
post_layernorm                                      v.post_ln (all tokens)
head.probe [1,1,D]                                  v.map.probe [D]
head.attention.in_proj_weight/bias [3D,D]           v.map.attn_q / attn_k / attn_v
head.attention.out_proj                             v.map.attn_out
head.layernorm, head.mlp.fc1/fc2                    v.map.ln, v.map.ffn_up / ffn_down
==================================================  =========================================

``pooled`` and ``embedding`` are the attention-pooling head's output (pooler_output); without a
head (vision_use_head = false) the mean of the tokens.  NaFlex SigLIP 2 (model_type siglip2,
variable patch grids) is refused.
"""
from __future__ import annotations

from typing import Optional

from ._model import ConversionError, ConvertedModel
from ._state_dict import find_hf_weights, load_files
from ._tower_common import (HF_ACT, HF_CLIP_STYLE_RULES, HF_VISION, check_tower_tensors, compile_rules, folder_name,
                            hf_config, hf_model_type, hf_processor_spec, map_state_dict, square, tower_hparams)

MODEL_TYPES = ("siglip", "siglip_vision_model")

_V = HF_VISION
RULES = compile_rules(HF_CLIP_STYLE_RULES + [
    (_V + r"head\.probe", "v.map.probe"),
    (_V + r"head\.attention\.in_proj_(weight|bias)", "split:v.map.attn_q.{0},v.map.attn_k.{0},v.map.attn_v.{0}"),
    (_V + r"head\.attention\.out_proj\.(weight|bias)", "v.map.attn_out.{0}"),
    (_V + r"head\.layernorm\.(weight|bias)", "v.map.ln.{0}"),
    (_V + r"head\.mlp\.fc1\.(weight|bias)", "v.map.ffn_up.{0}"),
    (_V + r"head\.mlp\.fc2\.(weight|bias)", "v.map.ffn_down.{0}"),
])
IGNORED = [r"text_model\..*", r"logit_scale", r"logit_bias", r"(?:vision_model\.)?embeddings\.position_ids"]

# SiglipImageProcessor defaults (google/siglip-*): squash to 224 bicubic, mean/std 0.5.
PROCESSOR_DEFAULTS = dict(do_resize=True, size={"height": 224, "width": 224}, resample=3, do_center_crop=False,
                          do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
                          image_mean=(0.5, 0.5, 0.5), image_std=(0.5, 0.5, 0.5))


def is_hf_siglip(src: str) -> bool:
    return hf_model_type(src) in MODEL_TYPES + ("siglip2", "siglip2_vision_model")


def load_hf_siglip(src: str, *, labels=None, name: Optional[str] = None) -> ConvertedModel:
    cfg = hf_config(src)
    mt = cfg.get("model_type")
    if mt in ("siglip2", "siglip2_vision_model"):
        raise ConversionError(f"{src}: model_type {mt!r} is NaFlex SigLIP 2 (variable-size patch grids with "
                              "a resized 2-D position table per image): not supported; the fixed-resolution "
                              "SigLIP 2 checkpoints (model_type 'siglip') are")
    if mt not in MODEL_TYPES:
        raise ConversionError(f"{src}: model_type {mt!r} is not SigLIP ({', '.join(MODEL_TYPES)})")
    archs = cfg.get("architectures") or []
    ok = ("SiglipModel", "SiglipVisionModel")
    if archs and archs[0] not in ok:
        raise ConversionError(f"{src}: {archs[0]} is not supported (supported: {', '.join(ok)})")
    vc = (cfg.get("vision_config") or {}) if mt == "siglip" else cfg
    weights = find_hf_weights(src)
    if weights is None:
        raise FileNotFoundError(f"no weights in {src}: expected model.safetensors or pytorch_model.bin")
    act = vc.get("hidden_act", "gelu_pytorch_tanh")
    if act not in HF_ACT:
        raise ConversionError(f"hidden_act {act!r} is not supported (supported: {', '.join(HF_ACT)})")
    tensors = map_state_dict(load_files(weights), RULES, IGNORED, what=src)
    hp = tower_hparams(
        "siglip", block_count=int(vc.get("num_hidden_layers", 12)), embedding_length=int(vc.get("hidden_size", 768)),
        feed_forward_length=int(vc.get("intermediate_size", 3072)),
        head_count=int(vc.get("num_attention_heads", 12)), layer_norm_epsilon=float(vc.get("layer_norm_eps", 1e-6)),
        patch_size=square(vc.get("patch_size", 16), "patch_size"),
        image_size=square(vc.get("image_size", 224), "image_size"), hidden_act=HF_ACT[act],
        pooling="map" if "v.map.probe" in tensors else "avg", pos_resize="bicubic",
        num_channels=int(vc.get("num_channels", 3)))
    check_tower_tensors(tensors, hp, "siglip")
    pre = hf_processor_spec(src, PROCESSOR_DEFAULTS, "SiglipImageProcessor")
    return ConvertedModel(arch="siglip", name=name or folder_name(src), source="hf",
                          source_class=archs[0] if archs else "SiglipVisionModel", hparams=hp, preprocess=pre,
                          tensors=tensors)
