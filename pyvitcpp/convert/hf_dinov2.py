"""Hugging Face ``Dinov2Model`` / ``Dinov2WithRegistersModel`` folders -> ConvertedModel
(architecture ``dinov2``).

=============================================  ==============================================
checkpoint                                     GGUF
=============================================  ==============================================
embeddings.cls_token [1,1,D]                   v.class_embd [D]
embeddings.register_tokens [1,R,D]             v.reg_embd [R,D] (no position: after the class token)
embeddings.position_embeddings [1,1+N,D]       v.position_embd.weight [1+N,D]
embeddings.patch_embeddings.projection         v.patch_embd
encoder.layer.i.attention.attention.q/k/v      v.blk.i.attn_q / attn_k / attn_v
encoder.layer.i.attention.output.dense         v.blk.i.attn_out
encoder.layer.i.norm1 / norm2                  v.blk.i.ln1 / ln2
encoder.layer.i.layer_scale1/2.lambda1         v.blk.i.ls1 / ls2
encoder.layer.i.mlp.fc1 / fc2                  v.blk.i.ffn_up / ffn_down
encoder.layer.i.mlp.weights_in [2F,D]          v.blk.i.ffn_gate (first F rows) + ffn_up (SwiGLU)
encoder.layer.i.mlp.weights_out                v.blk.i.ffn_down
layernorm                                      v.post_ln
=============================================  ==============================================

HF resizes the position table with torch bicubic (``Dinov2Model``) or with antialiasing
(``Dinov2WithRegistersModel``); the pooled output is the normalised class token.
"""
from __future__ import annotations

import os
from typing import Optional

from ._model import ConversionError, ConvertedModel
from ._state_dict import find_hf_weights, load_files
from ._tower_common import (HF_ACT, IMAGENET_MEAN, IMAGENET_STD, check_tower_tensors, compile_rules,
                            folder_name, hf_config, hf_model_type, hf_processor_spec, map_state_dict,
                            square, tower_hparams)

MODEL_TYPES = ("dinov2", "dinov2_with_registers")

_L = r"(?:encoder\.layer|encoder\.layers|layers)\.(\d+)\."
RULES = compile_rules([
    (r"embeddings\.cls_token", "v.class_embd"),
    (r"embeddings\.register_tokens", "v.reg_embd"),
    (r"embeddings\.position_embeddings", "v.position_embd.weight"),
    (r"embeddings\.patch_embeddings\.projection\.(weight|bias)", "v.patch_embd.{0}"),
    (_L + r"attention\.attention\.query\.(weight|bias)", "v.blk.{0}.attn_q.{1}"),
    (_L + r"attention\.attention\.key\.(weight|bias)", "v.blk.{0}.attn_k.{1}"),
    (_L + r"attention\.attention\.value\.(weight|bias)", "v.blk.{0}.attn_v.{1}"),
    (_L + r"attention\.output\.dense\.(weight|bias)", "v.blk.{0}.attn_out.{1}"),
    (_L + r"attention\.q_proj\.(weight|bias)", "v.blk.{0}.attn_q.{1}"),
    (_L + r"attention\.k_proj\.(weight|bias)", "v.blk.{0}.attn_k.{1}"),
    (_L + r"attention\.v_proj\.(weight|bias)", "v.blk.{0}.attn_v.{1}"),
    (_L + r"attention\.o_proj\.(weight|bias)", "v.blk.{0}.attn_out.{1}"),
    (_L + r"norm1\.(weight|bias)", "v.blk.{0}.ln1.{1}"),
    (_L + r"norm2\.(weight|bias)", "v.blk.{0}.ln2.{1}"),
    (_L + r"layer_scale1\.lambda1", "v.blk.{0}.ls1"),
    (_L + r"layer_scale2\.lambda1", "v.blk.{0}.ls2"),
    (_L + r"mlp\.fc1\.(weight|bias)", "v.blk.{0}.ffn_up.{1}"),
    (_L + r"mlp\.fc2\.(weight|bias)", "v.blk.{0}.ffn_down.{1}"),
    (_L + r"mlp\.weights_in\.(weight|bias)", "split:v.blk.{0}.ffn_gate.{1},v.blk.{0}.ffn_up.{1}"),
    (_L + r"mlp\.weights_out\.(weight|bias)", "v.blk.{0}.ffn_down.{1}"),
    (_L + r"mlp\.gate_proj\.(weight|bias)", "v.blk.{0}.ffn_gate.{1}"),
    (_L + r"mlp\.up_proj\.(weight|bias)", "v.blk.{0}.ffn_up.{1}"),
    (_L + r"mlp\.down_proj\.(weight|bias)", "v.blk.{0}.ffn_down.{1}"),
    (r"layernorm\.(weight|bias)", "v.post_ln.{0}"),
])
IGNORED = [r"embeddings\.mask_token", r"classifier\..*"]

# BitImageProcessor as facebook/dinov2-* ship it.
PROCESSOR_DEFAULTS = dict(do_resize=True, size={"shortest_edge": 256}, resample=3, do_center_crop=True,
                          crop_size={"height": 224, "width": 224}, do_rescale=True, rescale_factor=1 / 255,
                          do_normalize=True, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD)


def is_hf_dinov2(src: str) -> bool:
    return hf_model_type(src) in MODEL_TYPES


def load_hf_dinov2(src: str, *, labels=None, name: Optional[str] = None) -> ConvertedModel:
    cfg = hf_config(src)
    mt = cfg.get("model_type")
    if mt not in MODEL_TYPES:
        raise ConversionError(f"{src}: model_type {mt!r} is not DINOv2 ({', '.join(MODEL_TYPES)})")
    archs = cfg.get("architectures") or []
    if archs and not archs[0].endswith("Model"):
        raise ConversionError(f"{src}: {archs[0]} is not supported (only the backbone, "
                              "Dinov2Model / Dinov2WithRegistersModel: the classifier's head is not converted)")
    weights = find_hf_weights(src)
    if weights is None:
        raise FileNotFoundError(f"no weights in {src}: expected model.safetensors or pytorch_model.bin")
    act = cfg.get("hidden_act", "gelu")
    if act not in HF_ACT:
        raise ConversionError(f"hidden_act {act!r} is not supported (supported: {', '.join(HF_ACT)})")
    if cfg.get("qkv_bias") is False:
        pass  # biases absent: the engine reads that as no bias
    D = int(cfg.get("hidden_size", 768))
    L = int(cfg.get("num_hidden_layers", 12))
    tensors = map_state_dict(load_files(weights), RULES, IGNORED, what=src)
    F = tensors["v.blk.0.ffn_down.weight"].shape[1] if "v.blk.0.ffn_down.weight" in tensors else 4 * D
    swiglu = "v.blk.0.ffn_gate.weight" in tensors
    hp = tower_hparams(
        "dinov2", block_count=L, embedding_length=D, feed_forward_length=int(F),
        head_count=int(cfg.get("num_attention_heads", 12)), layer_norm_epsilon=float(cfg.get("layer_norm_eps", 1e-6)),
        patch_size=square(cfg.get("patch_size", 14), "patch_size"),
        image_size=square(cfg.get("image_size", 518), "image_size"), hidden_act=HF_ACT[act], pooling="cls",
        pos_resize="bicubic_antialias" if mt == "dinov2_with_registers" else "bicubic",
        num_channels=int(cfg.get("num_channels", 3)))
    check_tower_tensors(tensors, hp, "dinov2")
    pre = hf_processor_spec(src, PROCESSOR_DEFAULTS, "BitImageProcessor (DINOv2)")
    source_class = archs[0] if archs else ("Dinov2WithRegistersModel" if mt == "dinov2_with_registers"
                                           else "Dinov2Model")
    notes = ["SwiGLU MLP"] if swiglu else []
    return ConvertedModel(arch="dinov2", name=name or folder_name(src), source="hf", source_class=source_class,
                          hparams=hp, preprocess=pre, tensors=tensors, notes=notes)
