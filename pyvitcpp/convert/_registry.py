"""Loaders by source kind.  A later family (CLIP, SigLIP, DINOv2, CNNs, open_clip, ...) adds a
:class:`Loader` with :func:`register_loader`; :func:`detect_source` picks one for ``--source auto``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

from ._model import ConversionError, ConvertedModel, warn


@dataclass
class Loader:
    name: str
    description: str
    # (src, model_name) -> True when this loader recognises the source
    detect: Callable[[str, Optional[str]], bool]
    # (src, *, model_name, labels, name, model_kwargs) -> ConvertedModel
    load: Callable[..., ConvertedModel]
    priority: int = 100  # lower is asked first


_LOADERS: Dict[str, Loader] = {}


def register_loader(loader: Loader) -> None:
    _LOADERS[loader.name] = loader


def loaders() -> List[Loader]:
    return sorted(_LOADERS.values(), key=lambda ld: (ld.priority, ld.name))


def get_loader(name: str) -> Loader:
    try:
        return _LOADERS[name]
    except KeyError:
        raise ConversionError(f"unknown source kind {name!r} (known: {', '.join(sorted(_LOADERS))})") from None


def detect_source(src: str, model_name: Optional[str] = None) -> Loader:
    if not os.path.exists(src):
        raise FileNotFoundError(f"source not found: {src}")
    for ld in loaders():
        if ld.detect(src, model_name):
            return ld
    if os.path.isdir(src):
        if not os.path.isfile(os.path.join(src, "config.json")):
            raise FileNotFoundError(f"{src} has no config.json: not a Hugging Face or timm model folder")
        raise ConversionError(f"{src}/config.json names no model_type (transformers) or "
                              "architecture (timm): cannot tell what model this is")
    raise ConversionError(f"cannot tell what {src} is: expected a Hugging Face/timm folder or a "
                          ".safetensors/.pth/.pt/.bin state dict")


# --------------------------------------------------------------------------- built-in loaders
def _hf_detect(src: str, model_name: Optional[str]) -> bool:
    from .hf_vit import is_hf_folder
    return is_hf_folder(src)


def _hf_load(src, *, model_name=None, labels=None, name=None, model_kwargs=None):
    from .hf_vit import load_hf_vit
    if model_kwargs:
        raise ConversionError("model arguments (--model-arg) apply to timm models only")
    if model_name:
        warn(f"--model-name {model_name!r} ignored: a Hugging Face folder describes itself")
    return load_hf_vit(src, labels=labels, name=name)


def _timm_detect(src: str, model_name: Optional[str]) -> bool:
    from ._state_dict import SAFETENSORS_EXT, TORCH_EXT
    from .timm_vit import is_timm_folder
    if os.path.isdir(src):
        return is_timm_folder(src)
    return os.path.isfile(src) and src.lower().endswith(SAFETENSORS_EXT + TORCH_EXT)


def _timm_load(src, *, model_name=None, labels=None, name=None, model_kwargs=None):
    from .timm_vit import load_timm_vit
    return load_timm_vit(src, model_name=model_name, labels=labels, name=name,
                         model_kwargs=model_kwargs)


register_loader(Loader("hf", "Hugging Face transformers folder (ViT, DeiT)", _hf_detect, _hf_load, 10))
register_loader(Loader("timm", "timm state dict + model name, or timm hub folder (vit_*, deit_*)",
                       _timm_detect, _timm_load, 20))


# --------------------------------------------------------------------------- vision towers
def _tower_loader(module: str, detect_fn: str, load_fn: str):
    import importlib

    def detect(src, model_name):
        return getattr(importlib.import_module(f"{__package__}.{module}"), detect_fn)(src)

    def load(src, *, model_name=None, labels=None, name=None, model_kwargs=None):
        if model_kwargs:
            raise ConversionError("model arguments (--model-arg) apply to timm/open_clip models only")
        if model_name:
            warn(f"--model-name {model_name!r} ignored: a Hugging Face folder describes itself")
        return getattr(importlib.import_module(f"{__package__}.{module}"), load_fn)(src, labels=labels, name=name)

    return detect, load


register_loader(Loader("hf_clip", "Hugging Face CLIP folder (CLIPModel, CLIPVisionModel[WithProjection])",
                       *_tower_loader("hf_clip", "is_hf_clip", "load_hf_clip"), 5))
register_loader(Loader("hf_siglip", "Hugging Face SigLIP folder (SiglipModel, SiglipVisionModel)",
                       *_tower_loader("hf_siglip", "is_hf_siglip", "load_hf_siglip"), 5))
register_loader(Loader("hf_dinov2", "Hugging Face DINOv2 folder (Dinov2Model, Dinov2WithRegistersModel)",
                       *_tower_loader("hf_dinov2", "is_hf_dinov2", "load_hf_dinov2"), 5))


def _timm_tower_detect(src, model_name):
    from .timm_towers import is_timm_tower
    return is_timm_tower(src, model_name)


def _timm_tower_load(src, *, model_name=None, labels=None, name=None, model_kwargs=None):
    from .timm_towers import load_timm_tower
    return load_timm_tower(src, model_name=model_name, labels=labels, name=name, model_kwargs=model_kwargs)


register_loader(Loader("timm_tower", "timm DINOv2 / SigLIP state dict + model name (vit_*_dinov2, "
                       "*_reg4_dinov2, vit_*_siglip_*)", _timm_tower_detect, _timm_tower_load, 15))


def _open_clip_detect(src, model_name):
    from .open_clip import is_open_clip
    return is_open_clip(src, model_name)


def _open_clip_load(src, *, model_name=None, labels=None, name=None, model_kwargs=None):
    from .open_clip import load_open_clip
    return load_open_clip(src, model_name=model_name, labels=labels, name=name, model_kwargs=model_kwargs)


register_loader(Loader("open_clip", "open_clip ViT state dict + model name (ViT-B-32, ViT-B-16-quickgelu, ...)",
                       _open_clip_detect, _open_clip_load, 12))
def _cnn_detect(src: str, model_name: Optional[str]) -> bool:
    from .cnn import sniff
    return os.path.isfile(src) and sniff(src) is not None


def _cnn_load(src, *, model_name=None, labels=None, name=None, model_kwargs=None):
    from .cnn import load_cnn
    return load_cnn(src, model_name=model_name, labels=labels, name=name, model_kwargs=model_kwargs)


register_loader(Loader("cnn", "EfficientNet-Lite (lukemelas/timm) or ResNet (timm/torchvision) state dict; "
                              ".pth read without torch", _cnn_detect, _cnn_load, 15))


def _sam_detect(src: str, model_name: Optional[str]) -> bool:
    from .sam import is_hf_sam, is_sam_checkpoint
    return is_hf_sam(src) if os.path.isdir(src) else is_sam_checkpoint(src)


def _sam_load(src, *, model_name=None, labels=None, name=None, model_kwargs=None):
    from .sam import load_hf_sam, load_sam_checkpoint
    if model_name:
        warn(f"--model-name {model_name!r} ignored: SAM's configuration comes from the checkpoint")
    if os.path.isdir(src):
        if model_kwargs:
            raise ConversionError("model arguments (--model-arg) apply to segment_anything checkpoints only "
                                  "(a Hugging Face folder describes itself)")
        return load_hf_sam(src, labels=labels, name=name)
    return load_sam_checkpoint(src, labels=labels, name=name, model_kwargs=model_kwargs)


register_loader(Loader("sam", "Segment Anything image encoder: segment_anything .pth (sam_vit_b/l/h; "
                              "read without torch) or Hugging Face SamModel / SamVisionModel folder",
                       _sam_detect, _sam_load, 4))


def _darknet_detect(src: str, model_name: Optional[str]) -> bool:
    from .darknet import is_darknet_weights
    return is_darknet_weights(src)


def _darknet_load(src, *, model_name=None, labels=None, name=None, model_kwargs=None):
    from .darknet import load_darknet
    kw = dict(model_kwargs or {})
    cfg = kw.pop("cfg", None)
    if kw:
        raise ConversionError(f"darknet conversion takes no model arguments (got {', '.join(kw)}); use --cfg")
    if model_name:
        warn(f"--model-name {model_name!r} ignored: darknet's configuration is its .cfg")
    return load_darknet(src, cfg, labels=labels, name=name)


register_loader(Loader("darknet", "Darknet YOLO .weights + .cfg (same stem beside it, or --cfg): YOLOv3, "
                                  "YOLOv3-tiny, YOLOv4-tiny", _darknet_detect, _darknet_load, 3))

def _ultralytics_detect(src: str, model_name: Optional[str]) -> bool:
    from .ultralytics import is_ultralytics
    return is_ultralytics(src, model_name)


def _ultralytics_load(src, *, model_name=None, labels=None, name=None, model_kwargs=None):
    from .ultralytics import load_ultralytics
    return load_ultralytics(src, model_name=model_name, labels=labels, name=name, model_kwargs=model_kwargs)


register_loader(Loader("ultralytics", "Ultralytics YOLOv8 / YOLO11 detection: .pt checkpoint (needs the ultralytics "
                                      "package) or state dict + --model-name yolov8n.yaml / yolo11n.yaml",
                       _ultralytics_detect, _ultralytics_load, 3))

def _swin_detect(src: str, model_name: Optional[str]) -> bool:
    from .swin import is_hf_swin, is_timm_swin
    return is_hf_swin(src) if os.path.isdir(src) else is_timm_swin(src, model_name)


def _swin_load(src, *, model_name=None, labels=None, name=None, model_kwargs=None):
    from .swin import load_hf_swin, load_timm_swin
    if os.path.isdir(src):
        if model_kwargs:
            raise ConversionError("model arguments (--model-arg) apply to timm models only")
        if model_name:
            warn(f"--model-name {model_name!r} ignored: a Hugging Face folder describes itself")
        return load_hf_swin(src, labels=labels, name=name)
    return load_timm_swin(src, model_name=model_name, labels=labels, name=name, model_kwargs=model_kwargs)


register_loader(Loader("swin", "Swin Transformer V1/V2: timm swin_* / swinv2_* state dict + model name, or "
                               "Hugging Face Swin / Swinv2 folder", _swin_detect, _swin_load, 3))
