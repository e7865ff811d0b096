"""open_clip ViT image towers -> ConvertedModel (architecture ``clip``): a state dict (of the whole
CLIP model, or of ``model.visual``) plus the open_clip model name (``ViT-B-32``,
``ViT-B-16-quickgelu``, ...; ``model_kwargs`` reach ``open_clip.create_model`` as overrides).

open_clip builds the model (on the meta device when it can) to read its structure; the visual
tower's state dict must match it.
===========================================  ===============================================
open_clip (``visual.`` prefix dropped)        GGUF
===========================================  ===============================================
conv1.weight (no bias)                       v.patch_embd.weight
class_embedding [D]                          v.class_embd
positional_embedding [1+N,D]                 v.position_embd.weight
ln_pre                                       v.pre_ln
transformer.resblocks.i.ln_1 / ln_2          v.blk.i.ln1 / ln2
transformer.resblocks.i.attn.in_proj [3D,D]  v.blk.i.attn_q / attn_k / attn_v
transformer.resblocks.i.attn.out_proj        v.blk.i.attn_out
transformer.resblocks.i.ls_1/ls_2.gamma      v.blk.i.ls1 / ls2
transformer.resblocks.i.mlp.c_fc / c_proj    v.blk.i.ffn_up / ffn_down
ln_post                                      v.post_ln (all tokens, or the pooled one with final_ln_after_pool)
proj [D,E]                                   v.proj.weight [E,D] -> `embedding` (encode_image)
===========================================  ===============================================

open_clip resizes a position table only when it loads a checkpoint into a model of another
size (``resize_pos_embed``: bicubic, antialias=True); the engine applies that same rule for
other input sizes.  Attentional poolers (CoCa) and non-ViT towers are refused.
"""
from __future__ import annotations

import os
from typing import Optional

import numpy as np

from ._model import ConversionError, ConvertedModel, PreprocessSpec, warn
from ._state_dict import SAFETENSORS_EXT, TORCH_EXT, load_state_dict
from ._tower_common import check_tower_tensors, compile_rules, map_state_dict, tower_hparams

_B = r"transformer\.resblocks\.(\d+)\."
RULES = compile_rules([
    (r"conv1\.(weight|bias)", "v.patch_embd.{0}"),
    (r"class_embedding", "v.class_embd"),
    (r"positional_embedding", "v.position_embd.weight"),
    (r"ln_pre\.(weight|bias)", "v.pre_ln.{0}"),
    (_B + r"ln_1\.(weight|bias)", "v.blk.{0}.ln1.{1}"),
    (_B + r"ln_2\.(weight|bias)", "v.blk.{0}.ln2.{1}"),
    (_B + r"attn\.in_proj_(weight|bias)", "split:v.blk.{0}.attn_q.{1},v.blk.{0}.attn_k.{1},v.blk.{0}.attn_v.{1}"),
    (_B + r"attn\.out_proj\.(weight|bias)", "v.blk.{0}.attn_out.{1}"),
    (_B + r"ls_1\.gamma", "v.blk.{0}.ls1"),
    (_B + r"ls_2\.gamma", "v.blk.{0}.ls2"),
    (_B + r"mlp\.c_fc\.(weight|bias)", "v.blk.{0}.ffn_up.{1}"),
    (_B + r"mlp\.c_proj\.(weight|bias)", "v.blk.{0}.ffn_down.{1}"),
    (r"ln_post\.(weight|bias)", "v.post_ln.{0}"),
    (r"proj", "v.proj.weight"),
])


def _import_open_clip():
    try:
        import open_clip
        return open_clip
    except Exception:
        return None


def is_open_clip(src: str, model_name: Optional[str]) -> bool:
    if not (model_name and os.path.isfile(src) and src.lower().endswith(SAFETENSORS_EXT + TORCH_EXT)):
        return False
    oc = _import_open_clip()
    return oc is not None and model_name in oc.list_models()


def _build(oc, model_name: str, kwargs: dict):
    import torch
    try:
        try:
            with torch.device("meta"):
                return oc.create_model(model_name, pretrained=None, **kwargs)
        except Exception:
            return oc.create_model(model_name, pretrained=None, **kwargs)
    except Exception as e:
        raise ConversionError(f"open_clip could not build {model_name!r} with {kwargs}: {type(e).__name__}: {e}") from e


def _spec(v, model_name: str) -> dict:
    from .timm_vit import _activation, _cls, _is_identity, _layer_norm_eps

    def refuse(what, why="not supported"):
        raise ConversionError(f"open_clip model {model_name!r}: {what} is {why}")

    if _cls(v) != "VisionTransformer":
        refuse(f"a {_cls(v)} image tower", "not supported (ViT towers only)")
    if getattr(v, "attn_pool", None) is not None:
        refuse("an attentional pooler (CoCa)")
    if v.pool_type not in ("tok", "avg"):
        refuse(f"pool_type {v.pool_type!r}")
    if getattr(v, "patch_dropout", None) is not None and _cls(v.patch_dropout) != "Identity":
        pass  # inactive in eval
    if v.proj is None:
        refuse("a tower without projection")
    ph, pw = v.patch_size if isinstance(v.patch_size, tuple) else (v.patch_size, v.patch_size)
    ih, iw = v.image_size if isinstance(v.image_size, tuple) else (v.image_size, v.image_size)
    if ph != pw or ih != iw:
        refuse("a non-square patch or image size")
    eps, acts = {_layer_norm_eps(v.ln_pre, "ln_pre"), _layer_norm_eps(v.ln_post, "ln_post")}, set()
    for i, blk in enumerate(v.transformer.resblocks):
        if not _is_identity(getattr(blk, "ln_attn", None)) or "ln" in dict(blk.mlp.named_children()):
            refuse("scale_attn / scale_fc norms")
        if _cls(blk.attn) != "MultiheadAttention":
            refuse(f"{_cls(blk.attn)} attention")
        acts.add(_activation(blk.mlp.gelu))
        eps.add(_layer_norm_eps(blk.ln_1, f"resblocks.{i}.ln_1"))
        eps.add(_layer_norm_eps(blk.ln_2, f"resblocks.{i}.ln_2"))
    if len(eps) != 1 or len(acts) != 1:
        refuse("LayerNorms with different eps or mixed activations")
    blk = v.transformer.resblocks[0]
    return dict(D=int(v.transformer.width), L=len(v.transformer.resblocks), heads=int(blk.attn.num_heads),
                F=int(blk.mlp.c_fc.out_features), eps=eps.pop(), act=acts.pop(), patch=int(ph), img=int(ih),
                pooling="cls" if v.pool_type == "tok" else "avg",
                post_norm="pooled" if v.final_ln_after_pool else "tokens",
                E=int(v.proj.shape[1]), mean=getattr(v, "image_mean", None), std=getattr(v, "image_std", None))


def load_open_clip(src: str, *, model_name: Optional[str] = None, labels=None, name: Optional[str] = None,
                   model_kwargs: Optional[dict] = None) -> ConvertedModel:
    oc = _import_open_clip()
    if oc is None:
        raise ConversionError("converting open_clip models needs open_clip (not importable)")
    if not model_name or model_name not in oc.list_models():
        raise ConversionError(f"unknown open_clip model {model_name!r} (see open_clip.list_models())")
    if labels is not None:
        warn("labels ignored: an open_clip image tower has no classifier")
    sd = load_state_dict(os.fspath(src))
    if any(k.startswith("visual.") for k in sd):
        sd = {k[len("visual."):]: a for k, a in sd.items() if k.startswith("visual.")}
    model = _build(oc, model_name, dict(model_kwargs or {}))
    v = model.visual
    s = _spec(v, model_name)
    expected = {k: tuple(t.shape) for k, t in v.state_dict().items()}
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    if missing or unexpected:
        raise ConversionError(f"the state dict does not match open_clip {model_name!r}: missing {missing[:6]}, "
                              f"unexpected {unexpected[:6]}")
    for k, shape in expected.items():
        if tuple(sd[k].shape) != shape:
            raise ConversionError(f"{k} has shape {tuple(sd[k].shape)}, open_clip {model_name!r} expects {shape}")
    sd["proj"] = np.ascontiguousarray(np.asarray(sd["proj"]).T)
    tensors = map_state_dict(sd, RULES, what=f"{src} ({model_name})")
    hp = tower_hparams("clip", block_count=s["L"], embedding_length=s["D"], feed_forward_length=s["F"],
                       head_count=s["heads"], layer_norm_epsilon=s["eps"], patch_size=s["patch"], image_size=s["img"],
                       hidden_act=s["act"], pooling=s["pooling"], pos_resize="bicubic_antialias",
                       post_norm=s["post_norm"], projection_dim=s["E"])
    check_tower_tensors(tensors, hp, "clip")
    # open_clip's eval transform: shortest edge bicubic resize to image_size, centre crop
    # (torchvision: round), OpenAI mean/std unless the model config says otherwise.
    from ._tower_common import OPENAI_MEAN, OPENAI_STD
    mean = tuple(s["mean"] or OPENAI_MEAN)
    std = tuple(s["std"] or OPENAI_STD)
    pre = PreprocessSpec(image_size=(s["img"], s["img"]), resize_mode="shortest_edge_crop", crop_pct=1.0,
                         interpolation="bicubic", mean=mean, std=std, resize_size=(s["img"], s["img"]),
                         crop_rounding="round")
    return ConvertedModel(arch="clip", name=name or model_name, source="open_clip",
                          source_class="open_clip.VisionTransformer", hparams=hp, preprocess=pre, tensors=tensors)
