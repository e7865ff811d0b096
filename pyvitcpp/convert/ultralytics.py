"""Ultralytics YOLOv8 / YOLO11 detection models -> ConvertedModel (docs/GGUF_SCHEMA.md, yolov8 section).

Two sources:

- an Ultralytics checkpoint ``.pt`` (``yolov8n.pt``, ``yolo11s.pt``, a training run's ``best.pt``):
  it pickles the model object, so reading it needs the ``ultralytics`` package (imported here
  only, on this path; ultralytics is AGPL and never a dependency of pyvitcpp). The layer list,
  strides, flags, class names and training image size come from the object.
- a state dict (``.safetensors`` / ``.pt`` / ``.pth`` of ``model.state_dict()``) plus the yaml name
  (``--model-name yolov8n.yaml`` / ``yolo11s``): the layer list of that yaml is built in here
  (no ultralytics needed); channel counts and repeats come from the tensors.

Each Conv's batch norm is folded into its weight and bias (float64, the module's eps; 1e-3 for a
state dict, as ultralytics' initialize_weights sets it). Tensors keep ultralytics' module paths
without ``.conv`` / ``.bn`` (``model.2.m.0.cv1.weight``); 1x1 convs are stored 2-D [OC, C].
The layer list goes into per-layer keys ``yolov8.layer.{i}.*``; the Detect head into
``yolov8.detect.from`` and the tensors ``model.{D}.cv2.{l}.*`` / ``model.{D}.cv3.{l}.*``.
"""
from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from .cnn import _flatten_1x1, fold_bn
from ._model import (BOOL, F32, F32_ARRAY, STR, STR_ARRAY, U32, U32_ARRAY, ConversionError, ConvertedModel,
                     PreprocessSpec)

BN_EPS = 1e-3  # ultralytics.utils.torch_utils.initialize_weights sets every BatchNorm2d's eps
PAD_VALUE = 114.0 / 255.0

# The layer lists of ultralytics/cfg/models/v8/yolov8.yaml and 11/yolo11.yaml (every scale has the
# same list; channels and repeats are read from the tensors): (from, type, args) with args
# conv: stride; c2f: shortcut; c3k2 (shortcut is always True; c3k read from the tensors).
_V8 = [(-1, "conv", 2), (-1, "conv", 2), (-1, "c2f", True), (-1, "conv", 2), (-1, "c2f", True), (-1, "conv", 2),
       (-1, "c2f", True), (-1, "conv", 2), (-1, "c2f", True), (-1, "sppf", 5),
       (-1, "upsample", 2), ([-1, 6], "concat", None), (-1, "c2f", False),
       (-1, "upsample", 2), ([-1, 4], "concat", None), (-1, "c2f", False),
       (-1, "conv", 2), ([-1, 12], "concat", None), (-1, "c2f", False),
       (-1, "conv", 2), ([-1, 9], "concat", None), (-1, "c2f", False)]
_V11 = [(-1, "conv", 2), (-1, "conv", 2), (-1, "c3k2", None), (-1, "conv", 2), (-1, "c3k2", None), (-1, "conv", 2),
        (-1, "c3k2", None), (-1, "conv", 2), (-1, "c3k2", None), (-1, "sppf", 5), (-1, "c2psa", None),
        (-1, "upsample", 2), ([-1, 6], "concat", None), (-1, "c3k2", None),
        (-1, "upsample", 2), ([-1, 4], "concat", None), (-1, "c3k2", None),
        (-1, "conv", 2), ([-1, 13], "concat", None), (-1, "c3k2", None),
        (-1, "conv", 2), ([-1, 10], "concat", None), (-1, "c3k2", None)]
TOPOLOGIES = {"yolov8": (_V8, [15, 18, 21], [0, 2, 4, 6, 9]), "yolo11": (_V11, [16, 19, 22], [0, 2, 4, 6, 10])}
_NAME_RE = re.compile(r"^(yolov8|yolo11)([nslmx]?)(\.yaml|\.pt)?$")


@dataclass
class LetterboxSpec(PreprocessSpec):
    """preprocess.* for letterboxed detectors: keep the aspect, pad to the stride with pad_value."""

    pad_value: float = PAD_VALUE
    stride: int = 32

    def __post_init__(self) -> None:  # the parent accepts classifier resize modes only
        if self.resize_mode != "letterbox":
            raise ConversionError(f"LetterboxSpec takes resize_mode 'letterbox', got {self.resize_mode!r}")
        if self.resize_size is None:
            self.resize_size = tuple(self.image_size)

    def metadata(self):
        return [
            ("preprocess.image_size", [int(self.image_size[0]), int(self.image_size[1])], U32_ARRAY),
            ("preprocess.resize_mode", "letterbox", STR),
            ("preprocess.interpolation", self.interpolation, STR),
            ("preprocess.rescale_factor", float(self.rescale_factor), F32),
            ("preprocess.mean", [float(v) for v in self.mean], F32_ARRAY),
            ("preprocess.std", [float(v) for v in self.std], F32_ARRAY),
            ("preprocess.channel_order", self.channel_order, STR),
            ("preprocess.pad_value", float(self.pad_value), F32),
            ("preprocess.stride", int(self.stride), U32),
        ]


@dataclass
class Layer:
    type: str
    frm: List[int]  # absolute indices; [] for layer 0 (the image)
    keys: Dict[str, Tuple[object, str]] = field(default_factory=dict)


# ------------------------------------------------------------------------------- weights
def fold_convs(sd: Dict[str, np.ndarray], eps_of=None) -> Dict[str, np.ndarray]:
    """Conv + BN pairs (``P.conv.weight`` with ``P.bn.*``) -> ``P.weight`` / ``P.bias``; plain convs
    (the Detect head's last ones) kept; BN counters and the fixed DFL conv dropped."""
    out: Dict[str, np.ndarray] = {}
    for k, v in sd.items():
        if k.endswith(".conv.weight") and not k.endswith(".dfl.conv.weight"):
            p = k[: -len(".conv.weight")]
            if p + ".bn.weight" not in sd:
                raise ConversionError(f"conv '{k}' has no batch norm '{p}.bn' (expected Conv = conv + BN + act)")
            eps = eps_of(p) if eps_of else BN_EPS
            out[p + ".weight"], out[p + ".bias"] = fold_bn(v, sd, p + ".bn", eps, sd.get(p + ".conv.bias"))
        elif ".bn." in k or k.endswith(".conv.bias") or ".dfl." in k or k.endswith("num_batches_tracked"):
            continue
        elif k.startswith("model.") and k.endswith((".weight", ".bias")):
            out[k] = np.ascontiguousarray(v, dtype=np.float32)
    _flatten_1x1(out)  # 1x1 convs 2-D: block-quantizable, a Linear over channels anyway
    return out


def _count(sd, prefix: str) -> int:
    """How many ``prefix{j}.`` children the state dict has."""
    ids = {int(m.group(1)) for k in sd for m in [re.match(re.escape(prefix) + r"(\d+)\.", k)] if m}
    if ids and ids != set(range(len(ids))):
        raise ConversionError(f"'{prefix}*' children are not numbered 0..n-1: {sorted(ids)}")
    return len(ids)


def _need(sd, key):
    if key not in sd:
        raise ConversionError(f"tensor '{key}' is missing from the state dict")
    return sd[key]


# ------------------------------------------------------------------------------- layer lists
def layers_from_table(family: str, sd: Dict[str, np.ndarray]) -> Tuple[List[Layer], List[int], List[int]]:
    """The yaml's layer list, with repeats / c3k / heads read from the (raw) state dict."""
    table, detect_from, features = TOPOLOGIES[family]
    layers: List[Layer] = []
    for i, (frm, typ, arg) in enumerate(table):
        frm = [frm] if isinstance(frm, int) else list(frm)
        L = Layer(typ, [] if i == 0 else [j if j >= 0 else i + j for j in frm])
        p = f"model.{i}."
        if typ == "conv":
            L.keys["stride"] = (arg, U32)
        elif typ in ("c2f", "c3k2"):
            n = _count(sd, p + "m.")
            L.keys["repeats"] = (n, U32)
            L.keys["shortcut"] = (bool(arg) if typ == "c2f" else True, BOOL)
            if typ == "c3k2":
                c3k = n > 0 and (p + "m.0.cv3.conv.weight") in sd
                L.keys["c3k"] = (c3k, BOOL)
                if c3k:
                    L.keys["c3k_repeats"] = (_count(sd, p + "m.0.m."), U32)
        elif typ == "sppf":
            L.keys["pool_size"] = (arg, U32)
            L.keys["pool_repeats"] = (3, U32)
        elif typ == "c2psa":
            n = _count(sd, p + "m.")
            c = _need(sd, p + "cv1.conv.weight").shape[0] // 2
            heads = max(c // 64, 1)
            L.keys["repeats"] = (n, U32)
            L.keys["heads"] = (heads, U32)
            L.keys["key_dim"] = (int(c // heads * 0.5), U32)
        elif typ == "upsample":
            L.keys["scale"] = (arg, U32)
        layers.append(L)
    return layers, list(detect_from), list(features)


def _act_is(act, name: str) -> bool:
    return type(act).__name__ == name


def layers_from_model(model) -> Tuple[List[Layer], List[int], object]:
    """Walk an ultralytics DetectionModel's ``model`` (each module has ``i``, ``f``, ``type``)."""
    mods = list(model.model)
    detect = mods[-1]
    if type(detect).__name__ != "Detect":
        raise ConversionError(f"the model ends in {type(detect).__name__}, not Detect: only detection models "
                              "(YOLOv8 / YOLO11 *.pt, not -seg / -pose / -obb / -cls / end-to-end) are supported")
    if getattr(detect, "one2one_cv2", None) is not None or getattr(detect, "end2end", False):
        raise ConversionError("end-to-end (one-to-one) Detect heads are not supported")

    def check_conv(c, where, act="SiLU"):
        if c.conv.groups != 1 and c.conv.groups != c.conv.in_channels:
            raise ConversionError(f"{where}: grouped convolution (groups={c.conv.groups}) is not supported "
                                  "(only depthwise)")
        if c.conv.dilation[0] != 1 or c.conv.kernel_size[0] != c.conv.kernel_size[1]:
            raise ConversionError(f"{where}: dilated or non-square conv is not supported")
        if c.conv.padding[0] != c.conv.kernel_size[0] // 2:
            raise ConversionError(f"{where}: padding {c.conv.padding} is not k // 2")
        if not _act_is(c.act, act):
            raise ConversionError(f"{where}: activation {type(c.act).__name__}, expected {act}")

    def check_bottleneck(bn, where):
        check_conv(bn.cv1, where + ".cv1")
        check_conv(bn.cv2, where + ".cv2")
        return bool(bn.add)

    layers: List[Layer] = []
    for m in mods[:-1]:
        i, f, name = m.i, m.f, type(m).__name__
        frm = [f] if isinstance(f, int) else list(f)
        frm = [] if i == 0 else [j if j >= 0 else i + j for j in frm]
        where = f"model.{i} ({name})"
        if name == "Conv":
            check_conv(m, where)
            L = Layer("conv", frm, {"stride": (int(m.conv.stride[0]), U32)})
        elif name in ("C2f", "C3k2"):
            check_conv(m.cv1, where + ".cv1")
            check_conv(m.cv2, where + ".cv2")
            L = Layer(name.lower(), frm, {"repeats": (len(m.m), U32)})
            adds = set()
            c3k = name == "C3k2" and len(m.m) > 0 and type(m.m[0]).__name__ == "C3k"
            for j, blk in enumerate(m.m):
                bw = f"{where}.m.{j}"
                if type(blk).__name__ == "Bottleneck" and not c3k:
                    adds.add(check_bottleneck(blk, bw))
                elif type(blk).__name__ == "C3k" and c3k:
                    for c in ("cv1", "cv2", "cv3"):
                        check_conv(getattr(blk, c), f"{bw}.{c}")
                    for r, bn in enumerate(blk.m):
                        adds.add(check_bottleneck(bn, f"{bw}.m.{r}"))
                    L.keys["c3k_repeats"] = (len(blk.m), U32)
                else:
                    raise ConversionError(f"{bw}: block {type(blk).__name__} is not supported in a {name} "
                                          "(Bottleneck or C3k; not the attention variant)")
            if len(adds) > 1:
                raise ConversionError(f"{where}: blocks disagree on the residual shortcut")
            L.keys["shortcut"] = (adds.pop() if adds else name == "C3k2", BOOL)
            if name == "C3k2":
                L.keys["c3k"] = (c3k, BOOL)
        elif name == "SPPF":
            check_conv(m.cv1, where + ".cv1")
            check_conv(m.cv2, where + ".cv2")
            if getattr(m, "add", False):
                raise ConversionError(f"{where}: SPPF with a shortcut is not supported")
            k = m.m.kernel_size if isinstance(m.m.kernel_size, int) else m.m.kernel_size[0]
            L = Layer("sppf", frm, {"pool_size": (int(k), U32), "pool_repeats": (int(getattr(m, "n", 3)), U32)})
        elif name == "C2PSA":
            check_conv(m.cv1, where + ".cv1")
            check_conv(m.cv2, where + ".cv2")
            heads, key_dim = 1, 1
            for j, blk in enumerate(m.m):
                bw = f"{where}.m.{j}"
                if type(blk).__name__ != "PSABlock" or not blk.add:
                    raise ConversionError(f"{bw}: expected a PSABlock with shortcut")
                a = blk.attn
                check_conv(a.qkv, bw + ".attn.qkv", "Identity")
                check_conv(a.proj, bw + ".attn.proj", "Identity")
                check_conv(a.pe, bw + ".attn.pe", "Identity")
                check_conv(blk.ffn[0], bw + ".ffn.0")
                check_conv(blk.ffn[1], bw + ".ffn.1", "Identity")
                heads, key_dim = int(a.num_heads), int(a.key_dim)
            L = Layer("c2psa", frm, {"repeats": (len(m.m), U32), "heads": (heads, U32), "key_dim": (key_dim, U32)})
        elif name == "Upsample":
            if m.mode != "nearest" or m.size is not None:
                raise ConversionError(f"{where}: only nearest upsampling by an integer factor is supported")
            s = m.scale_factor
            s = s[0] if isinstance(s, (tuple, list)) else s
            if float(s) != int(s):
                raise ConversionError(f"{where}: scale factor {s} is not an integer")
            L = Layer("upsample", frm, {"scale": (int(s), U32)})
        elif name == "Concat":
            if m.d != 1:
                raise ConversionError(f"{where}: concat along dim {m.d}, expected 1 (channels)")
            L = Layer("concat", frm)
        else:
            raise ConversionError(f"{where}: module {name} is not supported (Conv, C2f, C3k2, SPPF, C2PSA, "
                                  "Upsample, Concat, Detect)")
        layers.append(L)
    # Detect's convs: the box branch and the class branch (legacy Conv or DWConv + Conv).
    # (Detect.legacy is a class attribute that parse_model overwrites: read the structure instead.)
    for lvl in range(detect.nl):
        legacy = type(detect.cv3[lvl][0]).__name__ == "Conv"
        for j in range(2):
            check_conv(detect.cv2[lvl][j], f"Detect.cv2.{lvl}.{j}")
            if legacy:
                check_conv(detect.cv3[lvl][j], f"Detect.cv3.{lvl}.{j}")
            else:
                check_conv(detect.cv3[lvl][j][0], f"Detect.cv3.{lvl}.{j}.0")
                check_conv(detect.cv3[lvl][j][1], f"Detect.cv3.{lvl}.{j}.1")
    dfrom = [j if j >= 0 else len(mods) - 1 + j for j in detect.f]
    return layers, dfrom, detect


def backbone_features(layers: List[Layer], n_backbone: int) -> List[int]:
    """features.{i}: the last backbone layer at each stride (P1/2, P2/4, P3/8, P4/16, P5/32)."""
    stride, strides = 1, []
    for L in layers[:n_backbone]:
        if L.type == "conv":
            stride *= int(L.keys["stride"][0])
        elif L.type == "upsample":
            stride //= int(L.keys["scale"][0])
        strides.append(stride)
    last = {}
    for i, s in enumerate(strides):
        last[s] = i
    return [last[s] for s in sorted(last)]


# ------------------------------------------------------------------------------- assembly
def build_converted(layers: List[Layer], detect_from: List[int], features: List[int], tensors, *,
                    version: str, nc: int, reg_max: int, strides: List[int], labels: Optional[List[str]],
                    imgsz: Tuple[int, int], name: str, source: str, source_class: str) -> ConvertedModel:
    hp = [("yolov8.version", version, STR), ("yolov8.num_channels", 3, U32),
          ("yolov8.layer_count", len(layers), U32)]
    for i, L in enumerate(layers):
        k = f"yolov8.layer.{i}."
        hp.append((k + "type", L.type, STR))
        if i > 0:
            hp.append((k + "from", [int(j) for j in L.frm], U32_ARRAY))
        for key, (v, kind) in L.keys.items():
            hp.append((k + key, v, kind))
    hp += [("yolov8.detect.from", [int(j) for j in detect_from], U32_ARRAY),
           ("yolov8.num_classes", int(nc), U32), ("yolov8.reg_max", int(reg_max), U32),
           ("yolov8.feature_layers", [int(j) for j in features], U32_ARRAY)]
    hp += [("detect.kind", "ultralytics_dfl", STR), ("detect.num_classes", int(nc), U32),
           ("detect.reg_max", int(reg_max), U32), ("detect.strides", [int(s) for s in strides], U32_ARRAY),
           ("detect.outputs", [f"pred.{i}" for i in range(len(detect_from))], STR_ARRAY)]
    if labels:
        if len(labels) != nc:
            raise ConversionError(f"{len(labels)} labels for {nc} classes")
        hp.append(("detect.labels", [str(s) for s in labels], STR_ARRAY))
    pp = LetterboxSpec(image_size=tuple(int(s) for s in imgsz), resize_mode="letterbox", crop_pct=1.0,
                       interpolation="bilinear", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                       stride=int(max(strides)))
    return ConvertedModel(arch="yolov8", name=name, source=source, source_class=source_class, hparams=hp,
                          preprocess=pp, tensors=tensors, labels=None,
                          notes=["batch norm folded into the convs", f"{len(layers)} layers + Detect ({nc} classes)"])


def _resolve_labels(labels, nc: int, names) -> Optional[List[str]]:
    from ._model import resolve_labels
    default = None
    if names is not None:
        default = [str(names[i]) for i in range(len(names))] if isinstance(names, dict) else list(names)
    return resolve_labels(labels, nc, default)


def _imgsz(v) -> Tuple[int, int]:
    if isinstance(v, (list, tuple)):
        return (int(v[0]), int(v[-1]))
    return (int(v), int(v)) if v else (640, 640)


def convert_model_object(model, *, name: str, source: str, labels=None, imgsz=640) -> ConvertedModel:
    """An ultralytics DetectionModel (a live object) -> ConvertedModel."""
    layers, dfrom, detect = layers_from_model(model)
    eps = {n: float(mod.eps) for n, mod in model.named_modules() if type(mod).__name__ == "BatchNorm2d"}
    sd = {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}
    tensors = fold_convs(sd, lambda p: eps.get(p + ".bn", BN_EPS))
    yaml = getattr(model, "yaml", {}) or {}
    n_backbone = len(yaml.get("backbone", [])) or dfrom[-1] + 1
    version = "11" if any(L.type in ("c3k2", "c2psa") for L in layers) else "8"
    strides = [int(s) for s in detect.stride.tolist()] if detect.stride.abs().sum() > 0 else [8, 16, 32]
    return build_converted(layers, dfrom, backbone_features(layers, n_backbone), tensors, version=version,
                           nc=int(detect.nc), reg_max=int(detect.reg_max), strides=strides,
                           labels=_resolve_labels(labels, int(detect.nc), getattr(model, "names", None)),
                           imgsz=_imgsz(imgsz), name=name, source=source,
                           source_class=f"ultralytics {type(model).__name__} (YOLO{'v8' if version == '8' else '11'})")


def convert_state_dict(sd: Dict[str, np.ndarray], model_name: str, *, name: str, source: str,
                       labels=None) -> ConvertedModel:
    m = _NAME_RE.match(os.path.basename(model_name).lower())
    if not m:
        raise ConversionError(f"--model-name {model_name!r}: expected an ultralytics yaml name such as "
                              "yolov8n.yaml or yolo11s.yaml (YOLOv8 / YOLO11 detection)")
    family = m.group(1)
    table, dfrom, features = TOPOLOGIES[family]
    layers, dfrom, features = layers_from_table(family, sd)
    d = len(layers)
    if f"model.{d}.cv2.0.2.weight" not in sd:
        raise ConversionError(f"no Detect head 'model.{d}.cv2.*' in the state dict: not a {family} detection model")
    nc = int(_need(sd, f"model.{d}.cv3.0.2.weight").shape[0])
    reg_max = int(sd[f"model.{d}.cv2.0.2.weight"].shape[0]) // 4
    tensors = fold_convs(sd)
    return build_converted(layers, dfrom, features, tensors, version="8" if family == "yolov8" else "11", nc=nc,
                           reg_max=reg_max, strides=[8, 16, 32], labels=_resolve_labels(labels, nc, None),
                           imgsz=(640, 640), name=name, source=source,
                           source_class=f"ultralytics {family} state dict")


# ------------------------------------------------------------------------------- loader
def is_ultralytics_pickle(path: str) -> bool:
    """A torch zip checkpoint whose pickle references ultralytics' model classes."""
    if not os.path.isfile(path) or not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as z:
            pkl = [n for n in z.namelist() if n.endswith("data.pkl")]
            return bool(pkl) and b"ultralytics.nn" in z.read(pkl[0])
    except (OSError, zipfile.BadZipFile):
        return False


def is_ultralytics(src: str, model_name: Optional[str]) -> bool:
    if not os.path.isfile(src):
        return False
    if model_name and _NAME_RE.match(os.path.basename(model_name).lower()):
        return True
    if src.lower().endswith(".pt") and is_ultralytics_pickle(src):
        return True
    # An ultralytics state dict (so the loader can ask for its yaml name).
    from ._state_dict import state_dict_keys_or_none
    try:
        keys = state_dict_keys_or_none(src)
    except Exception:  # noqa: BLE001 - not a state dict we can list: not ours
        return False
    return bool(keys) and "model.0.conv.weight" in keys and any(k.endswith(".dfl.conv.weight") for k in keys)


def _load_pt_object(path: str):
    from PIL import Image

    pil_open = Image.open
    try:
        import ultralytics  # noqa: F401  (registers the classes the pickle names)
        import torch
    except ImportError:
        raise ConversionError(f"{path} pickles an ultralytics model object: reading it needs the 'ultralytics' "
                              "package (pip install ultralytics), or convert its state dict with "
                              "--model-name yolov8n.yaml / yolo11n.yaml") from None
    finally:
        # Importing ultralytics replaces PIL.Image.open process-wide with a wrapper that pip-installs
        # pi-heif when Pillow cannot identify a file: put Pillow's own back, so that image loading
        # in this process (load_image's errors, the folder job's skipping) does not change.
        Image.open = pil_open
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unpickling failure names the file
        raise ConversionError(f"cannot read {path}: {e}") from e
    imgsz = 640
    if isinstance(ckpt, dict):
        imgsz = (ckpt.get("train_args") or {}).get("imgsz", 640)
        model = ckpt.get("ema") or ckpt.get("model")
    else:
        model = ckpt
    if model is None or not hasattr(model, "model"):
        raise ConversionError(f"{path} holds no ultralytics model object ('model' / 'ema')")
    return model.float().eval(), imgsz


def load_ultralytics(src: str, *, model_name: Optional[str] = None, labels=None, name: Optional[str] = None,
                     model_kwargs=None) -> ConvertedModel:
    if model_kwargs:
        raise ConversionError("model arguments (--model-arg) are not used by the ultralytics converter")
    base = os.path.splitext(os.path.basename(src))[0]
    if src.lower().endswith(".pt") and is_ultralytics_pickle(src):
        model, imgsz = _load_pt_object(src)
        return convert_model_object(model, name=name or base, source=os.path.abspath(src), labels=labels,
                                    imgsz=imgsz)
    if not model_name:
        raise ConversionError(f"{src}: a YOLO state dict needs --model-name (yolov8n.yaml, yolo11s.yaml, ...)")
    from .cnn import read_state_dict
    sd = read_state_dict(src)
    return convert_state_dict(sd, model_name, name=name or os.path.splitext(os.path.basename(model_name))[0],
                              source=os.path.abspath(src), labels=labels)
