"""timm ``vit_*`` / ``deit_*`` (incl. ``deit_*_distilled_*``) state dicts -> ConvertedModel.

Inputs: a state dict file (.safetensors, or .pth/.pt/.bin read with ``torch.load(weights_only=True)``,
possibly wrapped in ``{'state_dict': ...}`` / ``{'model': ...}``) plus the timm model name, or a
timm Hugging Face Hub folder (``config.json`` with ``architecture`` and ``pretrained_cfg``, and
``model.safetensors`` / ``pytorch_model.bin``), which names the model itself.

Hyper-parameters come from timm itself when it is importable: the model is instantiated on the
``meta`` device (no memory, no init cost) with ``num_classes`` taken from the state dict head, its
modules are inspected, and its state-dict keys and shapes are compared with the checkpoint.
Preprocessing is ``timm.data.resolve_data_config({}, model=m)`` (or the folder's pretrained_cfg).

Without timm, shapes are inferred from the state dict and the rest from :data:`NAME_TABLE`
(a warning says so): only the original ViT/DeiT names are covered.

Mapping to the schema (``vit.pooling`` from timm's ``global_pool``):

============================  ================================================================
timm                          GGUF
============================  ================================================================
cls_token / dist_token        v.class_embd / v.dist_embd [D]
pos_embed [1,T,D]             v.position_embd.weight [T,D]
patch_embed.proj              v.patch_embd
blocks.i.norm1 / norm2        v.blk.i.ln1 / ln2
blocks.i.attn.qkv             v.blk.i.attn_qkv (timm already stores rows q, k, v)
blocks.i.attn.proj            v.blk.i.attn_out
blocks.i.ls1.gamma / ls2      v.blk.i.ls1 / ls2 (layer scale, init_values)
blocks.i.mlp.fc1 / fc2        v.blk.i.ffn_up / ffn_down
norm                          v.post_ln   (absent when fc_norm is used: timm's norm is Identity)
fc_norm                       v.fc_norm   (global_pool='avg' models)
head / head_dist              v.head / v.head_dist
global_pool 'token'           vit.pooling = cls
global_pool 'avg'             vit.pooling = avg (patch tokens only; timm's default)
VisionTransformerDistilled    vit.pooling = cls_dist_avg ((token0 + token1) / 2, timm pre_logits)
============================  ================================================================
"""
from __future__ import annotations

import json
import math
import os
import re
from typing import Dict, List, Optional, Tuple

import numpy as np

from ._model import (ConversionError, ConvertedModel, PreprocessSpec, imagenet_labels,
                     resolve_labels, warn)
from ._state_dict import load_state_dict
from ._vit_common import check_vit_tensors, vit_hparams

IMAGENET_DEFAULT_MEAN = (0.485, 0.456, 0.406)
IMAGENET_DEFAULT_STD = (0.229, 0.224, 0.225)
IMAGENET_INCEPTION = (0.5, 0.5, 0.5)
DEFAULT_CROP_PCT = 0.875

# Used only when timm is not importable.  Key: (family, size) -> heads.  Preprocessing per family
# is the default pretrained_cfg timm ships for the plain names (224: crop 0.9, larger: 1.0).
NAME_TABLE = {
    "heads": {"tiny": 3, "small": 6, "base": 12, "large": 16, "huge": 16},
    "preprocess": {
        "deit": dict(mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD, interpolation="bicubic"),
        "vit": dict(mean=IMAGENET_INCEPTION, std=IMAGENET_INCEPTION, interpolation="bicubic"),
    },
}
_NAME_RX = re.compile(r"^(deit|vit)_(tiny|small|base|large|huge)(_distilled)?_patch(\d+)_(\d+)$")

_RULES = [(re.compile(p + "$"), out) for p, out in [
    (r"cls_token", "v.class_embd"),
    (r"dist_token", "v.dist_embd"),
    (r"pos_embed", "v.position_embd.weight"),
    (r"patch_embed\.proj\.(weight|bias)", "v.patch_embd.{0}"),
    (r"blocks\.(\d+)\.norm1\.(weight|bias)", "v.blk.{0}.ln1.{1}"),
    (r"blocks\.(\d+)\.attn\.qkv\.(weight|bias)", "v.blk.{0}.attn_qkv.{1}"),
    (r"blocks\.(\d+)\.attn\.proj\.(weight|bias)", "v.blk.{0}.attn_out.{1}"),
    (r"blocks\.(\d+)\.ls1\.gamma", "v.blk.{0}.ls1"),
    (r"blocks\.(\d+)\.norm2\.(weight|bias)", "v.blk.{0}.ln2.{1}"),
    (r"blocks\.(\d+)\.mlp\.fc1\.(weight|bias)", "v.blk.{0}.ffn_up.{1}"),
    (r"blocks\.(\d+)\.mlp\.fc2\.(weight|bias)", "v.blk.{0}.ffn_down.{1}"),
    (r"blocks\.(\d+)\.ls2\.gamma", "v.blk.{0}.ls2"),
    (r"norm\.(weight|bias)", "v.post_ln.{0}"),
    (r"fc_norm\.(weight|bias)", "v.fc_norm.{0}"),
    (r"head\.(weight|bias)", "v.head.{0}"),
    (r"head_dist\.(weight|bias)", "v.head_dist.{0}"),
]]

# Checkpoint keys that reveal a feature the engine does not run yet -> why.
_REFUSED_KEYS = [
    (re.compile(r"reg_token$"), "register tokens (reg_tokens)"),
    (re.compile(r"blocks\.\d+\.attn\.[qk]_norm\."), "qk_norm"),
    (re.compile(r"norm_pre\."), "pre_norm (a norm before the blocks, CLIP style)"),
    (re.compile(r"attn_pool\."), "attention pooling (global_pool='map')"),
    (re.compile(r"patch_embed\.backbone\."), "hybrid CNN backbones"),
    (re.compile(r"blocks\.\d+\.mlp\.fc1_[gx]\.|blocks\.\d+\.mlp\.w12\."), "SwiGLU/GLU MLPs"),
    (re.compile(r"blocks\.\d+\.attn\.(q_bias|v_bias|relative_position)"), "BEiT-style attention"),
]


def _import_timm():
    """timm, or None when it (or torch) is not importable.  A function so tests can hide timm."""
    try:
        import timm  # noqa: F401
        import torch  # noqa: F401
        return timm
    except Exception:
        return None


def is_timm_folder(src: str) -> bool:
    cfg = os.path.join(src, "config.json")
    if not (os.path.isdir(src) and os.path.isfile(cfg)):
        return False
    try:
        with open(cfg, encoding="utf-8") as f:
            c = json.load(f)
    except (OSError, ValueError):
        return False
    return "architecture" in c and "model_type" not in c


# --------------------------------------------------------------------------- spec from timm
def _cls(m) -> str:
    return type(m).__name__


def _is_identity(m) -> bool:
    """True for an Identity module or a missing optional one."""
    return m is None or _cls(m) == "Identity"


def _layer_norm_eps(m, what: str) -> float:
    import torch.nn as nn
    if not isinstance(m, nn.LayerNorm):
        raise ConversionError(f"{what} is a {_cls(m)}; only LayerNorm is supported")
    if not m.elementwise_affine or getattr(m, "bias", None) is None:
        raise ConversionError(f"{what}: LayerNorm without affine weight/bias is not supported")
    return float(m.eps)


def _activation(act) -> str:
    name = _cls(act)
    if name == "QuickGELU":
        return "quick_gelu"
    if name == "GELUTanh":
        return "gelu_tanh"
    if name == "GELU":
        return "gelu_tanh" if getattr(act, "approximate", "none") == "tanh" else "gelu"
    raise ConversionError(f"MLP activation {name} is not supported (supported: GELU, GELU tanh, QuickGELU)")


def spec_from_timm_model(m, model_name: str) -> dict:
    """Inspect an instantiated (meta) timm model; refuse what the engine cannot run."""
    kind = _cls(m)
    if kind not in ("VisionTransformer", "VisionTransformerDistilled"):
        raise ConversionError(f"timm model {model_name!r} is a {kind}, not a plain "
                              "VisionTransformer: not supported yet")

    def refuse(feature: str, why: str = "the engine does not run it yet"):
        raise ConversionError(f"timm model {model_name!r} uses {feature}: not supported ({why})")

    pe = m.patch_embed
    if _cls(pe) != "PatchEmbed":
        refuse(f"a {_cls(pe)} patch embedding (hybrid/other stems)")
    ph, pw = pe.patch_size
    if ph != pw:
        refuse(f"non-square patches {ph}x{pw}")
    ih, iw = pe.img_size
    if ih != iw:
        refuse(f"a non-square input size {ih}x{iw}")
    if getattr(m, "dynamic_img_size", False) or getattr(pe, "dynamic_img_pad", False):
        refuse("dynamic_img_size / dynamic_img_pad")
    if not _is_identity(getattr(pe, "norm", None)):
        refuse("a norm inside the patch embedding")
    proj = pe.proj
    if _cls(proj) != "Conv2d" or tuple(proj.kernel_size) != (ph, pw) or tuple(proj.stride) != (ph, pw):
        refuse("a patch projection that is not a stride=kernel convolution")
    if proj.bias is None:
        refuse("a patch embedding without bias")
    if getattr(m, "num_reg_tokens", 0) or getattr(m, "reg_token", None) is not None:
        refuse("register tokens (reg_tokens)")
    if getattr(m, "no_embed_class", False):
        refuse("no_embed_class=True (position embeddings without the prefix tokens)",
               "the schema's position table covers the prefix tokens")
    if getattr(m, "pos_embed", None) is None:
        refuse("no position embedding (pos_embed='none')")
    if not _is_identity(m.norm_pre):
        refuse("pre_norm (CLIP-style ln_pre)")
    if getattr(m, "attn_pool", None) is not None:
        refuse(f"attention pooling (global_pool={m.global_pool!r})")
    if getattr(m, "pool_include_prefix", False):
        refuse("pool_include_prefix=True")
    distilled = kind == "VisionTransformerDistilled"
    if distilled:
        pooling = "cls_dist_avg"
    elif m.global_pool == "token":
        pooling = "cls"
    elif m.global_pool == "avg":
        pooling = "avg"
    else:
        refuse(f"global_pool={m.global_pool!r}", "supported: 'token', 'avg'")

    eps = set()
    act = None
    ffn = None
    qkv_bias = None
    layer_scale = None
    for i, blk in enumerate(m.blocks):
        if _cls(blk) != "Block":
            refuse(f"{_cls(blk)} blocks")
        at = blk.attn
        if _cls(at) != "Attention" or not hasattr(at, "qkv"):
            refuse(f"{_cls(at)} attention")
        if not (_is_identity(at.q_norm) and _is_identity(at.k_norm)):
            refuse("qk_norm")
        if not _is_identity(getattr(at, "norm", None)):
            refuse("scale_attn_norm")
        if at.proj.bias is None:
            refuse("proj_bias=False")
        mlp = blk.mlp
        if _cls(mlp) != "Mlp":
            refuse(f"a {_cls(mlp)} MLP (SwiGLU/GLU/other MLPs)")
        if not _is_identity(getattr(mlp, "norm", None)):
            refuse("scale_mlp_norm")
        if _cls(mlp.fc1) != "Linear" or _cls(mlp.fc2) != "Linear" or mlp.fc1.bias is None:
            refuse("an MLP without linear+bias layers")
        a = _activation(mlp.act)
        if act is not None and a != act:
            refuse("different activations per block")
        act = a
        ffn = mlp.fc1.out_features
        qkv_bias = at.qkv.bias is not None
        ls = (_cls(blk.ls1) == "LayerScale", _cls(blk.ls2) == "LayerScale")
        if ls[0] != ls[1] or not all(_cls(x) in ("LayerScale", "Identity") for x in (blk.ls1, blk.ls2)):
            refuse("unusual layer scale modules")
        layer_scale = ls[0]
        eps.add(_layer_norm_eps(blk.norm1, f"blocks.{i}.norm1"))
        eps.add(_layer_norm_eps(blk.norm2, f"blocks.{i}.norm2"))
    post_norm = not _is_identity(m.norm)
    fc_norm = not _is_identity(m.fc_norm)
    if post_norm:
        eps.add(_layer_norm_eps(m.norm, "norm"))
    if fc_norm:
        eps.add(_layer_norm_eps(m.fc_norm, "fc_norm"))
    if len(eps) != 1:
        refuse(f"LayerNorms with different eps {sorted(eps)}", "the schema has one eps")
    head_ok = ("Linear", "Identity")
    if _cls(m.head) not in head_ok or (distilled and _cls(m.head_dist) not in head_ok):
        refuse(f"a {_cls(m.head)} classifier head")
    return dict(
        embed_dim=int(m.embed_dim), depth=len(m.blocks), num_heads=int(m.blocks[0].attn.num_heads),
        ffn=int(ffn), eps=eps.pop(), act=act, patch=int(ph), img_size=int(ih),
        in_chans=int(proj.in_channels), pooling=pooling, class_token=m.cls_token is not None,
        distilled=distilled, qkv_bias=qkv_bias, layer_scale=layer_scale, post_norm=post_norm,
        fc_norm=fc_norm, source_class=f"timm.{kind}",
    )


def _create_meta(timm, model_name: str, kwargs: dict):
    import torch
    try:
        with torch.device("meta"):
            return timm.create_model(model_name, pretrained=False, **kwargs)
    except Exception as e:
        raise ConversionError(f"timm could not build {model_name!r} with {kwargs}: "
                              f"{type(e).__name__}: {e}") from e


def _compare_keys(sd: Dict[str, np.ndarray], m, model_name: str) -> None:
    expected = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    if missing or unexpected:
        hint = ""
        if "fc_norm.weight" in unexpected and "norm.weight" in missing:
            hint = (" (the checkpoint was trained with global_pool='avg' and fc_norm: pass "
                    "--model-arg global_pool=avg, or model_kwargs={'global_pool': 'avg'})")
        elif "norm.weight" in unexpected and "fc_norm.weight" in missing:
            hint = " (the checkpoint uses class-token pooling: pass --model-arg global_pool=token)"
        parts = []
        if missing:
            parts.append(f"missing {len(missing)}: {', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)}: "
                         f"{', '.join(unexpected[:6])}{' ...' if len(unexpected) > 6 else ''}")
        raise ConversionError(f"the state dict does not match timm model {model_name!r}: "
                              f"{'; '.join(parts)}{hint}")
    for k, shape in expected.items():
        if tuple(sd[k].shape) != shape:
            raise ConversionError(f"the state dict does not match timm model {model_name!r}: "
                                  f"{k} has shape {tuple(sd[k].shape)}, the model expects {shape}")


def _pos_grid(sd, prefix_tokens: int) -> Optional[int]:
    pe = sd.get("pos_embed")
    if pe is None:
        return None
    n = pe.shape[-2] - prefix_tokens
    g = int(round(math.sqrt(n)))
    return g if g * g == n else None


def _spec_with_timm(timm, model_name: str, sd, model_kwargs: dict, pretrained_cfg: Optional[dict]):
    kwargs = dict(model_kwargs)
    if "num_classes" not in kwargs:
        kwargs["num_classes"] = int(sd["head.weight"].shape[0]) if "head.weight" in sd else 0
    m = _create_meta(timm, model_name, kwargs)
    spec = spec_from_timm_model(m, model_name)
    prefix = int(spec["class_token"]) + int(spec["distilled"])
    g = _pos_grid(sd, prefix)
    if g is not None and "img_size" not in kwargs and g * spec["patch"] != spec["img_size"]:
        new = g * spec["patch"]
        warn(f"the checkpoint's position table is for {new}x{new} inputs, {model_name} defaults "
             f"to {spec['img_size']}: converting at {new}")
        kwargs["img_size"] = new
        m = _create_meta(timm, model_name, kwargs)
        spec = spec_from_timm_model(m, model_name)
    _compare_keys(sd, m, model_name)
    from timm.data import resolve_data_config
    if pretrained_cfg:
        dc = resolve_data_config({}, pretrained_cfg=pretrained_cfg)
    else:
        dc = resolve_data_config({}, model=m)
    dc = dict(dc)
    if tuple(dc["input_size"][1:]) != (spec["img_size"], spec["img_size"]) and "img_size" in kwargs:
        dc["input_size"] = (dc["input_size"][0], spec["img_size"], spec["img_size"])
    spec["data_config"] = dc
    return spec


# --------------------------------------------------------------------------- spec without timm
def _spec_from_table(model_name: str, sd) -> dict:
    base = model_name.split(".")[0]
    mt = _NAME_RX.match(base)
    if mt is None:
        raise ConversionError(
            f"unknown timm model {model_name!r}: timm is not importable, and the built-in table "
            "only knows the original names (deit_{tiny,small,base}[_distilled]_patch16_{224,384}, "
            "vit_{tiny,small,base,large,huge}_patchP_S); install timm to convert other models")
    family, size, distilled, patch, img = mt.group(1), mt.group(2), bool(mt.group(3)), int(mt.group(4)), int(mt.group(5))
    if distilled and family != "deit":
        raise ConversionError(f"unknown timm model {model_name!r}")
    warn(f"timm is not importable: hyper-parameters of {model_name!r} are inferred from the state "
         "dict and the built-in name table (heads, eps 1e-6, GELU, preprocessing defaults of the "
         "plain timm name); install timm for an exact reading")
    for key in sd:
        for rx, what in _REFUSED_KEYS:
            if rx.match(key):
                raise ConversionError(f"the state dict for {model_name!r} uses {what}: not supported")
    for key in sd:
        if not any(rx.match(key) for rx, _ in _RULES):
            raise ConversionError(f"the state dict for {model_name!r} has a tensor this converter "
                                  f"does not know: {key}")
    for need in ("pos_embed", "patch_embed.proj.weight", "blocks.0.attn.qkv.weight"):
        if need not in sd:
            raise ConversionError(f"the state dict for {model_name!r} is missing {need}")
    if ("dist_token" in sd) != distilled:
        raise ConversionError(f"{model_name!r} {'needs' if distilled else 'has no'} a distillation "
                              f"token but the state dict {'lacks' if distilled else 'has'} one")
    D = sd["pos_embed"].shape[-1]
    depth = len({int(k.split(".")[1]) for k in sd if k.startswith("blocks.")})
    pw = sd["patch_embed.proj.weight"]
    if pw.shape[-1] != patch or pw.shape[-2] != patch:
        raise ConversionError(f"{model_name!r} has {patch}x{patch} patches, the state dict "
                              f"{pw.shape[-2]}x{pw.shape[-1]}")
    class_token = "cls_token" in sd
    prefix = int(class_token) + int(distilled)
    g = _pos_grid(sd, prefix)
    if g is None:
        raise ConversionError(f"pos_embed {sd['pos_embed'].shape} is not a square grid plus "
                              f"{prefix} prefix tokens")
    if g * patch != img:
        warn(f"the checkpoint's position table is for {g * patch}x{g * patch} inputs, the name "
             f"says {img}: converting at {g * patch}")
        img = g * patch
    fc_norm = "fc_norm.weight" in sd
    pp = NAME_TABLE["preprocess"][family]
    crop_pct = 0.9 if img <= 224 else 1.0
    return dict(
        embed_dim=int(D), depth=depth, num_heads=NAME_TABLE["heads"][size],
        ffn=int(sd["blocks.0.mlp.fc1.weight"].shape[0]), eps=1e-6, act="gelu", patch=patch,
        img_size=img, in_chans=int(pw.shape[1]),
        pooling="cls_dist_avg" if distilled else ("avg" if fc_norm else "cls"),
        class_token=class_token, distilled=distilled,
        qkv_bias="blocks.0.attn.qkv.bias" in sd, layer_scale="blocks.0.ls1.gamma" in sd,
        post_norm="norm.weight" in sd, fc_norm=fc_norm,
        source_class="timm.VisionTransformerDistilled" if distilled else "timm.VisionTransformer",
        data_config=dict(input_size=(3, img, img), interpolation=pp["interpolation"],
                         mean=pp["mean"], std=pp["std"], crop_pct=crop_pct, crop_mode="center"),
    )


# --------------------------------------------------------------------------- common
def map_timm_state_dict(sd: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    out: Dict[str, np.ndarray] = {}
    for key, arr in sd.items():
        for rx, target in _RULES:
            mt = rx.match(key)
            if mt:
                out[target.format(*mt.groups())] = arr
                break
        else:
            raise ConversionError(f"tensor {key} has no place in the schema")
    for name in ("v.class_embd", "v.dist_embd"):
        if name in out:
            out[name] = np.ascontiguousarray(out[name].reshape(-1))
    pe = out["v.position_embd.weight"]
    out["v.position_embd.weight"] = np.ascontiguousarray(pe.reshape(pe.shape[-2], pe.shape[-1]))
    return out


def preprocess_from_data_config(dc: dict, model_name: str) -> PreprocessSpec:
    _, h, w = dc["input_size"]
    crop_pct = dc.get("crop_pct") or DEFAULT_CROP_PCT
    crop_mode = dc.get("crop_mode") or "center"
    interp = dc.get("interpolation") or "bilinear"
    if interp not in ("bilinear", "bicubic"):
        raise ConversionError(f"{model_name}: interpolation {interp!r} is not supported "
                              "(supported: bilinear, bicubic)")
    if crop_mode == "squash":
        mode = "squash"
    elif crop_mode == "center":
        if h != w:
            raise ConversionError(f"{model_name}: a non-square input {h}x{w} with crop_mode "
                                  "'center' (timm ResizeKeepRatio) is not supported")
        mode = "shortest_edge_crop"
    else:
        raise ConversionError(f"{model_name}: crop_mode {crop_mode!r} is not supported "
                              "(supported: center, squash)")
    # timm: scale_size = math.floor(img_size / crop_pct), in double precision.
    resize = (int(math.floor(h / crop_pct)), int(math.floor(w / crop_pct)))
    return PreprocessSpec(image_size=(int(h), int(w)), resize_mode=mode, crop_pct=float(crop_pct),
                          interpolation=interp, mean=tuple(float(v) for v in dc["mean"]),
                          std=tuple(float(v) for v in dc["std"]), rescale_factor=1.0 / 255.0,
                          resize_size=resize, crop_rounding="round")


def load_timm_vit(src: str, *, model_name: Optional[str] = None, labels=None,
                  name: Optional[str] = None, model_kwargs: Optional[dict] = None) -> ConvertedModel:
    src = os.fspath(src)
    pretrained_cfg = None
    default_labels = None
    if os.path.isdir(src):
        cfg_path = os.path.join(src, "config.json")
        if not os.path.isfile(cfg_path):
            raise FileNotFoundError(f"{src} has no config.json")
        with open(cfg_path, encoding="utf-8") as f:
            cfg = json.load(f)
        model_name = model_name or cfg.get("architecture")
        pretrained_cfg = cfg.get("pretrained_cfg")
        default_labels = cfg.get("label_names")
        for fname in ("model.safetensors", "pytorch_model.bin"):
            if os.path.isfile(os.path.join(src, fname)):
                weights = os.path.join(src, fname)
                break
        else:
            raise FileNotFoundError(f"no weights in {src}: expected model.safetensors or pytorch_model.bin")
    else:
        weights = src
    if not model_name:
        raise ConversionError(f"{src}: a bare state dict does not say which model it is; "
                              "give the timm model name (--model-name, e.g. deit_tiny_patch16_224)")
    sd = load_state_dict(weights)

    timm = _import_timm()
    if timm is not None and timm.is_model(model_name.split(".")[0]):
        spec = _spec_with_timm(timm, model_name, sd, model_kwargs or {}, pretrained_cfg)
    else:
        if model_kwargs:
            raise ConversionError("model arguments need timm (not importable, or it does not "
                                  f"know {model_name!r})")
        if timm is not None and not _NAME_RX.match(model_name.split(".")[0]):
            raise ConversionError(f"unknown timm model {model_name!r} (timm.is_model is False)")
        spec = _spec_from_table(model_name, sd)

    tensors = map_timm_state_dict(sd)
    hp = vit_hparams(
        block_count=spec["depth"], embedding_length=spec["embed_dim"], feed_forward_length=spec["ffn"],
        head_count=spec["num_heads"], layer_norm_epsilon=spec["eps"], patch_size=spec["patch"],
        image_size=spec["img_size"], num_channels=spec["in_chans"], hidden_act=spec["act"],
        pooling=spec["pooling"], pos_resize="bicubic_antialias")  # timm resample_abs_pos_embed
    check_vit_tensors(tensors, hp)
    num_classes = tensors["v.head.weight"].shape[0] if "v.head.weight" in tensors else 0
    if default_labels is None and num_classes == 1000:
        default_labels = imagenet_labels()
    label_list = resolve_labels(labels, num_classes, default_labels)
    pre = preprocess_from_data_config(spec["data_config"], model_name)
    return ConvertedModel(arch="vit", name=name or model_name, source="timm",
                          source_class=spec["source_class"], hparams=hp, preprocess=pre,
                          tensors=tensors, labels=label_list)
