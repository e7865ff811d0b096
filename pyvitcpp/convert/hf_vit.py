"""Hugging Face ``transformers`` ViT and DeiT folders -> ConvertedModel.

A folder holds ``config.json`` and ``model.safetensors`` (or ``pytorch_model.bin``, or sharded
versions with an index), and usually ``preprocessor_config.json``.  transformers is not needed.

Mapping to the schema:

=========================================  =====================================================
checkpoint (``vit.``/``deit.`` prefix dropped)   GGUF
=========================================  =====================================================
embeddings.cls_token [1,1,D]               v.class_embd [D]
embeddings.distillation_token [1,1,D]      v.dist_embd [D] (DeiT)
embeddings.position_embeddings [1,T,D]     v.position_embd.weight [T,D]
embeddings.patch_embeddings.projection     v.patch_embd
encoder.layer.i.attention.attention.       v.blk.i.attn_qkv (rows q, k, v)
  query/key/value
encoder.layer.i.attention.output.dense     v.blk.i.attn_out
encoder.layer.i.layernorm_before/_after    v.blk.i.ln1 / ln2
encoder.layer.i.intermediate.dense         v.blk.i.ffn_up
encoder.layer.i.output.dense               v.blk.i.ffn_down
layernorm                                  v.post_ln
pooler.dense                               v.pooler   (ViTModel/DeiTModel with pooler, tanh)
classifier                                 v.head     (ViT/DeiTForImageClassification: token 0)
cls_classifier, distillation_classifier    v.head, v.head_dist (DeiT ...WithTeacher)
=========================================  =====================================================

transformers 5 renamed the modules in memory (``layers.i.attention.q_proj``, ``mlp.fc1``, ...)
but saves the names above; state dicts taken from a live v5 module are accepted too.
``vit.pooling`` is ``cls`` except for DeiT with a distillation head: ``cls_dist_avg`` (the
mean of tokens 0 and 1, the pre-logits feature timm defines for the same model).
"""
from __future__ import annotations

import json
import os
import re
from typing import Dict, List, Optional

import numpy as np

from ._model import ConversionError, ConvertedModel, PreprocessSpec, resolve_labels, warn
from ._state_dict import find_hf_weights, load_files
from ._vit_common import check_vit_tensors, fuse_qkv, vit_hparams

SUPPORTED_MODEL_TYPES = ("vit", "deit")

HF_ACT = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
          "quick_gelu": "quick_gelu"}

# PIL's resampling filter numbers, as HF processors store them.
PIL_RESAMPLE = {2: "bilinear", 3: "bicubic"}
PIL_RESAMPLE_NAMES = {0: "nearest", 1: "lanczos", 4: "box", 5: "hamming"}

IMAGENET_STANDARD = (0.5, 0.5, 0.5)

# Defaults of the processor classes, used for keys a preprocessor_config.json leaves out.
PROCESSOR_DEFAULTS = {
    "vit": dict(do_resize=True, size={"height": 224, "width": 224}, resample=2,
                do_center_crop=False, crop_size=None, do_rescale=True, rescale_factor=1 / 255,
                do_normalize=True, image_mean=IMAGENET_STANDARD, image_std=IMAGENET_STANDARD),
    "deit": dict(do_resize=True, size={"height": 256, "width": 256}, resample=3,
                 do_center_crop=True, crop_size={"height": 224, "width": 224}, do_rescale=True,
                 rescale_factor=1 / 255, do_normalize=True, image_mean=IMAGENET_STANDARD,
                 image_std=IMAGENET_STANDARD),
}
KNOWN_PROCESSORS = {"ViTImageProcessor", "ViTFeatureExtractor", "ViTImageProcessorFast",
                    "ViTImageProcessorPil", "DeiTImageProcessor", "DeiTFeatureExtractor",
                    "DeiTImageProcessorFast", "DeiTImageProcessorPil"}

_LAYER = r"(?:encoder\.layer|layers)\.(\d+)\."
_RULES = [
    (r"embeddings\.cls_token", "v.class_embd"),
    (r"embeddings\.distillation_token", "v.dist_embd"),
    (r"embeddings\.position_embeddings", "v.position_embd.weight"),
    (r"embeddings\.patch_embeddings\.projection\.(weight|bias)", "v.patch_embd.{0}"),
    (_LAYER + r"attention\.attention\.query\.(weight|bias)", "qkv:q.{0}.{1}"),
    (_LAYER + r"attention\.attention\.key\.(weight|bias)", "qkv:k.{0}.{1}"),
    (_LAYER + r"attention\.attention\.value\.(weight|bias)", "qkv:v.{0}.{1}"),
    (_LAYER + r"attention\.q_proj\.(weight|bias)", "qkv:q.{0}.{1}"),
    (_LAYER + r"attention\.k_proj\.(weight|bias)", "qkv:k.{0}.{1}"),
    (_LAYER + r"attention\.v_proj\.(weight|bias)", "qkv:v.{0}.{1}"),
    (_LAYER + r"attention\.output\.dense\.(weight|bias)", "v.blk.{0}.attn_out.{1}"),
    (_LAYER + r"attention\.o_proj\.(weight|bias)", "v.blk.{0}.attn_out.{1}"),
    (_LAYER + r"layernorm_before\.(weight|bias)", "v.blk.{0}.ln1.{1}"),
    (_LAYER + r"layernorm_after\.(weight|bias)", "v.blk.{0}.ln2.{1}"),
    (_LAYER + r"intermediate\.dense\.(weight|bias)", "v.blk.{0}.ffn_up.{1}"),
    (_LAYER + r"mlp\.fc1\.(weight|bias)", "v.blk.{0}.ffn_up.{1}"),
    (_LAYER + r"output\.dense\.(weight|bias)", "v.blk.{0}.ffn_down.{1}"),
    (_LAYER + r"mlp\.fc2\.(weight|bias)", "v.blk.{0}.ffn_down.{1}"),
    (r"layernorm\.(weight|bias)", "v.post_ln.{0}"),
    (r"pooler\.dense\.(weight|bias)", "v.pooler.{0}"),
    (r"classifier\.(weight|bias)", "v.head.{0}"),
    (r"cls_classifier\.(weight|bias)", "v.head.{0}"),
    (r"distillation_classifier\.(weight|bias)", "v.head_dist.{0}"),
]
_RULES = [(re.compile(p + r"$"), out) for p, out in _RULES]
_IGNORED = [(re.compile(r"embeddings\.mask_token$"), "embeddings.mask_token (masked-image-modeling only)"),
            (re.compile(r"decoder\..*"), "decoder.* (the masked-image-modeling decoder)")]


def is_hf_folder(src: str) -> bool:
    cfg = os.path.join(src, "config.json")
    if not (os.path.isdir(src) and os.path.isfile(cfg)):
        return False
    try:
        with open(cfg, encoding="utf-8") as f:
            return "model_type" in json.load(f)
    except (OSError, ValueError):
        return False


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except ValueError as e:
        raise ConversionError(f"{path} is not valid JSON: {e}") from e


def _square(value, what: str) -> int:
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or value[0] != value[1]:
            raise ConversionError(f"non-square {what} {list(value)} is not supported")
        value = value[0]
    return int(value)


def _size_dict(size, what: str) -> dict:
    if size is None:
        return {}
    if isinstance(size, int):
        return {"height": size, "width": size}
    if isinstance(size, (list, tuple)) and len(size) == 2:
        return {"height": int(size[0]), "width": int(size[1])}
    if isinstance(size, dict):
        return {k: v for k, v in size.items() if v is not None}
    raise ConversionError(f"cannot read the processor's {what} {size!r}")


def hf_preprocess(folder: str, model_type: str, image_size: int) -> PreprocessSpec:
    """The PreprocessSpec reproducing the folder's image processor (PIL backend)."""
    path = os.path.join(folder, "preprocessor_config.json")
    defaults = dict(PROCESSOR_DEFAULTS[model_type])
    if os.path.isfile(path):
        cfg = _read_json(path)
        ptype = cfg.get("image_processor_type") or cfg.get("feature_extractor_type") or "?"
        if ptype not in KNOWN_PROCESSORS:
            warn(f"{path}: processor {ptype!r} is not a ViT/DeiT processor; reading its "
                 "size/crop/resample/mean/std keys with ViTImageProcessor semantics")
    else:
        warn(f"no preprocessor_config.json in {folder}: using the "
             f"{'DeiT' if model_type == 'deit' else 'ViT'}ImageProcessor defaults at the "
             f"model's image size {image_size}")
        cfg = {}
        if model_type == "vit":
            defaults["size"] = {"height": image_size, "width": image_size}
        else:
            defaults["crop_size"] = {"height": image_size, "width": image_size}
            defaults["size"] = {"height": image_size * 256 // 224, "width": image_size * 256 // 224}
    get = lambda k: cfg[k] if cfg.get(k) is not None else defaults[k]  # noqa: E731

    if not get("do_resize"):
        raise ConversionError(f"{path}: do_resize=false (images fed at their own size) is not "
                              "supported: the model needs a fixed input size")
    size = _size_dict(get("size"), "size")
    resample = get("resample")
    if isinstance(resample, str):
        resample = {"bilinear": 2, "bicubic": 3}.get(resample.lower(), resample)
    if resample not in PIL_RESAMPLE:
        raise ConversionError(
            f"resample {PIL_RESAMPLE_NAMES.get(resample, resample)!r} is not supported "
            "(supported: bilinear, bicubic)")
    interpolation = PIL_RESAMPLE[resample]
    do_crop = bool(get("do_center_crop"))
    crop = _size_dict(get("crop_size"), "crop_size") if do_crop else {}
    if do_crop and not ("height" in crop and "width" in crop):
        raise ConversionError(f"crop_size {crop} needs height and width")

    if "height" in size and "width" in size:
        resize = (int(size["height"]), int(size["width"]))
        mode = "squash"
    elif "shortest_edge" in size and "longest_edge" not in size:
        if not do_crop:
            raise ConversionError(
                "size={'shortest_edge': ...} without a centre crop gives inputs of varying size; "
                "not supported")
        resize = (int(size["shortest_edge"]),) * 2
        mode = "shortest_edge_crop"
    else:
        raise ConversionError(f"processor size {size} is not supported (expected height/width "
                              "or shortest_edge)")
    final = (int(crop["height"]), int(crop["width"])) if do_crop else resize
    rescale = float(get("rescale_factor")) if get("do_rescale") else 1.0
    if get("do_normalize"):
        mean, std = get("image_mean"), get("image_std")
        mean = [mean] * 3 if isinstance(mean, (int, float)) else list(mean)
        std = [std] * 3 if isinstance(std, (int, float)) else list(std)
    else:
        mean, std = [0.0] * 3, [1.0] * 3
    if final != (image_size, image_size):
        warn(f"the processor gives {final[0]}x{final[1]} images but the model was built for "
             f"{image_size}x{image_size}")
    return PreprocessSpec(image_size=final, resize_mode=mode, crop_pct=final[0] / resize[0],
                          interpolation=interpolation, mean=tuple(mean), std=tuple(std),
                          rescale_factor=rescale, resize_size=resize, crop_rounding="floor")


def map_hf_state_dict(sd: Dict[str, np.ndarray], num_layers: int) -> (Dict[str, np.ndarray], List[str]):
    """HF names -> schema tensors (q/k/v fused).  Returns the tensors and notes."""
    for prefix in ("vit.", "deit."):
        if any(k.startswith(prefix) for k in sd):
            sd = {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in sd.items()}
    out: Dict[str, np.ndarray] = {}
    qkv: Dict[tuple, np.ndarray] = {}
    unknown, ignored = [], set()
    for key, arr in sd.items():
        for rx, target in _RULES:
            m = rx.match(key)
            if m:
                name = target.format(*m.groups())
                if name.startswith("qkv:"):
                    which, layer, kind = name[4:].split(".")
                    qkv[(int(layer), kind, which)] = arr
                else:
                    out[name] = arr
                break
        else:
            for rx, what in _IGNORED:
                if rx.match(key):
                    ignored.add(what)
                    break
            else:
                unknown.append(key)
    if unknown:
        shown = ", ".join(sorted(unknown)[:8]) + (" ..." if len(unknown) > 8 else "")
        raise ConversionError(f"{len(unknown)} tensors of the checkpoint are not part of a "
                              f"ViT/DeiT encoder or head this converter knows: {shown}")
    for name in ("v.class_embd", "v.dist_embd"):
        if name in out:
            out[name] = out[name].reshape(-1)
    if "v.position_embd.weight" in out:
        pe = out["v.position_embd.weight"]
        out["v.position_embd.weight"] = pe.reshape(pe.shape[-2], pe.shape[-1])
    for i in range(num_layers):
        for kind in ("weight", "bias"):
            parts = [qkv.pop((i, kind, w), None) for w in "qkv"]
            if all(p is None for p in parts):
                if kind == "weight":
                    raise ConversionError(f"the checkpoint has no attention query/key/value weights "
                                          f"for layer {i}")
                continue
            if any(p is None for p in parts):
                missing = [w for w, p in zip(("query", "key", "value"), parts) if p is None]
                raise ConversionError(f"layer {i}: attention {kind} missing for {', '.join(missing)}")
            out[f"v.blk.{i}.attn_qkv.{kind}"] = fuse_qkv(*parts)
    if qkv:
        extra = sorted({layer for layer, _, _ in qkv})
        raise ConversionError(f"the checkpoint has attention weights for layers {extra} but "
                              f"config.json says num_hidden_layers={num_layers}")
    for i in range(num_layers):
        for n in ("ln1", "ln2", "attn_out", "ffn_up", "ffn_down"):
            for kind in ("weight", "bias"):
                if f"v.blk.{i}.{n}.{kind}" not in out:
                    raise ConversionError(f"the checkpoint is missing layer {i}'s {n}.{kind} "
                                          "(HF name e.g. encoder.layer.N....)")
    notes = [f"ignored {w}" for w in sorted(ignored)]
    return out, notes


def load_hf_vit(src: str, *, labels=None, name: Optional[str] = None) -> ConvertedModel:
    src = os.fspath(src)
    if not os.path.isdir(src):
        raise FileNotFoundError(f"Hugging Face model folder not found: {src}")
    cfg_path = os.path.join(src, "config.json")
    if not os.path.isfile(cfg_path):
        raise FileNotFoundError(f"{src} has no config.json: not a Hugging Face model folder")
    cfg = _read_json(cfg_path)
    model_type = cfg.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ConversionError(
            f"unsupported Hugging Face model_type {model_type!r} in {cfg_path} "
            f"(supported: {', '.join(SUPPORTED_MODEL_TYPES)})")
    weights = find_hf_weights(src)
    if weights is None:
        raise FileNotFoundError(
            f"no weights in {src}: expected model.safetensors or pytorch_model.bin "
            "(or a sharded *.index.json)")

    def c(key, default):
        v = cfg.get(key)
        return default if v is None else v

    D = int(c("hidden_size", 768))
    L = int(c("num_hidden_layers", 12))
    act = c("hidden_act", "gelu")
    if act not in HF_ACT:
        raise ConversionError(f"hidden_act {act!r} is not supported "
                              f"(supported: {', '.join(HF_ACT)})")
    image_size = _square(c("image_size", 224), "image_size")
    patch_size = _square(c("patch_size", 16), "patch_size")

    sd = load_files(weights)
    tensors, notes = map_hf_state_dict(sd, L)
    if "v.pooler.weight" in tensors:
        pact = c("pooler_act", "tanh")
        if pact != "tanh":
            raise ConversionError(f"pooler_act {pact!r} is not supported (the schema's pooler is tanh)")
        if tensors["v.pooler.weight"].shape[0] != D:
            raise ConversionError(f"pooler_output_size {tensors['v.pooler.weight'].shape[0]} != "
                                  f"hidden_size {D} is not supported")
    distilled_head = "v.head_dist.weight" in tensors
    hp = vit_hparams(
        block_count=L, embedding_length=D,
        feed_forward_length=int(c("intermediate_size", 4 * D)),
        head_count=int(c("num_attention_heads", 12)),
        layer_norm_epsilon=float(c("layer_norm_eps", 1e-12)),
        patch_size=patch_size, image_size=image_size, num_channels=int(c("num_channels", 3)),
        hidden_act=HF_ACT[act], pooling="cls_dist_avg" if distilled_head else "cls")
    check_vit_tensors(tensors, hp)

    archs = cfg.get("architectures") or []
    if archs:
        source_class = archs[0]
    else:
        base = "DeiT" if model_type == "deit" else "ViT"
        source_class = (f"{base}ForImageClassificationWithTeacher" if distilled_head else
                        f"{base}ForImageClassification" if "v.head.weight" in tensors else f"{base}Model")
    num_classes = tensors["v.head.weight"].shape[0] if "v.head.weight" in tensors else 0
    id2label = cfg.get("id2label")
    default = None
    if isinstance(id2label, dict) and id2label:
        try:
            default = [id2label[k] for k in sorted(id2label, key=int)]
        except (ValueError, TypeError):
            default = None
    label_list = resolve_labels(labels, num_classes, default)
    pre = hf_preprocess(src, model_type, image_size)
    if name is None:
        name = os.path.basename(os.path.normpath(os.path.abspath(src)))
    return ConvertedModel(arch="vit", name=name, source="hf", source_class=source_class,
                          hparams=hp, preprocess=pre, tensors=tensors, labels=label_list,
                          notes=notes)
