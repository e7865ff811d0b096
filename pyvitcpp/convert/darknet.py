"""Darknet ``.cfg`` + ``.weights`` -> ConvertedModel (docs/GGUF_SCHEMA.md, Darknet section).

The layer list of the ``.cfg`` is stored as metadata arrays (one entry per layer) that the
engine interprets when it builds the graph (csrc/models/darknet.cpp); the convolutions' weights
are tensors ``layer.{i}.weight`` / ``layer.{i}.bias``.

``.weights`` layout (darknet's ``load_weights``): int32 major, minor, revision; ``seen`` as uint64
when ``major * 10 + minor >= 2`` (and both < 1000), else uint32; then for every convolutional
layer in order: biases [n], with ``batch_normalize`` also scales [n], rolling means [n], rolling
variances [n], then the weights [n, c / groups, size, size]. Batch norm is folded here exactly as
darknet computes it: ``(x - mean) / (sqrt(var) + 1e-6) * scale + bias``.

Supported layers: ``[convolutional]`` (batch_normalize, filters, size, stride, pad / padding,
groups 1 or depthwise; activations leaky, linear, mish, logistic, relu), ``[maxpool]`` (darknet's
padding: ``padding`` = size - 1 in total by default, ``padding // 2`` before the data),
``[upsample]`` (nearest, integer stride), ``[route]`` (layers, groups, group_id), ``[shortcut]``
(from, activation linear/leaky/...), ``[yolo]`` (mask, anchors, classes, num, scale_x_y).
"""
from __future__ import annotations

import os
import re
from typing import Dict, List, Optional, Tuple

import numpy as np

from ._model import (F32, F32_ARRAY, STR, STR_ARRAY, U32, U32_ARRAY, ConversionError, ConvertedModel,
                     PreprocessSpec, resolve_labels)

ACTIVATIONS = ("leaky", "linear", "mish", "logistic", "relu")
_ALIASES = {"conv": "convolutional", "max": "maxpool", "network": "net"}
LAYER_TYPES = ("convolutional", "maxpool", "upsample", "route", "shortcut", "yolo")
DARKNET_BN_EPS = 1e-6  # darknet adds it to sqrt(var), not to var


def parse_cfg(text: str, where: str = "cfg") -> List[Tuple[str, Dict[str, str]]]:
    """The sections of a darknet .cfg in order: [(type, {key: value})]."""
    sections: List[Tuple[str, Dict[str, str]]] = []
    for ln, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise ConversionError(f"{where}:{ln}: malformed section header {raw.strip()!r}")
            kind = line[1:-1].strip().lower()
            sections.append((_ALIASES.get(kind, kind), {}))
            continue
        if "=" not in line:
            raise ConversionError(f"{where}:{ln}: expected key=value, got {raw.strip()!r}")
        if not sections:
            raise ConversionError(f"{where}:{ln}: option before the first [section]")
        k, v = line.split("=", 1)
        sections[-1][1][k.strip()] = v.strip()
    if not sections or sections[0][0] != "net":
        raise ConversionError(f"{where}: the first section must be [net]")
    return sections


def _int(opts, key, default=None, where=""):
    if key not in opts:
        if default is None:
            raise ConversionError(f"{where}: missing {key}=")
        return default
    try:
        return int(opts[key])
    except ValueError:
        raise ConversionError(f"{where}: {key}={opts[key]!r} is not an integer") from None


def _float(opts, key, default, where=""):
    try:
        return float(opts.get(key, default))
    except ValueError:
        raise ConversionError(f"{where}: {key}={opts[key]!r} is not a number") from None


def _ints(opts, key, where=""):
    try:
        return [int(v) for v in re.split(r"[,\s]+", opts[key].strip()) if v]
    except ValueError:
        raise ConversionError(f"{where}: {key}={opts[key]!r} is not a list of integers") from None


def _floats(opts, key, where=""):
    try:
        return [float(v) for v in re.split(r"[,\s]+", opts[key].strip()) if v]
    except ValueError:
        raise ConversionError(f"{where}: {key}={opts[key]!r} is not a list of numbers") from None


class _Weights:
    """Sequential float32 reads from a .weights file, with the name of what is read on failure."""

    def __init__(self, path: str):
        self.path = path
        with open(path, "rb") as f:
            data = f.read()
        if len(data) < 16:
            raise ConversionError(f"{path}: too short for a darknet .weights header ({len(data)} bytes)")
        major, minor, revision = np.frombuffer(data, "<i4", 3)
        self.version = (int(major), int(minor), int(revision))
        big_seen = major * 10 + minor >= 2 and major < 1000 and minor < 1000
        self.seen = int(np.frombuffer(data, "<u8" if big_seen else "<u4", 1, 12)[0])
        self.data = data
        self.pos = 20 if big_seen else 16

    def read(self, n: int, what: str) -> np.ndarray:
        end = self.pos + 4 * n
        if end > len(self.data):
            raise ConversionError(f"{self.path}: file ends in {what} (needs {end} bytes, has {len(self.data)}): "
                                  "the .weights does not match the .cfg")
        a = np.frombuffer(self.data, "<f4", n, self.pos).astype(np.float32)
        self.pos = end
        return a


def find_cfg(weights_path: str) -> str:
    stem = os.path.splitext(weights_path)[0]
    cfg = stem + ".cfg"
    if not os.path.isfile(cfg):
        raise FileNotFoundError(f"no .cfg beside {weights_path} (looked for {cfg}); pass --cfg PATH")
    return cfg


def is_darknet_weights(src: str) -> bool:
    return os.path.isfile(src) and src.lower().endswith(".weights")


def load_darknet(weights_path: str, cfg_path: Optional[str] = None, *, labels=None,
                 name: Optional[str] = None) -> ConvertedModel:
    cfg_path = cfg_path or find_cfg(weights_path)
    if not os.path.isfile(cfg_path):
        raise FileNotFoundError(f"cfg not found: {cfg_path}")
    with open(cfg_path, encoding="utf-8", errors="replace") as f:
        sections = parse_cfg(f.read(), cfg_path)
    net = sections[0][1]
    layers = sections[1:]
    n = len(layers)
    if n == 0:
        raise ConversionError(f"{cfg_path}: no layers after [net]")
    W = _Weights(weights_path)
    in_c = _int(net, "channels", 3, cfg_path + " [net]")
    net_h = _int(net, "height", 416, cfg_path + " [net]")
    net_w = _int(net, "width", 416, cfg_path + " [net]")

    types, filters, size, stride, padding, acts, groups, group_id = [], [], [], [], [], [], [], []
    inputs: List[int] = []
    input_counts: List[int] = []
    chans: List[int] = []      # output channels of each layer
    strides: List[int] = []    # total stride of each layer's output
    tensors: Dict[str, np.ndarray] = {}
    heads = []                 # (layer index, mask, anchors, classes, scale_x_y)
    for i, (kind, o) in enumerate(layers):
        where = f"{cfg_path} layer {i} [{kind}]"
        prev_c = chans[i - 1] if i else in_c
        prev_s = strides[i - 1] if i else 1
        f_ = sz = st = pd = 0
        g = 1
        gid = 0
        act = "linear"
        ins: List[int] = []
        if kind not in LAYER_TYPES:
            raise ConversionError(f"{where}: layer type [{kind}] is not supported ({', '.join(LAYER_TYPES)})")
        if kind == "convolutional":
            f_ = _int(o, "filters", 1, where)
            sz = _int(o, "size", 1, where)
            st = _int(o, "stride", 1, where)
            if "stride_x" in o or "stride_y" in o or _int(o, "dilation", 1, where) != 1:
                raise ConversionError(f"{where}: stride_x/stride_y/dilation are not supported")
            pd = sz // 2 if _int(o, "pad", 0, where) else _int(o, "padding", 0, where)
            g = _int(o, "groups", 1, where)
            act = o.get("activation", "logistic")
            bn = _int(o, "batch_normalize", 0, where)
            if act not in ACTIVATIONS:
                raise ConversionError(f"{where}: activation {act!r} is not supported ({', '.join(ACTIVATIONS)})")
            if f_ < 1 or sz < 1 or st < 1 or pd < 0:
                raise ConversionError(f"{where}: filters, size, stride must be >= 1")
            if g != 1 and not (g == prev_c == f_):
                raise ConversionError(f"{where}: groups={g} (only 1, or depthwise groups = channels = filters)")
            for k in ("binary", "xnor", "share_index", "antialiasing", "deform", "sway", "rotate", "stretch"):
                if k in o and (k == "share_index" or o[k].strip() != "0"):
                    raise ConversionError(f"{where}: {k} is not supported")
            nw = f_ * (prev_c // g) * sz * sz
            bias = W.read(f_, f"layer {i} biases")
            if bn:
                scales = W.read(f_, f"layer {i} scales").astype(np.float64)
                mean = W.read(f_, f"layer {i} rolling_mean").astype(np.float64)
                var = W.read(f_, f"layer {i} rolling_variance").astype(np.float64)
            w = W.read(nw, f"layer {i} weights").reshape(f_, prev_c // g, sz, sz)
            if bn:
                if (var < 0).any():
                    raise ConversionError(f"{where}: negative rolling variance")
                s = scales / (np.sqrt(var) + DARKNET_BN_EPS)
                w = (w.astype(np.float64) * s[:, None, None, None]).astype(np.float32)
                bias = (bias.astype(np.float64) - mean * s).astype(np.float32)
            if sz == 1 and g == 1:
                w = np.ascontiguousarray(w.reshape(f_, prev_c))
            tensors[f"layer.{i}.weight"] = np.ascontiguousarray(w)
            tensors[f"layer.{i}.bias"] = bias
            out_c, out_s = f_, prev_s * st
        elif kind == "maxpool":
            st = _int(o, "stride", 1, where)
            sz = _int(o, "size", st, where)
            pd = _int(o, "padding", sz - 1, where)
            if "stride_x" in o or "stride_y" in o or _int(o, "maxpool_depth", 0, where) or \
                    _int(o, "antialiasing", 0, where):
                raise ConversionError(f"{where}: stride_x/stride_y/maxpool_depth/antialiasing are not supported")
            if sz < 1 or st < 1 or pd < 0:
                raise ConversionError(f"{where}: size and stride must be >= 1")
            out_c, out_s = prev_c, prev_s * st
        elif kind == "upsample":
            st = _int(o, "stride", 2, where)
            if st < 1:
                raise ConversionError(f"{where}: stride={st} (downsampling upsample layers are not supported)")
            if _float(o, "scale", 1.0, where) != 1.0:
                raise ConversionError(f"{where}: scale != 1 is not supported")
            out_c, out_s = prev_c, max(prev_s // st, 1)
        elif kind == "route":
            refs = _ints(o, "layers", where) if "layers" in o else []
            if not refs:
                raise ConversionError(f"{where}: layers= is missing or empty")
            ins = [i + r if r < 0 else r for r in refs]
            g = _int(o, "groups", 1, where)
            gid = _int(o, "group_id", 0, where)
            if g < 1 or not 0 <= gid < g:
                raise ConversionError(f"{where}: groups={g}, group_id={gid}")
            out_c = 0
            for j in ins:
                if not 0 <= j < i:
                    raise ConversionError(f"{where}: refers to layer {j}, which is not an earlier layer")
                if types[j] == "yolo":
                    raise ConversionError(f"{where}: routes a [yolo] layer's output, which is not supported")
                if chans[j] % g:
                    raise ConversionError(f"{where}: layer {j} has {chans[j]} channels, not divisible by groups={g}")
                out_c += chans[j] // g
            out_s = strides[ins[0]]
        elif kind == "shortcut":
            frm = _ints(o, "from", where) if "from" in o else []
            if len(frm) != 1:
                raise ConversionError(f"{where}: from= must name exactly one layer")
            j = i + frm[0] if frm[0] < 0 else frm[0]
            if not 0 <= j < i or i == 0:
                raise ConversionError(f"{where}: from={frm[0]} is not an earlier layer")
            if o.get("weights_type", "none") != "none":
                raise ConversionError(f"{where}: weighted shortcuts (weights_type) are not supported")
            act = o.get("activation", "linear")
            if act not in ACTIVATIONS:
                raise ConversionError(f"{where}: activation {act!r} is not supported ({', '.join(ACTIVATIONS)})")
            if types[j] == "yolo" or types[i - 1] == "yolo":
                raise ConversionError(f"{where}: adds a [yolo] layer's output, which is not supported")
            if chans[j] != prev_c or strides[j] != prev_s:
                raise ConversionError(f"{where}: layer {j} has {chans[j]} channels at stride {strides[j]}, the "
                                      f"previous layer {prev_c} at stride {prev_s}")
            ins = [i - 1, j]
            out_c, out_s = prev_c, prev_s
        else:  # yolo
            classes = _int(o, "classes", 20, where)
            num = _int(o, "num", 1, where)
            anchors = _floats(o, "anchors", where) if "anchors" in o else []
            mask = _ints(o, "mask", where) if "mask" in o else list(range(num))
            if len(anchors) < 2 * num:
                raise ConversionError(f"{where}: {len(anchors)} anchor values for num={num}")
            if any(not 0 <= m < num for m in mask):
                raise ConversionError(f"{where}: mask {mask} out of range for num={num}")
            if _int(o, "new_coords", 0, where):
                raise ConversionError(f"{where}: new_coords=1 (scaled-YOLOv4) is not supported")
            if i == 0 or types[i - 1] == "yolo":
                raise ConversionError(f"{where}: a [yolo] layer must follow the layer whose map it reads")
            if prev_c != len(mask) * (5 + classes):
                raise ConversionError(f"{where}: its input has {prev_c} channels; {len(mask)} masks x "
                                      f"(5 + {classes} classes) = {len(mask) * (5 + classes)}")
            heads.append((i, mask, anchors[:2 * num], classes, _float(o, "scale_x_y", 1.0, where)))
            out_c, out_s = prev_c, prev_s
        types.append(kind)
        filters.append(f_)
        size.append(sz)
        stride.append(st)
        padding.append(pd)
        acts.append(act)
        groups.append(g)
        group_id.append(gid)
        inputs += ins
        input_counts.append(len(ins))
        chans.append(out_c)
        strides.append(out_s)
    if W.pos != len(W.data):
        raise ConversionError(f"{weights_path}: {len(W.data) - W.pos} bytes left after the last layer: the "
                              ".weights does not match the .cfg")
    if not heads:
        raise ConversionError(f"{cfg_path}: no [yolo] layer")
    classes = heads[0][3]
    if any(h[3] != classes for h in heads) or any(h[2] != heads[0][2] for h in heads):
        raise ConversionError(f"{cfg_path}: the [yolo] layers disagree on classes or anchors")

    # features.{k}: the last layer at each total stride >= 8 before the first [yolo] layer.
    first_yolo = heads[0][0]
    last_at: Dict[int, int] = {}
    for i in range(first_yolo):
        if strides[i] >= 8:
            last_at[strides[i]] = i
    feature_layers = [last_at[s] for s in sorted(last_at)]
    max_stride = max(strides)

    hp = [
        ("darknet.layer_count", n, U32),
        ("darknet.num_channels", in_c, U32),
        ("darknet.layer_types", types, STR_ARRAY),
        ("darknet.filters", filters, U32_ARRAY),
        ("darknet.size", size, U32_ARRAY),
        ("darknet.stride", stride, U32_ARRAY),
        ("darknet.padding", padding, U32_ARRAY),
        ("darknet.activation", acts, STR_ARRAY),
        ("darknet.groups", groups, U32_ARRAY),
        ("darknet.group_id", group_id, U32_ARRAY),
        ("darknet.inputs", inputs, U32_ARRAY),
        ("darknet.input_counts", input_counts, U32_ARRAY),
        ("darknet.feature_layers", feature_layers, U32_ARRAY),
        ("darknet.max_stride", max_stride, U32),
        ("detect.kind", "darknet_yolo", STR),
        ("detect.num_classes", classes, U32),
        ("detect.anchors", [float(a) for a in heads[0][2]], F32_ARRAY),
        ("detect.masks", [m for h in heads for m in h[1]], U32_ARRAY),
        ("detect.mask_counts", [len(h[1]) for h in heads], U32_ARRAY),
        ("detect.scale_x_y", [h[4] for h in heads], F32_ARRAY),
        ("preprocess.pad_value", 0.5, F32),
        ("preprocess.stride", max_stride, U32),
        ("preprocess.letterbox_rounding", "darknet", STR),
    ]
    hp = [kv for kv in hp if kv[2] not in (U32_ARRAY, F32_ARRAY, STR_ARRAY) or len(kv[1])]  # GGUF: no empty arrays
    lab = resolve_labels(labels, classes, None) if labels is not None else None
    if lab:
        hp.append(("detect.labels", lab, STR_ARRAY))
    pp = PreprocessSpec(image_size=(net_h, net_w), resize_mode="letterbox", crop_pct=1.0, interpolation="bilinear",
                        mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    base = os.path.splitext(os.path.basename(weights_path))[0]
    return ConvertedModel(arch="darknet", name=name or base, source=os.path.abspath(weights_path),
                          source_class=f"darknet cfg {os.path.basename(cfg_path)} (weights v{'.'.join(map(str, W.version))})",
                          hparams=hp, preprocess=pp, tensors=tensors, labels=None,
                          notes=[f"batch norm folded as darknet computes it ((x - mean) / (sqrt(var) + {DARKNET_BN_EPS}))",
                                 f"{len(heads)} [yolo] heads, {classes} classes"])
