"""timm DINOv2 models (``vit_{small,base,large,giant}_patch14[_reg4]_dinov2``, architecture
``dinov2``) and SigLIP image towers (``vit_*_siglip_*``, global_pool='map', architecture ``siglip``)
-> ConvertedModel: a state dict (``.pth`` / ``.safetensors``) plus the timm model name.

timm builds the model on the meta device to read its structure; the state dict must match it.
=====================================  =========================================================
timm                                   GGUF
=====================================  =========================================================
cls_token / reg_token                  v.class_embd / v.reg_embd
pos_embed [1,P,D]                      v.position_embd.weight (no_embed_class: patches only)
patch_embed.proj                       v.patch_embd
blocks.i.attn.qkv [3D,D]               v.blk.i.attn_q / attn_k / attn_v
blocks.i.attn.proj                     v.blk.i.attn_out
blocks.i.norm1/norm2, ls1/ls2.gamma    v.blk.i.ln1/ln2, ls1/ls2
blocks.i.mlp.fc1 / fc2                 v.blk.i.ffn_up / ffn_down (Mlp)
blocks.i.mlp.fc1 [2F,D] (SwiGLUPacked) v.blk.i.ffn_gate (first F rows) + ffn_up
norm                                   v.post_ln
attn_pool.latent [1,1,D]               v.map.probe (SigLIP attention pooling)
attn_pool.q / kv [2D,D] / proj         v.map.attn_q / attn_k + attn_v / attn_out
attn_pool.norm, attn_pool.mlp.fc1/fc2  v.map.ln, v.map.ffn_up / ffn_down
=====================================  =========================================================

The position table is resized as timm's ``dynamic_img_size=True`` does (resample_abs_pos_embed:
bicubic with antialiasing).
"""
from __future__ import annotations

import os
from typing import Optional

from ._model import ConversionError, ConvertedModel
from ._state_dict import SAFETENSORS_EXT, TORCH_EXT, load_state_dict
from ._tower_common import check_tower_tensors, compile_rules, map_state_dict, tower_hparams

_B = r"blocks\.(\d+)\."
_COMMON = [
    (r"cls_token", "v.class_embd"),
    (r"reg_token", "v.reg_embd"),
    (r"pos_embed", "v.position_embd.weight"),
    (r"patch_embed\.proj\.(weight|bias)", "v.patch_embd.{0}"),
    (_B + r"norm1\.(weight|bias)", "v.blk.{0}.ln1.{1}"),
    (_B + r"norm2\.(weight|bias)", "v.blk.{0}.ln2.{1}"),
    (_B + r"attn\.qkv\.(weight|bias)", "split:v.blk.{0}.attn_q.{1},v.blk.{0}.attn_k.{1},v.blk.{0}.attn_v.{1}"),
    (_B + r"attn\.proj\.(weight|bias)", "v.blk.{0}.attn_out.{1}"),
    (_B + r"ls1\.gamma", "v.blk.{0}.ls1"),
    (_B + r"ls2\.gamma", "v.blk.{0}.ls2"),
    (_B + r"mlp\.fc2\.(weight|bias)", "v.blk.{0}.ffn_down.{1}"),
    (r"norm\.(weight|bias)", "v.post_ln.{0}"),
    (r"attn_pool\.latent", "v.map.probe"),
    (r"attn_pool\.q\.(weight|bias)", "v.map.attn_q.{0}"),
    (r"attn_pool\.kv\.(weight|bias)", "split:v.map.attn_k.{0},v.map.attn_v.{0}"),
    (r"attn_pool\.proj\.(weight|bias)", "v.map.attn_out.{0}"),
    (r"attn_pool\.norm\.(weight|bias)", "v.map.ln.{0}"),
    (r"attn_pool\.mlp\.fc1\.(weight|bias)", "v.map.ffn_up.{0}"),
    (r"attn_pool\.mlp\.fc2\.(weight|bias)", "v.map.ffn_down.{0}"),
]
RULES_MLP = compile_rules(_COMMON + [(_B + r"mlp\.fc1\.(weight|bias)", "v.blk.{0}.ffn_up.{1}")])
RULES_SWIGLU = compile_rules(_COMMON + [(_B + r"mlp\.fc1\.(weight|bias)",
                                         "split:v.blk.{0}.ffn_gate.{1},v.blk.{0}.ffn_up.{1}")])


def is_timm_tower(src: str, model_name: Optional[str]) -> bool:
    return (bool(model_name) and ("dinov2" in model_name or "siglip" in model_name) and os.path.isfile(src)
            and src.lower().endswith(SAFETENSORS_EXT + TORCH_EXT))


def _spec(m, model_name: str) -> dict:
    from .timm_vit import _activation, _cls, _is_identity, _layer_norm_eps

    def refuse(what, why="not supported"):
        raise ConversionError(f"timm model {model_name!r}: {what} is {why}")

    if _cls(m) != "VisionTransformer":
        refuse(f"a {_cls(m)}", "not a timm VisionTransformer")
    ap = getattr(m, "attn_pool", None)
    if m.global_pool == "token":
        if m.cls_token is None:
            refuse("class-token pooling without a class token")
    elif m.global_pool == "map":
        if _cls(ap) != "AttentionPoolLatent":
            refuse(f"a {_cls(ap)} attention pool")
        if ap.latent_len != 1 or ap.pool != "token" or getattr(ap, "pos_embed", None) is not None:
            refuse("an attention pool with several latents or its own position embedding")
        if not (_is_identity(ap.q_norm) and _is_identity(ap.k_norm)) or ap.mlp is None:
            refuse("an attention pool with q/k norms or without MLP")
    else:
        refuse(f"global_pool={m.global_pool!r}", "not supported (token, map)")
    if not _is_identity(m.fc_norm) or not _is_identity(getattr(m, "norm_pre", None)):
        refuse("fc_norm / norm_pre")
    if _cls(m.head) != "Identity":
        refuse("a classifier head", "not supported (convert with num_classes=0)")
    ph, pw = m.patch_embed.patch_size
    ih, iw = m.patch_embed.img_size
    if ph != pw or ih != iw:
        refuse("a non-square patch or image size")
    eps, acts, swiglu, ffn = set(), set(), None, None
    for i, blk in enumerate(m.blocks):
        if _cls(blk) != "Block" or _cls(blk.attn) != "Attention":
            refuse(f"{_cls(blk)} / {_cls(blk.attn)} blocks")
        if not (_is_identity(blk.attn.q_norm) and _is_identity(blk.attn.k_norm)):
            refuse("qk_norm")
        mlp = blk.mlp
        if _cls(mlp) == "Mlp":
            acts.add(_activation(mlp.act))
            sw, f = False, mlp.fc1.out_features
        elif _cls(mlp) == "GluMlp" and not mlp.gate_last and _cls(mlp.act) == "SiLU":
            sw, f = True, mlp.fc2.in_features
        else:
            refuse(f"a {_cls(mlp)} MLP", "not supported (Mlp, SwiGLUPacked)")
        if not _is_identity(getattr(mlp, "norm", None)):
            refuse("an MLP norm")
        if swiglu is not None and sw != swiglu:
            refuse("mixed MLP kinds")
        swiglu, ffn = sw, f
        eps.add(_layer_norm_eps(blk.norm1, f"blocks.{i}.norm1"))
        eps.add(_layer_norm_eps(blk.norm2, f"blocks.{i}.norm2"))
    eps.add(_layer_norm_eps(m.norm, "norm"))
    if m.global_pool == "map":
        eps.add(_layer_norm_eps(ap.norm, "attn_pool.norm"))
        if swiglu:
            refuse("a SwiGLU tower with an attention pool")
        if _cls(ap.mlp) != "Mlp" or ap.mlp.fc1.out_features != ffn or {_activation(ap.mlp.act)} != acts:
            refuse("an attention-pool MLP unlike the blocks' (size or activation)", "not supported (one MLP "
                   "shape and activation in the schema)")
    if len(eps) != 1:
        refuse(f"LayerNorms with different eps {sorted(eps)}")
    if len(acts) > 1:
        refuse(f"different activations per block {sorted(acts)}")
    return dict(D=int(m.embed_dim), L=len(m.blocks), heads=int(m.blocks[0].attn.num_heads), F=int(ffn),
                eps=eps.pop(), act=(acts.pop() if acts else "gelu"), swiglu=swiglu, patch=int(ph), img=int(ih),
                C=int(m.patch_embed.proj.in_channels), map=m.global_pool == "map")


def load_timm_tower(src: str, *, model_name: Optional[str] = None, labels=None, name: Optional[str] = None,
                     model_kwargs: Optional[dict] = None) -> ConvertedModel:
    from .timm_vit import _compare_keys, _create_meta, _import_timm, preprocess_from_data_config

    if not model_name:
        raise ConversionError(f"{src}: give the timm model name (e.g. vit_small_patch14_dinov2)")
    timm = _import_timm()
    if timm is None:
        raise ConversionError("converting timm DINOv2 / SigLIP models needs timm (not importable)")
    if not timm.is_model(model_name.split(".")[0]):
        raise ConversionError(f"unknown timm model {model_name!r}")
    sd = load_state_dict(os.fspath(src))
    kwargs = dict(model_kwargs or {})
    kwargs.setdefault("num_classes", 0)
    m = _create_meta(timm, model_name, kwargs)
    _compare_keys(sd, m, model_name)
    s = _spec(m, model_name)
    tensors = map_state_dict(sd, RULES_SWIGLU if s["swiglu"] else RULES_MLP, what=f"{src} ({model_name})")
    arch = "siglip" if s["map"] else "dinov2"
    hp = tower_hparams(arch, block_count=s["L"], embedding_length=s["D"], feed_forward_length=s["F"],
                       head_count=s["heads"], layer_norm_epsilon=s["eps"], patch_size=s["patch"],
                       image_size=s["img"], hidden_act=s["act"], pooling="map" if s["map"] else "cls",
                       pos_resize="bicubic_antialias",
                       num_channels=s["C"])
    check_tower_tensors(tensors, hp, arch)
    from timm.data import resolve_data_config
    pre = preprocess_from_data_config(dict(resolve_data_config({}, model=m)), model_name)
    return ConvertedModel(arch=arch, name=name or model_name, source="timm",
                          source_class="timm.VisionTransformer", hparams=hp, preprocess=pre, tensors=tensors)
