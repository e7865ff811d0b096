"""Swin Transformer V1 / V2 -> ConvertedModel (architecture ``swin``, docs/GGUF_SCHEMA.md).

Two sources:

- timm ``swin_*`` / ``swinv2_*`` state dicts (``.pth`` / ``.safetensors``) with the timm model name
  (``--model-name``): timm builds the model on the meta device, and each stage's window and shift
  are read from its blocks as timm computed them for the native size (``swin.window_rule`` =
  ``fixed``); timm rolls before it pads (``swin.shift_order`` = ``roll_pad``) and takes only
  inputs that are whole patches;
- Hugging Face ``SwinModel`` / ``SwinForImageClassification`` / ``Swinv2Model`` /
  ``Swinv2ForImageClassification`` folders (either tensor naming: ``attention.self.query`` or
  ``attention.q_proj``). HF pads the pixels to whole patches and pads before it rolls
  (``pad_roll``); Swin V1 picks the window per input (``per_input``: a grid whose smaller side is
  not larger than the window takes that side as the window, unshifted), Swinv2 fixes it per
  stage at construction from the configured image size (``fixed``).

Patch merging: timm puts it at the start of a stage, HF at the end of the previous one; both
become ``v.s{i}.merge*`` (the merging into stage i). q, k and v are fused into ``attn_qkv``
(V2: the k bias is zero). The relative position bias table (V1) and V2's continuous position bias
MLP and logit scale are kept F32 at every outtype; the engine gathers them per window size.
"""
from __future__ import annotations

import math
import os
import re
from typing import Dict, List, Optional

import numpy as np

from ._model import (BOOL, F32, STR, U32, U32_ARRAY, ConversionError, ConvertedModel, imagenet_labels,
                     resolve_labels, warn)
from ._state_dict import SAFETENSORS_EXT, TORCH_EXT, load_state_dict
from ._tower_common import (IMAGENET_MEAN, IMAGENET_STD, folder_name, hf_config, hf_model_type,
                            hf_processor_spec)

# ------------------------------------------------------------------------------- naming
_BLOCK_TIMM = [
    (r"norm1\.(weight|bias)", "ln1.{}"), (r"norm2\.(weight|bias)", "ln2.{}"),
    (r"attn\.qkv\.(weight|bias)", "attn_qkv.{}"), (r"attn\.proj\.(weight|bias)", "attn_out.{}"),
    (r"mlp\.fc1\.(weight|bias)", "ffn_up.{}"), (r"mlp\.fc2\.(weight|bias)", "ffn_down.{}"),
    (r"attn\.relative_position_bias_table", "attn_rel_bias"), (r"attn\.logit_scale", "attn_logit_scale"),
    (r"attn\.cpb_mlp\.0\.(weight|bias)", "cpb_fc1.{}"), (r"attn\.cpb_mlp\.2\.weight", "cpb_fc2.weight"),
    (r"attn\.(q_bias)", "part.{}"), (r"attn\.(v_bias)", "part.{}"),
]
_BLOCK_HF = [
    (r"layernorm_before\.(weight|bias)", "ln1.{}"), (r"layernorm_after\.(weight|bias)", "ln2.{}"),
    (r"attention\.(?:q_proj|self\.query)\.(weight|bias)", "part.q_{}"),
    (r"attention\.(?:k_proj|self\.key)\.(weight|bias)", "part.k_{}"),
    (r"attention\.(?:v_proj|self\.value)\.(weight|bias)", "part.v_{}"),
    (r"attention\.(?:o_proj|output\.dense)\.(weight|bias)", "attn_out.{}"),
    (r"(?:mlp\.fc1|intermediate\.dense)\.(weight|bias)", "ffn_up.{}"),
    (r"(?:mlp\.fc2|output\.dense)\.(weight|bias)", "ffn_down.{}"),
    (r"attention\.(?:relative_position_bias\.|self\.)relative_position_bias_table", "attn_rel_bias"),
    (r"attention\.self\.logit_scale", "attn_logit_scale"),
    (r"attention\.self\.continuous_position_bias_mlp\.0\.(weight|bias)", "cpb_fc1.{}"),
    (r"attention\.self\.continuous_position_bias_mlp\.2\.weight", "cpb_fc2.weight"),
]
_IGNORED = re.compile(r".*(relative_position_index|relative_coords_table|attn_mask|k_bias|mask_token)$")


def _map(sd: Dict[str, np.ndarray], what: str, hf: bool) -> Dict[str, np.ndarray]:
    """State dict -> GGUF names, q/k/v (and V2's q/v biases) fused into attn_qkv."""
    block_rules = [(re.compile(p + "$"), t) for p, t in (_BLOCK_HF if hf else _BLOCK_TIMM)]
    out: Dict[str, np.ndarray] = {}
    parts: Dict[str, Dict[str, np.ndarray]] = {}
    for key, arr in sd.items():
        arr = np.asarray(arr)
        k = key
        if hf:
            k = re.sub(r"^(swin|swinv2)\.", "", k)
        if _IGNORED.match(k):
            continue
        if hf:
            m = re.match(r"encoder\.layers\.(\d+)\.blocks\.(\d+)\.(.+)$", k)
            d = re.match(r"encoder\.layers\.(\d+)\.downsample\.(reduction\.weight|norm\.weight|norm\.bias)$", k)
            simple = {"embeddings.patch_embeddings.projection.weight": "v.patch_embd.weight",
                      "embeddings.patch_embeddings.projection.bias": "v.patch_embd.bias",
                      "embeddings.norm.weight": "v.patch_norm.weight", "embeddings.norm.bias": "v.patch_norm.bias",
                      "embeddings.position_embeddings": "v.position_embd.weight",
                      "layernorm.weight": "v.post_ln.weight", "layernorm.bias": "v.post_ln.bias",
                      "classifier.weight": "v.head.weight", "classifier.bias": "v.head.bias"}
            s_off = 1  # HF merges at the end of stage s: into stage s + 1
        else:
            m = re.match(r"layers\.(\d+)\.blocks\.(\d+)\.(.+)$", k)
            d = re.match(r"layers\.(\d+)\.downsample\.(reduction\.weight|norm\.weight|norm\.bias)$", k)
            simple = {"patch_embed.proj.weight": "v.patch_embd.weight", "patch_embed.proj.bias": "v.patch_embd.bias",
                      "patch_embed.norm.weight": "v.patch_norm.weight", "patch_embed.norm.bias": "v.patch_norm.bias",
                      "norm.weight": "v.post_ln.weight", "norm.bias": "v.post_ln.bias",
                      "head.fc.weight": "v.head.weight", "head.fc.bias": "v.head.bias"}
            s_off = 0
        if k in simple:
            out[simple[k]] = arr
        elif d:
            s = int(d.group(1)) + s_off
            out[f"v.s{s}." + {"reduction.weight": "merge.weight", "norm.weight": "merge_ln.weight",
                              "norm.bias": "merge_ln.bias"}[d.group(2)]] = arr
        elif m:
            base = f"v.s{int(m.group(1))}.blk.{int(m.group(2))}."
            for rx, target in block_rules:
                mm = rx.match(m.group(3))
                if mm:
                    name = target.format(*mm.groups())
                    if name.startswith("part."):
                        parts.setdefault(base, {})[name[5:]] = arr
                    else:
                        out[base + name] = arr
                    break
            else:
                raise ConversionError(f"{what}: tensor {key} {tuple(arr.shape)} has no place in the schema")
        else:
            raise ConversionError(f"{what}: tensor {key} {tuple(arr.shape)} has no place in the schema")
    for base, p in parts.items():
        if "q_weight" in p:  # HF: separate q, k, v
            for n in ("q_weight", "k_weight", "v_weight"):
                if n not in p:
                    raise ConversionError(f"{what}: {base} has q/k/v projections with {n[0]} missing")
            out[base + "attn_qkv.weight"] = np.concatenate([p["q_weight"], p["k_weight"], p["v_weight"]])
            bq = p.get("q_bias")
            bv = p.get("v_bias")
            if bq is not None or bv is not None:
                D = p["q_weight"].shape[0]
                z = np.zeros(D, np.float32)
                out[base + "attn_qkv.bias"] = np.concatenate([
                    z if bq is None else bq, p.get("k_bias", z), z if bv is None else bv]).astype(np.float32)
        else:  # timm V2: q_bias, v_bias
            if "q_bias" not in p or "v_bias" not in p:
                raise ConversionError(f"{what}: {base} has only one of attn.q_bias / attn.v_bias")
            out[base + "attn_qkv.bias"] = np.concatenate(
                [p["q_bias"], np.zeros_like(p["q_bias"]), p["v_bias"]]).astype(np.float32)
    if "v.position_embd.weight" in out:
        a = out["v.position_embd.weight"]
        out["v.position_embd.weight"] = np.ascontiguousarray(a.reshape(-1, a.shape[-1]))
    for k in list(out):
        if k.endswith("attn_logit_scale"):
            out[k] = np.ascontiguousarray(out[k].reshape(-1))
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


# ------------------------------------------------------------------------------- checks
def swin_hparams(*, version: int, embed_dim: int, depths, heads, patch: int, image_size, window: int,
                 window_rule: str, shift_order: str, eps: float, pad_pixels: bool, channels: int = 3,
                 stage_windows=None, stage_shifts=None, pretrained_windows=None) -> list:
    if len(depths) != len(heads) or not depths:
        raise ConversionError(f"depths {list(depths)} and num_heads {list(heads)} must be equally long and non-empty")
    dim = embed_dim
    for s, h in enumerate(heads):
        if dim % h:
            raise ConversionError(f"stage {s}: width {dim} is not divisible by {h} heads")
        dim *= 2
    hp = [("swin.version", version, U32), ("swin.embedding_length", embed_dim, U32),
          ("swin.depths", [int(d) for d in depths], U32_ARRAY), ("swin.head_counts", [int(h) for h in heads], U32_ARRAY),
          ("swin.patch_size", patch, U32), ("swin.image_size", [int(v) for v in image_size], U32_ARRAY),
          ("swin.window_size", window, U32), ("swin.num_channels", channels, U32),
          ("swin.attention.layer_norm_epsilon", float(eps), F32),
          ("swin.embed.layer_norm_epsilon", 1e-5, F32), ("swin.merge.layer_norm_epsilon", 1e-5, F32),
          ("swin.window_rule", window_rule, STR), ("swin.shift_order", shift_order, STR),
          ("swin.pad_pixels", bool(pad_pixels), BOOL), ("swin.pos_resize", "bicubic", STR)]
    if window_rule == "fixed":
        hp += [("swin.stage_windows", [int(v) for w in stage_windows for v in w], U32_ARRAY),
               ("swin.stage_shifts", [int(v) for w in stage_shifts for v in w], U32_ARRAY)]
    if pretrained_windows is not None:
        hp.append(("swin.pretrained_window_sizes", [int(v) for v in pretrained_windows], U32_ARRAY))
    return hp


def check_swin_tensors(t: Dict[str, np.ndarray], hp, what: str) -> None:
    h = {k[len("swin."):]: v for k, v, _ in hp}
    D0, P, C = h["embedding_length"], h["patch_size"], h["num_channels"]
    v2 = h["version"] == 2
    expect = {"v.patch_embd.weight": (D0, C, P, P), "v.patch_embd.bias": (D0,),
              "v.patch_norm.weight": (D0,), "v.patch_norm.bias": (D0,)}
    if "v.position_embd.weight" in t:
        ih, iw = h["image_size"]
        expect["v.position_embd.weight"] = ((ih // P) * (iw // P), D0)
    dim = D0
    for s, (depth, nh) in enumerate(zip(h["depths"], h["head_counts"])):
        if s:
            expect[f"v.s{s}.merge.weight"] = (dim * 2, dim * 4)
            dim *= 2
            nd = dim if v2 else 2 * dim
            expect[f"v.s{s}.merge_ln.weight"] = (nd,)
            expect[f"v.s{s}.merge_ln.bias"] = (nd,)
        if h["window_rule"] == "fixed":
            mh, mw = h["stage_windows"][2 * s], h["stage_windows"][2 * s + 1]
        else:
            mh = mw = h["window_size"]
        up = t.get(f"v.s{s}.blk.0.ffn_up.weight")
        if up is None:
            raise ConversionError(f"{what}: stage {s} has no blocks (v.s{s}.blk.0.ffn_up.weight missing)")
        F = up.shape[0]
        for j in range(depth):
            b = f"v.s{s}.blk.{j}."
            expect.update({b + "ln1.weight": (dim,), b + "ln1.bias": (dim,), b + "ln2.weight": (dim,),
                           b + "ln2.bias": (dim,), b + "attn_qkv.weight": (3 * dim, dim), b + "attn_qkv.bias": (3 * dim,),
                           b + "attn_out.weight": (dim, dim), b + "attn_out.bias": (dim,),
                           b + "ffn_up.weight": (F, dim), b + "ffn_up.bias": (F,),
                           b + "ffn_down.weight": (dim, F), b + "ffn_down.bias": (dim,)})
            if v2:
                hid = t.get(b + "cpb_fc1.weight", np.zeros((512, 2))).shape[0]
                expect.update({b + "attn_logit_scale": (nh,), b + "cpb_fc1.weight": (hid, 2), b + "cpb_fc1.bias": (hid,),
                               b + "cpb_fc2.weight": (nh, hid)})
            else:
                expect[b + "attn_rel_bias"] = ((2 * mh - 1) * (2 * mw - 1), nh)
    expect["v.post_ln.weight"] = (dim,)
    expect["v.post_ln.bias"] = (dim,)
    if "v.head.weight" in t:
        expect["v.head.weight"] = (t["v.head.weight"].shape[0], dim)
        expect["v.head.bias"] = (t["v.head.weight"].shape[0],)
    for name, arr in t.items():
        if name not in expect:
            raise ConversionError(f"{what}: unexpected tensor {name} {tuple(arr.shape)}")
        if tuple(arr.shape) != expect[name]:
            raise ConversionError(f"{what}: tensor {name} has shape {tuple(arr.shape)}, expected {expect[name]}")
    optional = (".bias", "v.patch_norm.weight", "v.position_embd.weight", "v.head.weight")
    for name in expect:
        if name not in t and not name.endswith(optional):
            raise ConversionError(f"{what}: tensor {name} is missing")


# ------------------------------------------------------------------------------- timm
def is_timm_swin(src: str, model_name: Optional[str]) -> bool:
    return (bool(model_name) and model_name.split(".")[0].startswith(("swin_", "swinv2_"))
            and os.path.isfile(src) and src.lower().endswith(SAFETENSORS_EXT + TORCH_EXT))


def _timm_spec(m, model_name: str) -> dict:
    from .timm_vit import _cls, _is_identity, _layer_norm_eps

    def refuse(what, why="not supported"):
        raise ConversionError(f"timm model {model_name!r}: {what} is {why}")

    cls = _cls(m)
    if cls not in ("SwinTransformer", "SwinTransformerV2"):
        refuse(f"a {cls}", "not a timm SwinTransformer / SwinTransformerV2")
    v2 = cls == "SwinTransformerV2"
    pe = m.patch_embed
    ph, pw = pe.patch_size
    if ph != pw:
        refuse("a non-square patch")
    if getattr(m, "global_pool", "avg") != "avg":
        refuse(f"global_pool={m.global_pool!r}", "not supported (avg)")
    if any(getattr(m, a, None) is not None for a in ("absolute_pos_embed", "pos_embed")):
        refuse("an absolute position embedding")
    eps, windows, shifts, heads, depths, pre = set(), [], [], [], [], []
    for s, layer in enumerate(m.layers):
        blocks = list(layer.blocks)
        if not blocks:
            refuse(f"stage {s} without blocks")
        ds = layer.downsample
        if (s == 0) != _is_identity(ds):
            refuse(f"stage {s}'s downsampling", "not where Swin has it (every stage but the first)")
        win = tuple(int(v) for v in blocks[0].window_size)
        sh = (0, 0)
        for j, blk in enumerate(blocks):
            if tuple(blk.window_size) != win:
                refuse(f"stage {s}: blocks with different windows")
            bs = tuple(int(v) for v in blk.shift_size)
            if j % 2 == 0 and any(bs):
                refuse(f"stage {s} block {j}: a shift in an even block")
            if j % 2 == 1:
                if j > 1 and bs != sh:
                    refuse(f"stage {s}: odd blocks with different shifts")
                sh = bs
            if getattr(blk, "always_partition", False):
                refuse("always_partition=True")
            if _cls(blk.mlp) != "Mlp" or _cls(blk.mlp.act) != "GELU" or getattr(blk.mlp.act, "approximate", "none") != "none":
                refuse("an MLP other than Mlp with exact GELU")
            eps.add(_layer_norm_eps(blk.norm1, f"layers.{s}.blocks.{j}.norm1"))
            eps.add(_layer_norm_eps(blk.norm2, f"layers.{s}.blocks.{j}.norm2"))
            if v2 and getattr(blk.attn, "q_bias", None) is None:
                refuse("qkv_bias=False")
        windows.append(win)
        shifts.append(sh)
        heads.append(int(blocks[0].attn.num_heads))
        depths.append(len(blocks))
        if v2:
            pre.append(int(blocks[0].attn.pretrained_window_size[0]))
    eps.add(_layer_norm_eps(m.norm, "norm"))
    if len(eps) != 1:
        refuse(f"LayerNorms with different eps {sorted(eps)}")
    img = tuple(int(v) for v in pe.img_size)
    return dict(version=2 if v2 else 1, embed_dim=int(pe.proj.out_channels), depths=depths, heads=heads,
                patch=int(ph), image_size=img, window=max(max(w) for w in windows), eps=eps.pop(),
                channels=int(pe.proj.in_channels), stage_windows=windows, stage_shifts=shifts,
                pretrained_windows=pre if v2 else None)


class _WithoutBuffers:
    """The meta model's state dict less the buffers older checkpoints carry and newer ones do not
    (relative_position_index, attn_mask, relative_coords_table, k_bias): the engine rebuilds them."""

    def __init__(self, m):
        self.m = m

    def state_dict(self):
        return {k: v for k, v in self.m.state_dict().items() if not _IGNORED.match(k)}


def load_timm_swin(src: str, *, model_name: Optional[str] = None, labels=None, name: Optional[str] = None,
                   model_kwargs: Optional[dict] = None) -> ConvertedModel:
    from .timm_vit import _compare_keys, _create_meta, _import_timm, preprocess_from_data_config
    if not model_name:
        raise ConversionError(f"{src}: give the timm model name (e.g. swin_tiny_patch4_window7_224)")
    timm = _import_timm()
    if timm is None:
        raise ConversionError("converting timm Swin models needs timm (not importable)")
    if not timm.is_model(model_name.split(".")[0]):
        raise ConversionError(f"unknown timm model {model_name!r}")
    sd = load_state_dict(os.fspath(src))
    sd = {k: v for k, v in sd.items() if not _IGNORED.match(k)}
    kwargs = dict(model_kwargs or {})
    if "num_classes" not in kwargs:
        n = sd.get("head.fc.weight")
        kwargs["num_classes"] = 0 if n is None else int(n.shape[0])
    m = _create_meta(timm, model_name, kwargs)
    _compare_keys(sd, _WithoutBuffers(m), model_name)
    s = _timm_spec(m, model_name)
    what = f"{src} ({model_name})"
    t = _map(sd, what, hf=False)
    hp = swin_hparams(window_rule="fixed", shift_order="roll_pad", pad_pixels=False, **s)
    check_swin_tensors(t, hp, what)
    from timm.data import resolve_data_config
    pre = preprocess_from_data_config(dict(resolve_data_config({}, model=m)), model_name)
    n_cls = int(t["v.head.weight"].shape[0]) if "v.head.weight" in t else 0
    default = imagenet_labels() if n_cls == 1000 else None
    cls = "timm.SwinTransformerV2" if s["version"] == 2 else "timm.SwinTransformer"
    return ConvertedModel(arch="swin", name=name or model_name, source="timm", source_class=cls, hparams=hp,
                          preprocess=pre, tensors=t, labels=resolve_labels(labels, n_cls, default))


# ------------------------------------------------------------------------------- Hugging Face
def is_hf_swin(src: str) -> bool:
    return hf_model_type(src) in ("swin", "swinv2")


def _pair(v, what: str):
    if isinstance(v, (list, tuple)):
        if len(v) != 2:
            raise ConversionError(f"{what} {list(v)} must be one number or two")
        return int(v[0]), int(v[1])
    return int(v), int(v)


def load_hf_swin(src: str, *, labels=None, name: Optional[str] = None) -> ConvertedModel:
    """A Hugging Face Swin / Swinv2 folder (transformers not needed)."""
    from ._state_dict import find_hf_weights, load_files
    cfg = hf_config(src)
    mt = cfg.get("model_type")
    v2 = mt == "swinv2"
    paths = find_hf_weights(src)
    if not paths:
        raise FileNotFoundError(f"{src} has no model.safetensors / pytorch_model.bin")
    t = _map(load_files(paths), src, hf=True)
    c = lambda k, d: cfg[k] if cfg.get(k) is not None else d  # noqa: E731  (SwinConfig defaults)
    if c("hidden_act", "gelu") != "gelu":
        raise ConversionError(f"{src}: hidden_act {cfg.get('hidden_act')!r} is not supported (gelu)")
    P = _pair(c("patch_size", 4), "patch_size")
    if P[0] != P[1]:
        raise ConversionError(f"{src}: non-square patch_size {list(P)} is not supported")
    img = _pair(c("image_size", 224), "image_size")
    depths = [int(d) for d in c("depths", [2, 2, 6, 2])]
    heads = [int(h) for h in c("num_heads", [3, 6, 12, 24])]
    M = int(c("window_size", 7))
    D0 = int(c("embed_dim", 96))
    if "v.patch_embd.weight" in t and t["v.patch_embd.weight"].shape[0] != D0:
        raise ConversionError(f"{src}: embed_dim {D0} but the patch embedding has {t['v.patch_embd.weight'].shape[0]}")
    if bool(c("use_absolute_embeddings", False)) != ("v.position_embd.weight" in t):
        raise ConversionError(f"{src}: use_absolute_embeddings={c('use_absolute_embeddings', False)} but the "
                              f"checkpoint {'has' if 'v.position_embd.weight' in t else 'has no'} position_embeddings")
    kw = dict(version=2 if v2 else 1, embed_dim=D0, depths=depths, heads=heads, patch=P[0], image_size=img,
              window=M, eps=float(c("layer_norm_eps", 1e-5)), channels=int(c("num_channels", 3)),
              shift_order="pad_roll", pad_pixels=True)
    if v2:  # Swinv2Layer._compute_window_shift at the configured size, its height entry for both axes
        wins, shifts = [], []
        gh = img[0] // P[0]
        for s in range(len(depths)):
            r = gh // (2 ** s)
            w = min(r, M)
            sh = 0 if r <= w else M // 2
            wins.append((w, w))
            shifts.append((sh, sh))
        pre = [int(v) for v in c("pretrained_window_sizes", [0] * len(depths))]
        if len(pre) < len(depths):
            raise ConversionError(f"{src}: pretrained_window_sizes {pre} has fewer entries than the {len(depths)} stages")
        pre = pre[:len(depths)]  # Swinv2Encoder reads one per stage
        hp = swin_hparams(window_rule="fixed", stage_windows=wins, stage_shifts=shifts, pretrained_windows=pre, **kw)
    else:
        hp = swin_hparams(window_rule="per_input", **kw)
    check_swin_tensors(t, hp, src)
    defaults = {"do_resize": True, "size": {"height": img[0], "width": img[1]}, "resample": 3, "do_rescale": True,
                "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": list(IMAGENET_MEAN),
                "image_std": list(IMAGENET_STD)}
    pre_spec = hf_processor_spec(src, defaults, "Swin (ViTImageProcessor)")
    n_cls = int(t["v.head.weight"].shape[0]) if "v.head.weight" in t else 0
    default = None
    id2label = cfg.get("id2label")
    if isinstance(id2label, dict) and id2label and len(id2label) == n_cls:
        try:
            default = [id2label[k] for k in sorted(id2label, key=int)]
        except (ValueError, TypeError):
            default = None
    arch_cls = str((cfg.get("architectures") or ["Swinv2Model" if v2 else "SwinModel"])[0])
    return ConvertedModel(arch="swin", name=name or folder_name(src), source=os.path.abspath(src),
                          source_class=arch_cls, hparams=hp, preprocess=pre_spec, tensors=t,
                          labels=resolve_labels(labels, n_cls, default))
