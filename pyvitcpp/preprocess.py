"""Image preprocessing that reproduces the reference processors, parameters from the GGUF.

- ``squash`` (HF ViTImageProcessor): resize to H x W with PIL, aspect not kept.
- ``shortest_edge_crop`` (timm eval transform, HF processors with a centre crop): resize the
  shorter edge to ``resize_size`` with PIL (longer edge int(size * long / short), as
  torchvision computes it), then centre crop H x W (offset rounded as the reference does).
- ``longest_edge_pad`` (SAM: segment_anything ResizeLongestSide, HF SamImageProcessor): resize
  so the longer edge is max(H, W) (each edge int(edge * scale + 0.5)), and after normalising,
  pad bottom/right with zeros to H x W.
Then scale by ``rescale_factor`` (1/255) and normalise per channel.
PIL does the resizing because both references resize with PIL, so the pixels match.
"""
from __future__ import annotations

import math
import os
from typing import Sequence

import numpy as np

_FILTERS = {"bilinear": "BILINEAR", "bicubic": "BICUBIC"}
RESIZE_MODES = ("squash", "shortest_edge_crop", "longest_edge_pad")
# shortest_edge_crop resizes only the cropped region when the whole resized image would be more
# than this many times the crop (memory stays bounded for any aspect ratio; ordinary photos,
# at most 4:1 or so, take the reference's exact resize-then-crop path).
CROP_AWARE_RATIO = 16


def load_image(path):
    """Open an image file as an RGB PIL image (FileNotFoundError / ValueError naming it)."""
    from PIL import Image, UnidentifiedImageError

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"image not found: {path}")
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"cannot decode image {path}: {e}") from None


def _numbers(name: str, value, n: int, *, integer: bool = False, positive: bool = True) -> np.ndarray:
    """value as n finite numbers (positive, whole when asked), or a ValueError naming the
    parameter and the model-file key it comes from (preprocess.<name>)."""
    try:
        a = np.asarray(value, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        a = np.empty(0)
    ok = a.size == n and bool(np.all(np.isfinite(a)))
    ok = ok and (not integer or bool(np.all(a == np.floor(a)))) and (not positive or bool(np.all(a > 0)))
    if not ok:
        what = f"{n} finite {'positive ' if positive else ''}{'whole ' if integer else ''}number{'s' if n > 1 else ''}"
        raise ValueError(f"{name} (preprocess.{name}) must be {what}, got {value!r}")
    return a


class Preprocessor:
    def __init__(self, *, image_size: Sequence[int], resize_mode: str = "squash", crop_pct: float = 1.0,
                 interpolation: str = "bilinear", mean: Sequence[float] = (0.5, 0.5, 0.5),
                 std: Sequence[float] = (0.5, 0.5, 0.5), rescale_factor: float = 1 / 255,
                 resize_size: Sequence[int] | None = None, crop_rounding: str = "round"):
        image_size = _numbers("image_size", image_size, 2, integer=True)
        if resize_mode not in RESIZE_MODES:
            raise ValueError(f"unsupported resize_mode {resize_mode!r} ({', '.join(RESIZE_MODES)})")
        if interpolation not in _FILTERS:
            raise ValueError(f"unsupported interpolation {interpolation!r} (bilinear, bicubic)")
        if crop_rounding not in ("round", "floor"):
            raise ValueError(f"unsupported crop_rounding {crop_rounding!r}")
        crop_pct = float(_numbers("crop_pct", crop_pct, 1)[0])
        if not 0 < crop_pct <= 1.0 + 1e-6:
            raise ValueError(f"crop_pct must be in (0, 1], got {crop_pct}")
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.resize_mode = resize_mode
        self.crop_pct = crop_pct
        self.interpolation = interpolation
        self.mean = _numbers("mean", mean, 3, positive=False).astype(np.float32).reshape(3, 1, 1)
        self.std = _numbers("std", std, 3).astype(np.float32).reshape(3, 1, 1)
        self.rescale_factor = float(_numbers("rescale_factor", rescale_factor, 1)[0])
        if resize_size is None:
            resize_size = tuple(int(math.floor(s / self.crop_pct)) for s in self.image_size)
        resize_size = _numbers("resize_size", resize_size, 2, integer=True)
        self.resize_size = (int(resize_size[0]), int(resize_size[1]))
        self.crop_rounding = crop_rounding

    @classmethod
    def from_metadata(cls, md: dict) -> "Preprocessor":
        def get(key, default=None):
            return md.get("preprocess." + key, default)

        size = get("image_size")
        if size is None and "clip.vision.image_size" in md:
            # A llama.cpp mmproj file: only the tower's size and mean/std are recorded; resize as
            # CLIPImageProcessor does (shortest edge bicubic, centre crop).
            s = int(md["clip.vision.image_size"])
            return cls(image_size=(s, s), resize_mode="shortest_edge_crop", crop_pct=1.0, interpolation="bicubic",
                       mean=md.get("clip.vision.image_mean", (0.5,) * 3), std=md.get("clip.vision.image_std", (0.5,) * 3),
                       resize_size=(s, s), crop_rounding="floor")
        if size is None:
            raise ValueError("the model file has no preprocess.image_size: cannot preprocess images "
                             "(pass float32 pixels to Encoder.forward instead)")
        try:
            return cls(image_size=size, resize_mode=get("resize_mode", "squash"), crop_pct=get("crop_pct", 1.0),
                       interpolation=get("interpolation", "bilinear"), mean=get("mean", (0.5,) * 3),
                       std=get("std", (0.5,) * 3), rescale_factor=get("rescale_factor", 1 / 255),
                       resize_size=get("resize_size"), crop_rounding=get("crop_rounding", "round"))
        except ValueError as e:  # the file's preprocess.* metadata: a GGUFError (a ValueError)
            from ._core import GGUFError
            raise GGUFError(f"preprocess metadata: {e}") from None

    def resized(self, image_size: Sequence[int]) -> "Preprocessor":
        """The same processing for another model input size (H, W), for towers run away from
        their native resolution: ``squash`` resizes to H x W; ``shortest_edge_crop`` resizes the
        shorter edge to floor(max(H, W) / crop_pct) and centre-crops H x W; ``longest_edge_pad``
        fits the image into H x W and pads."""
        if len(image_size) != 2 or min(image_size) < 1:
            raise ValueError(f"image_size must be (H, W), got {image_size}")
        h, w = int(image_size[0]), int(image_size[1])
        short = int(math.floor(max(h, w) / self.crop_pct + 1e-9))
        return Preprocessor(image_size=(h, w), resize_mode=self.resize_mode, crop_pct=self.crop_pct,
                            interpolation=self.interpolation, mean=self.mean.ravel(), std=self.std.ravel(),
                            rescale_factor=self.rescale_factor,
                            resize_size=(h, w) if self.resize_mode in ("squash", "longest_edge_pad") else (short, short),
                            crop_rounding=self.crop_rounding)

    def config(self) -> dict:
        return {"image_size": self.image_size, "resize_mode": self.resize_mode, "crop_pct": self.crop_pct,
                "interpolation": self.interpolation, "mean": self.mean.ravel().tolist(),
                "std": self.std.ravel().tolist(), "rescale_factor": self.rescale_factor,
                "resize_size": self.resize_size, "crop_rounding": self.crop_rounding}

    # ------------------------------------------------------------------------------------------
    def __call__(self, images) -> np.ndarray:
        if isinstance(images, np.ndarray) and images.dtype != np.uint8:
            return self._check_pixels(images)
        items = list(images) if isinstance(images, (list, tuple)) else [images]
        if not items:
            raise ValueError("no images given")
        out = np.empty((len(items), 3) + self.image_size, np.float32)
        for i, item in enumerate(items):
            out[i] = self.one(item)
        return out

    def one(self, image) -> np.ndarray:
        """One image (path, PIL image or uint8 HxWx3 / HxW array) -> float32 [3, H, W]."""
        from PIL import Image

        if isinstance(image, (str, os.PathLike)):
            im = load_image(image)
        elif isinstance(image, Image.Image):
            im = image if image.mode == "RGB" else image.convert("RGB")
        elif isinstance(image, np.ndarray):
            if image.dtype != np.uint8:
                raise TypeError(f"image arrays must be uint8 HxWx3 (got {image.dtype}); pass float32 "
                                "[B,3,H,W] pixels for already-preprocessed input")
            if image.ndim == 2:
                image = np.repeat(image[:, :, None], 3, axis=2)
            if image.ndim != 3 or image.shape[2] not in (3, 4):
                raise ValueError(f"image arrays must be HxWx3 (or HxW), got shape {image.shape}")
            im = Image.fromarray(np.ascontiguousarray(image[:, :, :3]), "RGB")
        else:
            raise TypeError(f"unsupported image type {type(image).__name__}: use a path, a PIL image, "
                            "a uint8 HxWx3 array or float32 [B,3,H,W] pixels")
        im = self._resize_crop(im)
        x = np.asarray(im, dtype=np.float32).transpose(2, 0, 1) * np.float32(self.rescale_factor)
        x = (x - self.mean) / self.std
        if self.resize_mode == "longest_edge_pad":  # zeros after normalising, as SAM pads
            out = np.zeros((3,) + self.image_size, np.float32)
            out[:, :x.shape[1], :x.shape[2]] = x
            return out
        return x

    def _resize_crop(self, im):
        from PIL import Image

        resample = getattr(Image.Resampling, _FILTERS[self.interpolation])
        H, W = self.image_size
        if min(im.size) < 1:  # (a 0-width array: no answer to give, and a division by zero below)
            raise ValueError(f"image {im.size[0]}x{im.size[1]} has no pixels")
        if self.resize_mode == "squash":
            return im.resize((W, H), resample)
        w, h = im.size
        if self.resize_mode == "longest_edge_pad":
            # HF: longest_edge / max(h, w); the same float when H == W, and fits a non-square H x W
            scale = min(H * 1.0 / h, W * 1.0 / w)
            new_w, new_h = int(w * scale + 0.5), int(h * scale + 0.5)
            if new_h > H or new_w > W:
                raise ValueError(f"image {w}x{h} resized to {new_w}x{new_h} does not fit {W}x{H}")
            return im if (new_w, new_h) == (w, h) else im.resize((new_w, new_h), resample)
        short = self.resize_size[0]
        if w <= h:
            new_w, new_h = short, int(short * h / w)
        else:
            new_h, new_w = short, int(short * w / h)
        rnd = (lambda v: int(round(v))) if self.crop_rounding == "round" else (lambda v: int(math.floor(v)))
        top, left = rnd((new_h - H) / 2.0), rnd((new_w - W) / 2.0)
        if top < 0 or left < 0:
            raise ValueError(f"image {w}x{h} resized to {new_w}x{new_h} is smaller than the crop {W}x{H}")
        if new_w * new_h > CROP_AWARE_RATIO * W * H:
            # A long thin image (a 1 x 20000 strip resized to 224 x 4.5 M pixels would take
            # gigabytes): resize only the source region the centre crop keeps. PIL's box= computes
            # the same filter taps from the whole image, so this equals resize-then-crop up to the
            # rounding of the box coordinates (at most one uint8 level, tests/test_preprocess_parity.py).
            sx, sy = w / new_w, h / new_h
            return im.resize((W, H), resample, box=(left * sx, top * sy, (left + W) * sx, (top + H) * sy))
        if (new_w, new_h) != (w, h):
            im = im.resize((new_w, new_h), resample)
        return im.crop((left, top, left + W, top + H))

    def _check_pixels(self, px: np.ndarray) -> np.ndarray:
        if px.dtype != np.float32:
            raise TypeError(f"preprocessed pixels must be float32, got {px.dtype}")
        if px.ndim == 3:
            px = px[None]
        if px.ndim != 4 or px.shape[1] != 3 or tuple(px.shape[2:]) != self.image_size:
            raise ValueError(f"preprocessed pixels must have shape [B, 3, {self.image_size[0]}, "
                             f"{self.image_size[1]}], got {tuple(px.shape)}")
        return np.ascontiguousarray(px)
