"""What the vision-tower loaders (CLIP, SigLIP, DINOv2; HF, timm, open_clip) share: the
hyper-parameter keys of docs/GGUF_SCHEMA.md's tower sections, a rule-table state-dict mapper,
a shape check of the result and Hugging Face processor configs read as a PreprocessSpec."""
from __future__ import annotations

import json
import os
import re
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from ._model import F32, STR, U32, ConversionError, PreprocessSpec, warn

ACTIVATIONS = ("gelu", "gelu_tanh", "quick_gelu")
POOLINGS = ("cls", "avg", "map")
POS_RESIZE = ("none", "bicubic", "bicubic_antialias")
HF_ACT = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
          "quick_gelu": "quick_gelu"}

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def key_prefix(arch: str) -> str:
    # CLIP files use llama.cpp's mmproj key names, so the engine reads both with one code path.
    return "clip.vision." if arch == "clip" else arch + "."


def tower_hparams(arch: str, *, block_count: int, embedding_length: int, feed_forward_length: int,
                  head_count: int, layer_norm_epsilon: float, patch_size: int, image_size: int,
                  hidden_act: str, pooling: str, pos_resize: str, post_norm: str = "tokens",
                  num_channels: int = 3, projection_dim: int = 0) -> List[Tuple[str, object, str]]:
    if hidden_act not in ACTIVATIONS:
        raise ConversionError(f"activation {hidden_act!r} is not supported (supported: {ACTIVATIONS})")
    if pooling not in POOLINGS:
        raise ConversionError(f"pooling {pooling!r} is not supported (supported: {POOLINGS})")
    if pos_resize not in POS_RESIZE:
        raise ConversionError(f"position resize {pos_resize!r} is not supported")
    if embedding_length % head_count:
        raise ConversionError(f"hidden size {embedding_length} is not divisible by {head_count} heads")
    if image_size % patch_size:
        raise ConversionError(f"image size {image_size} is not a multiple of the patch size {patch_size}")
    p = key_prefix(arch)
    hp = [
        (p + "block_count", block_count, U32),
        (p + "embedding_length", embedding_length, U32),
        (p + "feed_forward_length", feed_forward_length, U32),
        (p + "attention.head_count", head_count, U32),
        (p + "attention.layer_norm_epsilon", layer_norm_epsilon, F32),
        (p + "patch_size", patch_size, U32),
        (p + "image_size", image_size, U32),
        (p + "num_channels", num_channels, U32),
        (p + "hidden_act", hidden_act, STR),
        (p + "pooling", pooling, STR),
        (p + "pos_resize", pos_resize, STR),
        (p + "post_norm", post_norm, STR),
    ]
    if projection_dim:
        hp.append((p + "projection_dim", projection_dim, U32))
    return hp


# HF CLIP and SigLIP vision towers share their embedding and encoder-layer names (optionally under
# `vision_model.` when the folder holds the two-tower model).
HF_VISION = r"(?:vision_model\.)?"
_HF_LAYER = HF_VISION + r"encoder\.layers\.(\d+)\."
HF_CLIP_STYLE_RULES = [
    (HF_VISION + r"embeddings\.patch_embedding\.(weight|bias)", "v.patch_embd.{0}"),
    (HF_VISION + r"embeddings\.position_embedding\.weight", "v.position_embd.weight"),
    (_HF_LAYER + r"self_attn\.q_proj\.(weight|bias)", "v.blk.{0}.attn_q.{1}"),
    (_HF_LAYER + r"self_attn\.k_proj\.(weight|bias)", "v.blk.{0}.attn_k.{1}"),
    (_HF_LAYER + r"self_attn\.v_proj\.(weight|bias)", "v.blk.{0}.attn_v.{1}"),
    (_HF_LAYER + r"self_attn\.out_proj\.(weight|bias)", "v.blk.{0}.attn_out.{1}"),
    (_HF_LAYER + r"layer_norm1\.(weight|bias)", "v.blk.{0}.ln1.{1}"),
    (_HF_LAYER + r"layer_norm2\.(weight|bias)", "v.blk.{0}.ln2.{1}"),
    (_HF_LAYER + r"mlp\.fc1\.(weight|bias)", "v.blk.{0}.ffn_up.{1}"),
    (_HF_LAYER + r"mlp\.fc2\.(weight|bias)", "v.blk.{0}.ffn_down.{1}"),
    (HF_VISION + r"post_layernorm\.(weight|bias)", "v.post_ln.{0}"),
]


def compile_rules(rules: Sequence[Tuple[str, str]]):
    return [(re.compile(p + r"$"), out) for p, out in rules]


def map_state_dict(sd: Dict[str, np.ndarray], rules, ignored: Iterable[str] = (), what: str = "checkpoint"
                   ) -> Dict[str, np.ndarray]:
    """Rename by the first matching rule; ``ignored`` are regexes of tensors dropped on purpose.
    A target starting with ``split2:`` / ``split3:`` is a tensor cut in equal row blocks into the
    comma-separated targets (fused q/k/v, SwiGLU gate/up)."""
    ign = [re.compile(p + r"$") for p in ignored]
    out: Dict[str, np.ndarray] = {}
    for key, arr in sd.items():
        for rx, target in rules:
            m = rx.match(key)
            if m:
                break
        else:
            if any(r.match(key) for r in ign):
                continue
            raise ConversionError(f"{what}: tensor {key} {tuple(arr.shape)} has no place in the schema")
        target = target.format(*m.groups())
        if target.startswith("split:"):
            names = target[len("split:"):].split(",")
            n = arr.shape[0]
            if n % len(names):
                raise ConversionError(f"{what}: {key} has {n} rows, not divisible into {len(names)} parts")
            for i, name in enumerate(names):
                out[name] = arr[i * n // len(names):(i + 1) * n // len(names)]
        else:
            out[target] = arr
    for name in ("v.class_embd", "v.map.probe"):
        if name in out:
            out[name] = np.ascontiguousarray(out[name].reshape(-1))
    for name in ("v.position_embd.weight", "v.reg_embd"):
        if name in out:
            a = out[name]
            out[name] = np.ascontiguousarray(a.reshape(-1, a.shape[-1]))
    return out


def check_tower_tensors(t: Dict[str, np.ndarray], hp, arch: str) -> None:
    """Every tensor has the schema's shape (docs/GGUF_SCHEMA.md); the required ones are present."""
    p = key_prefix(arch)
    h = {k[len(p):]: v for k, v, _ in hp if k.startswith(p)}
    L, D, F = h["block_count"], h["embedding_length"], h["feed_forward_length"]
    P, S, C = h["patch_size"], h["image_size"], h["num_channels"]
    n_reg = t["v.reg_embd"].shape[0] if "v.reg_embd" in t else 0
    n_prefix = int("v.class_embd" in t) + n_reg
    expect = {"v.patch_embd.weight": (D, C, P, P), "v.patch_embd.bias": (D,), "v.class_embd": (D,),
              "v.reg_embd": (n_reg, D), "v.pre_ln.weight": (D,), "v.pre_ln.bias": (D,),
              "v.post_ln.weight": (D,), "v.post_ln.bias": (D,), "v.map.probe": (D,)}
    if "v.position_embd.weight" in t:
        rows = t["v.position_embd.weight"].shape[0] - (S // P) ** 2
        if not 0 <= rows <= n_prefix:
            raise ConversionError(f"position table {t['v.position_embd.weight'].shape} does not fit a "
                                  f"{S // P}x{S // P} patch grid plus {n_prefix} prefix tokens")
        expect["v.position_embd.weight"] = (rows + (S // P) ** 2, D)
    if "v.proj.weight" in t:
        expect["v.proj.weight"] = (h.get("projection_dim", -1), D)
    for n in ("attn_q", "attn_k", "attn_v", "attn_out"):
        expect[f"v.map.{n}.weight"], expect[f"v.map.{n}.bias"] = (D, D), (D,)
    expect.update({"v.map.ln.weight": (D,), "v.map.ln.bias": (D,), "v.map.ffn_up.weight": (F, D),
                   "v.map.ffn_up.bias": (F,), "v.map.ffn_down.weight": (D, F), "v.map.ffn_down.bias": (D,)})
    required = ["v.patch_embd.weight"]
    for i in range(L):
        b = f"v.blk.{i}."
        for n in ("attn_q", "attn_k", "attn_v", "attn_out"):
            expect[b + n + ".weight"], expect[b + n + ".bias"] = (D, D), (D,)
        for n in ("ln1", "ln2"):
            expect[b + n + ".weight"], expect[b + n + ".bias"] = (D,), (D,)
        expect.update({b + "ls1": (D,), b + "ls2": (D,), b + "ffn_up.weight": (F, D), b + "ffn_up.bias": (F,),
                       b + "ffn_gate.weight": (F, D), b + "ffn_gate.bias": (F,),
                       b + "ffn_down.weight": (D, F), b + "ffn_down.bias": (D,)})
        required += [b + n for n in ("ln1.weight", "attn_q.weight", "attn_k.weight", "attn_v.weight",
                                     "attn_out.weight", "ln2.weight", "ffn_up.weight", "ffn_down.weight")]
    for name in required:
        if name not in t:
            raise ConversionError(f"tensor {name} missing after conversion (incomplete checkpoint?)")
    for name, arr in t.items():
        if name not in expect:
            raise ConversionError(f"internal: unexpected tensor {name}")
        if tuple(arr.shape) != tuple(expect[name]):
            raise ConversionError(f"tensor {name} has shape {tuple(arr.shape)}, expected {tuple(expect[name])} "
                                  "(checkpoint does not match its configuration)")
    if h["pooling"] == "map" and "v.map.probe" not in t:
        raise ConversionError("pooling 'map' needs the attention-pooling head")
    if h["pooling"] == "cls" and "v.class_embd" not in t:
        raise ConversionError("pooling 'cls' needs a class token")


# --------------------------------------------------------------------------- HF folders
def read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except ValueError as e:
        raise ConversionError(f"{path} is not valid JSON: {e}") from e


def hf_config(src: str) -> dict:
    src = os.fspath(src)
    if not os.path.isdir(src):
        raise FileNotFoundError(f"Hugging Face model folder not found: {src}")
    path = os.path.join(src, "config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{src} has no config.json: not a Hugging Face model folder")
    return read_json(path)


def hf_model_type(src: str) -> Optional[str]:
    path = os.path.join(src, "config.json")
    if not (os.path.isdir(src) and os.path.isfile(path)):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f).get("model_type")
    except (OSError, ValueError):
        return None


def square(value, what: str) -> int:
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or value[0] != value[1]:
            raise ConversionError(f"non-square {what} {list(value)} is not supported")
        value = value[0]
    return int(value)


_RESAMPLE = {2: "bilinear", 3: "bicubic", "bilinear": "bilinear", "bicubic": "bicubic"}


def hf_processor_spec(folder: str, defaults: dict, family: str) -> PreprocessSpec:
    """PreprocessSpec of ``folder``'s preprocessor_config.json (keys it leaves out, or the whole
    file when absent, from ``defaults``: the processor class defaults of that family)."""
    path = os.path.join(folder, "preprocessor_config.json")
    if os.path.isfile(path):
        cfg = read_json(path)
    else:
        warn(f"no preprocessor_config.json in {folder}: using the {family} processor defaults")
        cfg = {}
    get = lambda k: cfg[k] if cfg.get(k) is not None else defaults.get(k)  # noqa: E731
    if get("do_resize") is False:
        raise ConversionError(f"{path}: do_resize=false is not supported (the model needs a fixed input size)")
    size = get("size")
    if isinstance(size, int):
        size = {"shortest_edge": size} if get("do_center_crop") else {"height": size, "width": size}
    resample = get("resample")
    if isinstance(resample, str):
        resample = resample.lower()
    if resample not in _RESAMPLE:
        raise ConversionError(f"{path}: resample {resample!r} is not supported (bilinear, bicubic)")
    do_crop = bool(get("do_center_crop"))
    crop = get("crop_size") if do_crop else None
    if isinstance(crop, int):
        crop = {"height": crop, "width": crop}
    if "height" in size and "width" in size:
        resize, mode = (int(size["height"]), int(size["width"])), "squash"
        if do_crop:
            raise ConversionError(f"{path}: a squash resize followed by a centre crop is not supported")
    elif "shortest_edge" in size:
        if not do_crop:
            raise ConversionError(f"{path}: a shortest-edge resize without a centre crop gives inputs of "
                                  "varying size; not supported")
        resize, mode = (int(size["shortest_edge"]),) * 2, "shortest_edge_crop"
    else:
        raise ConversionError(f"{path}: processor size {size} is not supported")
    final = (int(crop["height"]), int(crop["width"])) if do_crop else resize
    rescale = float(get("rescale_factor")) if get("do_rescale") is not False else 1.0
    if get("do_normalize") is not False:
        mean, std = get("image_mean"), get("image_std")
        mean = [mean] * 3 if isinstance(mean, (int, float)) else list(mean)
        std = [std] * 3 if isinstance(std, (int, float)) else list(std)
    else:
        mean, std = [0.0] * 3, [1.0] * 3
    return PreprocessSpec(image_size=final, resize_mode=mode, crop_pct=final[0] / resize[0],
                          interpolation=_RESAMPLE[resample], mean=tuple(mean), std=tuple(std),
                          rescale_factor=rescale, resize_size=resize, crop_rounding="floor")


def folder_name(src: str) -> str:
    return os.path.basename(os.path.normpath(os.path.abspath(src)))
