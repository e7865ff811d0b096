"""Segment Anything image encoders -> ConvertedModel (architecture ``sam``, docs/GGUF_SCHEMA.md).

Two sources:

- segment_anything checkpoints (``sam_vit_b_01ec64.pth``, ``sam_vit_l_0b3195.pth``,
  ``sam_vit_h_4b8939.pth``): a ``Sam`` state dict (``image_encoder.*``, ``prompt_encoder.*``,
  ``mask_decoder.*``) or a bare ``ImageEncoderViT`` state dict (``patch_embed.*``, ``blocks.*``,
  ``neck.*``), as .pth (read by the restricted unpickler, no torch) or .safetensors;
- Hugging Face ``SamModel`` / ``SamVisionModel`` folders (config.json ``vision_config`` or a
  ``sam_vision_model`` config).

Hyper-parameters of a segment_anything file come from the tensor shapes: D and the patch size
from the patch conv, the depth from the blocks, the MLP width from ``mlp.lin1``, the grid (so the
image size) from ``pos_embed``, the head width Dh from the rel-pos tables (heads = D / Dh), and
the window size and global blocks from the rel-pos table lengths (2 * window - 1 rows in windowed
blocks, 2 * grid - 1 in global ones). The official variants (D 768 / 1024 / 1280: depth 12 / 24 /
32, heads 12 / 16 / 16, window 14, global blocks [2,5,8,11] / [5,11,17,23] / [7,15,23,31]) are
checked against that table. What shapes cannot tell (no rel-pos tables, or every block global) is
taken from the official table for those widths, or must be given as overrides:
``convert(..., model_kwargs={"num_heads": 3, "window_size": 4, "global_attn_indexes": [1, 3]})``
(CLI: ``--model-arg num_heads=3 --model-arg window_size=4 --model-arg global_attn_indexes=[1,3]``),
named as ``ImageEncoderViT``'s arguments: ``num_heads``, ``window_size``, ``global_attn_indexes``,
``layer_norm_eps`` (the blocks' LayerNorms; default 1e-6; the neck's is 1e-6 in both references).
An override that contradicts the shapes is an error.

Prompt-encoder and mask-decoder tensors are kept (F32, or F16 for matrices at outtype f16 and
the block types) under shortened names for a later decoder: ``prompt_encoder.`` -> ``sam.pe.``,
``mask_decoder.`` -> ``sam.md.`` with ``transformer.`` -> ``tf.``, ``cross_attn_token_to_image``
-> ``x_t2i``, ``cross_attn_image_to_token`` -> ``x_i2t``, ``final_attn_token_to_image`` ->
``final_t2i``, ``output_hypernetworks_mlps`` -> ``hyper_mlps``, ``iou_prediction_head`` ->
``iou_head`` (GGUF tensor names must stay under 64 bytes). The engine does not read them.
"""
from __future__ import annotations

import os
import re
from typing import Dict, List, Optional

import numpy as np

from ._model import (BOOL, F32, STR, U32, U32_ARRAY, ConversionError, ConvertedModel, PreprocessSpec, warn)
from ._tower_common import compile_rules, folder_name, hf_config, map_state_dict, read_json

# embed dim -> (depth, heads, global_attn_indexes) of segment_anything's build_sam_vit_{b,l,h}
OFFICIAL = {768: (12, 12, (2, 5, 8, 11)), 1024: (24, 16, (5, 11, 17, 23)),
            1280: (32, 16, (7, 15, 23, 31))}
OFFICIAL_WINDOW = 14
SAM_MEAN = (123.675 / 255, 116.28 / 255, 103.53 / 255)
SAM_STD = (58.395 / 255, 57.12 / 255, 57.375 / 255)
DECODER_PREFIXES = ("sam.pe.", "sam.md.", "sam.shared_pe.")
MAX_TENSOR_NAME = 63  # ggml's GGML_MAX_NAME (64) with its terminating NUL

_SA_BLOCK = r"blocks\.(\d+)\."
SA_RULES = compile_rules([
    (r"patch_embed\.proj\.(weight|bias)", "v.patch_embd.{0}"),
    (_SA_BLOCK + r"norm1\.(weight|bias)", "v.blk.{0}.ln1.{1}"),
    (_SA_BLOCK + r"norm2\.(weight|bias)", "v.blk.{0}.ln2.{1}"),
    (_SA_BLOCK + r"attn\.qkv\.(weight|bias)", "v.blk.{0}.attn_qkv.{1}"),
    (_SA_BLOCK + r"attn\.proj\.(weight|bias)", "v.blk.{0}.attn_out.{1}"),
    (_SA_BLOCK + r"attn\.rel_pos_h", "v.blk.{0}.attn_rel_h"),
    (_SA_BLOCK + r"attn\.rel_pos_w", "v.blk.{0}.attn_rel_w"),
    (_SA_BLOCK + r"mlp\.lin1\.(weight|bias)", "v.blk.{0}.ffn_up.{1}"),
    (_SA_BLOCK + r"mlp\.lin2\.(weight|bias)", "v.blk.{0}.ffn_down.{1}"),
    (r"neck\.(\d)\.(weight|bias)", "v.neck.{0}.{1}"),
])
_HF_LAYER = r"layers\.(\d+)\."
HF_RULES = compile_rules([
    (r"patch_embed\.projection\.(weight|bias)", "v.patch_embd.{0}"),
    (_HF_LAYER + r"layer_norm1\.(weight|bias)", "v.blk.{0}.ln1.{1}"),
    (_HF_LAYER + r"layer_norm2\.(weight|bias)", "v.blk.{0}.ln2.{1}"),
    (_HF_LAYER + r"attn\.qkv\.(weight|bias)", "v.blk.{0}.attn_qkv.{1}"),
    (_HF_LAYER + r"attn\.proj\.(weight|bias)", "v.blk.{0}.attn_out.{1}"),
    (_HF_LAYER + r"attn\.rel_pos_h", "v.blk.{0}.attn_rel_h"),
    (_HF_LAYER + r"attn\.rel_pos_w", "v.blk.{0}.attn_rel_w"),
    (_HF_LAYER + r"mlp\.lin1\.(weight|bias)", "v.blk.{0}.ffn_up.{1}"),
    (_HF_LAYER + r"mlp\.lin2\.(weight|bias)", "v.blk.{0}.ffn_down.{1}"),
    (r"neck\.conv1\.weight", "v.neck.0.weight"),
    (r"neck\.layer_norm1\.(weight|bias)", "v.neck.1.{0}"),
    (r"neck\.conv2\.weight", "v.neck.2.weight"),
    (r"neck\.layer_norm2\.(weight|bias)", "v.neck.3.{0}"),
])
_SHORT = [("transformer.", "tf."), ("cross_attn_token_to_image", "x_t2i"),
          ("cross_attn_image_to_token", "x_i2t"), ("final_attn_token_to_image", "final_t2i"),
          ("output_hypernetworks_mlps", "hyper_mlps"), ("iou_prediction_head", "iou_head")]


def decoder_tensor_name(key: str) -> str:
    """``prompt_encoder.*`` / ``mask_decoder.*`` (HF also ``shared_image_embedding.*``) checkpoint
    name -> its GGUF name."""
    for src, dst in (("prompt_encoder.", "sam.pe."), ("mask_decoder.", "sam.md."),
                     ("shared_image_embedding.", "sam.shared_pe.")):
        if key.startswith(src):
            name = dst + key[len(src):]
            break
    else:
        raise ValueError(key)
    for a, b in _SHORT:
        name = name.replace(a, b)
    if len(name) > MAX_TENSOR_NAME:
        raise ConversionError(f"decoder tensor {key} gives the GGUF name {name!r}, longer than "
                              f"{MAX_TENSOR_NAME} bytes")
    return name


# ------------------------------------------------------------------------------- detection
def _encoder_keys(keys) -> Optional[str]:
    """'sam' (a Sam state dict), 'encoder' (a bare ImageEncoderViT one) or None."""
    keys = set(keys)
    if "image_encoder.patch_embed.proj.weight" in keys and "image_encoder.neck.0.weight" in keys:
        return "sam"
    if "patch_embed.proj.weight" in keys and "neck.0.weight" in keys and "blocks.0.attn.qkv.weight" in keys:
        return "encoder"
    return None


def is_sam_checkpoint(src: str) -> bool:
    from ._state_dict import state_dict_keys_or_none
    keys = state_dict_keys_or_none(src)
    return keys is not None and _encoder_keys(keys) is not None


def is_hf_sam(src: str) -> bool:
    from ._tower_common import hf_model_type
    return hf_model_type(src) in ("sam", "sam_vision_model")


# ------------------------------------------------------------------------------- hparams
def _block_ids(t: Dict[str, np.ndarray]) -> List[int]:
    return sorted({int(m.group(1)) for k in t for m in [re.match(r"v\.blk\.(\d+)\.", k)] if m})


def sam_hparams(t: Dict[str, np.ndarray], *, num_heads: Optional[int], window_size: Optional[int],
                global_attn_indexes, layer_norm_eps: float, use_abs_pos: Optional[bool] = None,
                use_rel_pos: Optional[bool] = None, image_size: Optional[int] = None, what: str):
    """The ``sam.*`` keys for mapped tensors ``t``; None arguments are read from the shapes (or the
    official table). Raises ConversionError naming what contradicts what."""
    if "v.patch_embd.weight" not in t:
        raise ConversionError(f"{what}: the patch embedding (patch_embed) is missing")
    D, C, P, P2 = t["v.patch_embd.weight"].shape
    if P != P2:
        raise ConversionError(f"{what}: non-square patch {P}x{P2} is not supported")
    blocks = _block_ids(t)
    L = len(blocks)
    if L == 0 or blocks != list(range(L)):
        raise ConversionError(f"{what}: blocks {blocks[:8]}... are not numbered 0..L-1")
    F = t["v.blk.0.ffn_up.weight"].shape[0] if "v.blk.0.ffn_up.weight" in t else None
    if F is None:
        raise ConversionError(f"{what}: block 0 has no MLP (mlp.lin1)")
    if "v.neck.0.weight" not in t:
        raise ConversionError(f"{what}: the neck (neck.0) is missing")
    out_ch = t["v.neck.0.weight"].shape[0]
    has_pos = "v.position_embd.weight" in t
    if use_abs_pos is not None and use_abs_pos != has_pos:
        raise ConversionError(f"{what}: use_abs_pos={use_abs_pos} but the checkpoint "
                              f"{'has' if has_pos else 'has no'} pos_embed")
    if has_pos:
        pe = t["v.position_embd.weight"]
        if pe.ndim != 4 or pe.shape[0] != 1 or pe.shape[1] != pe.shape[2] or pe.shape[3] != D:
            raise ConversionError(f"{what}: pos_embed has shape {pe.shape}, expected [1, g, g, {D}]")
        grid = pe.shape[1]
        if image_size is not None and image_size != grid * P:
            raise ConversionError(f"{what}: image_size {image_size} but pos_embed is a {grid}x{grid} grid of "
                                  f"{P}-pixel patches ({grid * P})")
    elif image_size is not None:
        grid = image_size // P
    else:
        grid = 1024 // P
        warn(f"{what}: no pos_embed; assuming segment_anything's image size 1024")
    rel_rows = [t[f"v.blk.{i}.attn_rel_h"].shape[0] if f"v.blk.{i}.attn_rel_h" in t else None for i in range(L)]
    has_rel = all(r is not None for r in rel_rows)
    if any(r is not None for r in rel_rows) and not has_rel:
        raise ConversionError(f"{what}: only some blocks have rel-pos tables")
    if use_rel_pos is not None and use_rel_pos != has_rel:
        raise ConversionError(f"{what}: use_rel_pos={use_rel_pos} but the checkpoint "
                              f"{'has' if has_rel else 'has no'} rel_pos tables")
    official = OFFICIAL.get(D) if (L == OFFICIAL.get(D, (0,))[0]) else None

    # heads: from the rel-pos tables' width (Dh), else the override, else the official table
    if has_rel:
        dh = t["v.blk.0.attn_rel_h"].shape[1]
        if D % dh:
            raise ConversionError(f"{what}: rel_pos tables are {dh} wide, not a divisor of D = {D}")
        if num_heads is not None and num_heads != D // dh:
            raise ConversionError(f"{what}: num_heads={num_heads} but the rel_pos tables give {D // dh} "
                                  f"heads of {dh}")
        num_heads = D // dh
    elif num_heads is None:
        if official is None:
            raise ConversionError(f"{what}: cannot tell the head count without rel_pos tables; give it "
                                  "(model_kwargs={'num_heads': ...}, CLI --model-arg num_heads=...)")
        num_heads = official[1]
    if D % num_heads:
        raise ConversionError(f"{what}: D = {D} is not divisible by num_heads = {num_heads}")

    # window and global blocks: from the rel-pos table lengths, else the overrides / table
    if has_rel:
        sizes = [(r + 1) // 2 for r in rel_rows]
        if any(r % 2 == 0 for r in rel_rows):
            raise ConversionError(f"{what}: rel_pos tables must have 2 g - 1 rows, got {rel_rows}")
        windows = sorted({s for s in sizes if s != grid})
        if len(windows) > 1:
            raise ConversionError(f"{what}: rel_pos tables give several window sizes {windows}")
        if windows:
            w = windows[0]
            glob = [i for i, s in enumerate(sizes) if s == grid]
        else:  # every table spans the grid: all global, or window == grid (indistinguishable)
            w = window_size if window_size is not None else 0
            glob = list(global_attn_indexes) if global_attn_indexes is not None else list(range(L))
        if window_size is not None and window_size != w and windows:
            raise ConversionError(f"{what}: window_size={window_size} but the rel_pos tables give {w}")
        if global_attn_indexes is not None and sorted(global_attn_indexes) != glob and windows:
            raise ConversionError(f"{what}: global_attn_indexes={list(global_attn_indexes)} but the rel_pos "
                                  f"tables give {glob}")
    else:
        if window_size is None or global_attn_indexes is None:
            if official is None:
                raise ConversionError(f"{what}: cannot tell the window size and global blocks without rel_pos "
                                      "tables; give window_size and global_attn_indexes (model_kwargs / "
                                      "--model-arg)")
        w = window_size if window_size is not None else OFFICIAL_WINDOW
        glob = list(global_attn_indexes) if global_attn_indexes is not None else list(official[2])
    if official is not None and (num_heads, tuple(glob), w) != (official[1], official[2], OFFICIAL_WINDOW):
        warn(f"{what}: D = {D}, depth {L} looks like an official SAM variant but heads {num_heads}, window {w}, "
             f"global blocks {glob} differ from it")
    if any(not 0 <= i < L for i in glob):
        raise ConversionError(f"{what}: global_attn_indexes {glob} outside the {L} blocks")
    if not 0 <= w <= grid:
        raise ConversionError(f"{what}: window_size {w} outside [0, {grid}]")
    qkv_bias = "v.blk.0.attn_qkv.bias" in t
    return [
        ("sam.block_count", L, U32), ("sam.embedding_length", D, U32), ("sam.feed_forward_length", F, U32),
        ("sam.attention.head_count", num_heads, U32),
        ("sam.attention.layer_norm_epsilon", float(layer_norm_eps), F32),
        # LayerNorm2d (segment_anything) / SamLayerNorm (HF): 1e-6 whatever the blocks use
        ("sam.neck.layer_norm_epsilon", 1e-6, F32),
        ("sam.patch_size", P, U32), ("sam.image_size", grid * P, U32), ("sam.num_channels", C, U32),
        ("sam.window_size", w, U32), ("sam.global_attn_indexes", sorted(glob), U32_ARRAY),
        ("sam.output_channels", out_ch, U32),
        # segment_anything / HF run at the native size only; timm's SAM ViT resizes the table so
        ("sam.pos_resize", "bicubic_antialias", STR),
        ("sam.use_rel_pos", has_rel, BOOL), ("sam.use_abs_pos", has_pos, BOOL), ("sam.qkv_bias", qkv_bias, BOOL),
    ]


def sam_preprocess(image_size: int, mean=SAM_MEAN, std=SAM_STD, rescale: float = 1 / 255) -> PreprocessSpec:
    return PreprocessSpec(image_size=(image_size, image_size), resize_mode="longest_edge_pad", crop_pct=1.0,
                          interpolation="bilinear", mean=tuple(mean), std=tuple(std), rescale_factor=rescale,
                          resize_size=(image_size, image_size))


def check_sam_tensors(t: Dict[str, np.ndarray], hp, what: str) -> None:
    h = {k[len("sam."):]: v for k, v, _ in hp}
    L, D, F, C = h["block_count"], h["embedding_length"], h["feed_forward_length"], h["output_channels"]
    P, grid, dh = h["patch_size"], h["image_size"] // h["patch_size"], D // h["attention.head_count"]
    expect = {"v.patch_embd.weight": (D, h["num_channels"], P, P), "v.patch_embd.bias": (D,),
              "v.position_embd.weight": (1, grid, grid, D), "v.neck.0.weight": (C, D),
              "v.neck.1.weight": (C,), "v.neck.1.bias": (C,), "v.neck.2.weight": (C, C, 3, 3),
              "v.neck.3.weight": (C,), "v.neck.3.bias": (C,)}
    glob = set(h["global_attn_indexes"])
    for i in range(L):
        b = f"v.blk.{i}."
        g = grid if (i in glob or h["window_size"] == 0) else h["window_size"]
        expect.update({b + "ln1.weight": (D,), b + "ln1.bias": (D,), b + "ln2.weight": (D,), b + "ln2.bias": (D,),
                       b + "attn_qkv.weight": (3 * D, D), b + "attn_qkv.bias": (3 * D,),
                       b + "attn_out.weight": (D, D), b + "attn_out.bias": (D,),
                       b + "ffn_up.weight": (F, D), b + "ffn_up.bias": (F,),
                       b + "ffn_down.weight": (D, F), b + "ffn_down.bias": (D,),
                       b + "attn_rel_h": (2 * g - 1, dh), b + "attn_rel_w": (2 * g - 1, dh)})
    for name, arr in t.items():
        if name.startswith(DECODER_PREFIXES):
            continue
        if name not in expect:
            raise ConversionError(f"{what}: unexpected tensor {name}")
        if tuple(arr.shape) != expect[name]:
            raise ConversionError(f"{what}: tensor {name} has shape {tuple(arr.shape)}, expected {expect[name]}")
    for name in expect:
        if name not in t and not name.endswith(".bias") and "rel_" not in name and "position" not in name:
            raise ConversionError(f"{what}: tensor {name} is missing")


def _finish(t: Dict[str, np.ndarray], hp, *, name: str, source: str, source_class: str, preprocess,
            notes: List[str]) -> ConvertedModel:
    # a 1x1 conv is a Linear over channels: [C, D] keeps D innermost, so block types apply
    n0 = t.get("v.neck.0.weight")
    if n0 is not None and n0.ndim == 4 and n0.shape[2:] == (1, 1):
        t["v.neck.0.weight"] = np.ascontiguousarray(n0.reshape(n0.shape[:2]))
    check_sam_tensors(t, hp, source)
    pe = t.get("v.position_embd.weight")
    if pe is not None:
        t["v.position_embd.weight"] = np.ascontiguousarray(pe[0])  # [g, g, D]
    return ConvertedModel(arch="sam", name=name, source=source, source_class=source_class, hparams=hp,
                          preprocess=preprocess, tensors=t, notes=notes)


def _overrides(model_kwargs: Optional[dict]) -> dict:
    allowed = {"num_heads", "window_size", "global_attn_indexes", "layer_norm_eps"}
    kw = dict(model_kwargs or {})
    bad = sorted(set(kw) - allowed)
    if bad:
        raise ConversionError(f"unknown SAM model argument(s) {', '.join(bad)} (known: {', '.join(sorted(allowed))})")
    return kw


# ------------------------------------------------------------------------------- loaders
def load_sam_checkpoint(src: str, *, name: Optional[str] = None, model_kwargs: Optional[dict] = None,
                        labels=None) -> ConvertedModel:
    """A segment_anything .pth/.safetensors (``Sam`` or ``ImageEncoderViT`` state dict)."""
    from .cnn import read_state_dict
    if labels is not None:
        warn("labels given but SAM has no classifier head: labels not written")
    kw = _overrides(model_kwargs)
    sd = read_state_dict(src)
    kind = _encoder_keys(sd.keys())
    if kind is None:
        raise ConversionError(f"{src} is not a segment_anything state dict (no image_encoder.patch_embed / neck)")
    enc: Dict[str, np.ndarray] = {}
    dec: Dict[str, np.ndarray] = {}
    mean, std = SAM_MEAN, SAM_STD
    for k, v in sd.items():
        if kind == "sam" and k.startswith("image_encoder."):
            enc[k[len("image_encoder."):]] = v
        elif kind == "encoder" and not k.startswith(("prompt_encoder.", "mask_decoder.")):
            enc[k] = v
        elif k.startswith(("prompt_encoder.", "mask_decoder.")):
            dec[decoder_tensor_name(k)] = np.ascontiguousarray(v, dtype=np.float32)
        elif k == "pixel_mean":
            mean = tuple(float(x) / 255 for x in np.asarray(v).ravel())
        elif k == "pixel_std":
            std = tuple(float(x) / 255 for x in np.asarray(v).ravel())
        else:
            raise ConversionError(f"{src}: tensor {k} {tuple(np.shape(v))} has no place in the schema")
    pos = enc.pop("pos_embed", None)  # map_state_dict would flatten it
    t = map_state_dict(enc, SA_RULES, what=src)
    if pos is not None:
        t["v.position_embd.weight"] = pos
    hp = sam_hparams(t, num_heads=kw.get("num_heads"), window_size=kw.get("window_size"),
                     global_attn_indexes=kw.get("global_attn_indexes"), layer_norm_eps=kw.get("layer_norm_eps", 1e-6),
                     what=src)
    t.update(dec)
    notes = [f"kept {len(dec)} prompt-encoder / mask-decoder tensors (sam.pe.*, sam.md.*; not run by the engine)"] \
        if dec else []
    if dec:
        hp.append(("sam.decoder_layout", "segment_anything", STR))
    h = {k: v for k, v, _ in hp}
    return _finish(t, hp, name=name or os.path.splitext(os.path.basename(src))[0], source=os.path.abspath(src),
                   source_class="segment_anything.ImageEncoderViT", preprocess=sam_preprocess(h["sam.image_size"]),
                   notes=notes)


def load_hf_sam(src: str, *, labels=None, name: Optional[str] = None) -> ConvertedModel:
    """A Hugging Face ``SamModel`` / ``SamVisionModel`` folder (transformers not needed)."""
    from ._state_dict import find_hf_weights, load_files
    if labels is not None:
        warn("labels given but SAM has no classifier head: labels not written")
    cfg = hf_config(src)
    vc = cfg.get("vision_config", cfg) if cfg.get("model_type") == "sam" else cfg
    vc = vc or {}
    paths = find_hf_weights(src)
    if not paths:
        raise FileNotFoundError(f"{src} has no model.safetensors / pytorch_model.bin")
    sd = load_files(paths)
    enc: Dict[str, np.ndarray] = {}
    dec: Dict[str, np.ndarray] = {}
    for k, v in sd.items():
        if k.startswith("vision_encoder."):
            enc[k[len("vision_encoder."):]] = v
        elif k.startswith(("prompt_encoder.", "mask_decoder.", "shared_image_embedding.")):
            dec[decoder_tensor_name(k)] = np.ascontiguousarray(v, dtype=np.float32)
        else:
            raise ConversionError(f"{src}: tensor {k} {tuple(v.shape)} has no place in the schema")
    pos = enc.pop("pos_embed", None)
    t = map_state_dict(enc, HF_RULES, what=src)
    if pos is not None:
        t["v.position_embd.weight"] = pos
    # HF defaults (SamVisionConfig) for keys a config leaves out
    D = int(vc.get("hidden_size", 768))
    if vc.get("hidden_act", "gelu") != "gelu":
        raise ConversionError(f"{src}: hidden_act {vc.get('hidden_act')!r} is not supported (gelu)")
    if D != t["v.patch_embd.weight"].shape[0]:
        raise ConversionError(f"{src}: hidden_size {D} but the patch embedding has {t['v.patch_embd.weight'].shape[0]}")
    L = int(vc.get("num_hidden_layers", 12))
    if len(_block_ids(t)) != L:
        raise ConversionError(f"{src}: num_hidden_layers {L} but the checkpoint has {len(_block_ids(t))} layers")
    out_ch = int(vc.get("output_channels", 256))
    if t["v.neck.0.weight"].shape[0] != out_ch:
        raise ConversionError(f"{src}: output_channels {out_ch} but neck.conv1 has {t['v.neck.0.weight'].shape[0]}")
    hp = sam_hparams(t, num_heads=int(vc.get("num_attention_heads", 12)), window_size=int(vc.get("window_size", 14)),
                     global_attn_indexes=list(vc.get("global_attn_indexes", [2, 5, 8, 11])),
                     layer_norm_eps=float(vc.get("layer_norm_eps", 1e-6)),
                     use_abs_pos=bool(vc.get("use_abs_pos", True)), use_rel_pos=bool(vc.get("use_rel_pos", True)),
                     image_size=int(vc.get("image_size", 1024)), what=src)
    h = {k: v for k, v, _ in hp}
    if "mlp_dim" in vc and vc["mlp_dim"] is not None and int(vc["mlp_dim"]) != h["sam.feed_forward_length"]:
        raise ConversionError(f"{src}: mlp_dim {vc['mlp_dim']} but mlp.lin1 has {h['sam.feed_forward_length']} rows")
    pre = sam_preprocess(h["sam.image_size"])
    pp = os.path.join(src, "preprocessor_config.json")
    if os.path.isfile(pp):
        pc = read_json(pp)
        if pc.get("do_normalize", True) is not False:
            pre = sam_preprocess(h["sam.image_size"], mean=pc.get("image_mean", SAM_MEAN), std=pc.get("image_std", SAM_STD),
                                 rescale=float(pc.get("rescale_factor", 1 / 255)))
    t.update(dec)
    notes = [f"kept {len(dec)} prompt-encoder / mask-decoder tensors (sam.pe.*, sam.md.*, sam.shared_pe.*; "
             "not run by the engine)"] if dec else []
    if dec:
        hp.append(("sam.decoder_layout", "hf", STR))
    return _finish(t, hp, name=name or folder_name(src), source=os.path.abspath(src),
                   source_class=str((cfg.get("architectures") or ["SamVisionModel"])[0]), preprocess=pre, notes=notes)
