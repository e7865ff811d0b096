"""The converter's neutral description of a model, shared by every loader and the writer.

A loader reads a checkpoint and returns a :class:`ConvertedModel`; :mod:`.writer` turns that into
a GGUF file following docs/GGUF_SCHEMA.md.  Keeping the two apart means a new source family only
has to fill this structure.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np


class ConversionError(ValueError):
    """A checkpoint the converter cannot (or will not) turn into a GGUF file.

    A ValueError so callers that only know the documented contract (ValueError for unsupported
    input) catch it.
    """


def warn(msg: str) -> None:
    warnings.warn(msg, UserWarning, stacklevel=3)


# Metadata value kinds understood by the writer.
U32, F32, STR, U32_ARRAY, F32_ARRAY, STR_ARRAY, BOOL = "u32", "f32", "str", "u32[]", "f32[]", "str[]", "bool"


@dataclass
class PreprocessSpec:
    """The schema's ``preprocess.*`` keys.

    ``resize_size`` and ``crop_rounding`` are the two keys beyond the schema table that exact
    reproduction needs: the resize target before the centre crop (as the reference computed it in
    double precision, so it does not depend on re-deriving it from an f32 ``crop_pct``) and how the
    crop offset is rounded (torchvision: ``round``, Hugging Face: ``floor``).
    """

    image_size: Tuple[int, int]
    resize_mode: str  # "squash" | "shortest_edge_crop" | "longest_edge_pad" | "letterbox"
    crop_pct: float
    interpolation: str  # "bilinear" | "bicubic"
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    rescale_factor: float = 1.0 / 255.0
    resize_size: Optional[Tuple[int, int]] = None
    crop_rounding: str = "round"  # "round" (torchvision) | "floor" (Hugging Face)
    channel_order: str = "rgb"

    def __post_init__(self) -> None:
        if self.resize_mode not in ("squash", "shortest_edge_crop", "longest_edge_pad", "letterbox"):
            raise ConversionError(f"unsupported resize mode {self.resize_mode!r}")
        if self.interpolation not in ("bilinear", "bicubic"):
            raise ConversionError(
                f"unsupported interpolation {self.interpolation!r} (supported: bilinear, bicubic)")
        if self.crop_rounding not in ("round", "floor"):
            raise ConversionError(f"unsupported crop rounding {self.crop_rounding!r}")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ConversionError(f"mean/std must have 3 entries, got {self.mean} / {self.std}")
        if self.resize_size is None:
            self.resize_size = tuple(int(math.floor(s / self.crop_pct)) for s in self.image_size)

    def metadata(self) -> List[Tuple[str, object, str]]:
        return [
            ("preprocess.image_size", [int(self.image_size[0]), int(self.image_size[1])], U32_ARRAY),
            ("preprocess.resize_mode", self.resize_mode, STR),
            ("preprocess.crop_pct", float(self.crop_pct), F32),
            ("preprocess.interpolation", self.interpolation, STR),
            ("preprocess.rescale_factor", float(self.rescale_factor), F32),
            ("preprocess.mean", [float(v) for v in self.mean], F32_ARRAY),
            ("preprocess.std", [float(v) for v in self.std], F32_ARRAY),
            ("preprocess.channel_order", self.channel_order, STR),
            ("preprocess.resize_size", [int(self.resize_size[0]), int(self.resize_size[1])], U32_ARRAY),
            ("preprocess.crop_rounding", self.crop_rounding, STR),
        ]


@dataclass
class ConvertedModel:
    arch: str
    name: str
    source: str
    source_class: str
    hparams: List[Tuple[str, object, str]]
    preprocess: PreprocessSpec
    tensors: Dict[str, np.ndarray]
    labels: Optional[List[str]] = None
    notes: List[str] = field(default_factory=list)

    def metadata(self) -> List[Tuple[str, object, str]]:
        kv: List[Tuple[str, object, str]] = [
            ("general.name", self.name, STR),
            ("pyvitcpp.source", self.source, STR),
            ("pyvitcpp.source_class", self.source_class, STR),
        ]
        kv += self.hparams
        kv += self.preprocess.metadata()
        if self.labels:
            kv.append(("classifier.labels", list(self.labels), STR_ARRAY))
        return kv


def as_f32(a) -> np.ndarray:
    """Any array-like (numpy, torch tensor incl. bf16) -> float32 numpy."""
    if hasattr(a, "detach"):  # torch tensor: numpy() cannot take bf16
        a = a.detach().to("cpu").float().numpy()
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32))


def resolve_labels(labels, num_classes: int, default: Optional[Sequence[str]]) -> Optional[List[str]]:
    """Labels to write: the caller's (list or a text file, one per line), else ``default``,
    else ``LABEL_i``.  None when the model has no classifier."""
    if num_classes <= 0:
        if labels is not None:
            warn("labels given but the model has no classifier head: labels not written")
        return None
    if labels is not None:
        if isinstance(labels, (str, bytes)) or hasattr(labels, "__fspath__"):
            import os
            path = os.fspath(labels)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"labels file not found: {path}")
            with open(path, encoding="utf-8") as f:
                labels = [ln.rstrip("\r\n") for ln in f]
            while labels and labels[-1] == "":
                labels.pop()
        labels = [str(v) for v in labels]
        if len(labels) != num_classes:
            raise ConversionError(
                f"{len(labels)} labels given but the classifier has {num_classes} classes")
        return labels
    if default is not None:
        default = [str(v) for v in default]
        if len(default) == num_classes:
            return default
        warn(f"{len(default)} labels in the checkpoint for {num_classes} classes: using LABEL_i")
    return [f"LABEL_{i}" for i in range(num_classes)]


def imagenet_labels() -> List[str]:
    """The 1000 ImageNet-1k class names in class-index order (pyvitcpp/data/imagenet_classes.txt)."""
    try:
        from importlib.resources import files
        text = files("pyvitcpp").joinpath("data/imagenet_classes.txt").read_text(encoding="utf-8")
    except (ImportError, FileNotFoundError, ModuleNotFoundError):  # pragma: no cover
        import os
        path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "imagenet_classes.txt")
        with open(path, encoding="utf-8") as f:
            text = f.read()
    names = text.splitlines()
    if len(names) != 1000:  # pragma: no cover - a packaging error
        raise RuntimeError(f"imagenet_classes.txt has {len(names)} lines, expected 1000")
    return names
