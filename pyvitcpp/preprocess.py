"""Image preprocessing that reproduces the reference processors, parameters from the GGUF.

- ``squash`` (HF ViTImageProcessor): resize to H x W with PIL, aspect not kept.
- ``shortest_edge_crop`` (timm eval transform, HF processors with a centre crop): resize the
  shorter edge to ``resize_size`` with PIL (longer edge int(size * long / short), as
  torchvision computes it), then centre crop H x W (offset rounded as the reference does).
- ``longest_edge_pad`` (SAM: segment_anything ResizeLongestSide, HF SamImageProcessor): resize
  so the longer edge is max(H, W) (each edge int(edge * scale + 0.5)), and after normalising,
  pad bottom/right with zeros to H x W.
- ``letterbox`` (darknet, ultralytics): resize keeping the aspect ratio so the image fits H x W
  (``letterbox_geometry``: scale r = min(H / h, W / w), the resized size and the centre offsets
  rounded as ``letterbox_rounding`` says: ``ultralytics`` (LetterBox: round(w r), round(dw -+ 0.1))
  or ``darknet`` (letterbox_image: integer division)), then pad around it with ``pad_value``
  (in [0, 1] units, before normalising: 0.5 darknet, 114/255 ultralytics). ``stride``: the model's
  input sides must be multiples of it. The geometry is kept so boxes map back to the image.
Then scale by ``rescale_factor`` (1/255) and normalise per channel.
PIL does the resizing because both references resize with PIL, so the pixels match.
"""
from __future__ import annotations

import math
import os
from typing import Sequence

import numpy as np

_FILTERS = {"bilinear": "BILINEAR", "bicubic": "BICUBIC"}
RESIZE_MODES = ("squash", "shortest_edge_crop", "longest_edge_pad", "letterbox")
LETTERBOX_ROUNDING = ("ultralytics", "darknet")


def letterbox_geometry(w: int, h: int, H: int, W: int, rounding: str = "ultralytics"):
    """Where an image of w x h lands in a letterboxed H x W input: (scale, new_w, new_h, left, top).
    A box in input pixels maps back to the image as (x - left) / scale, (y - top) / scale."""
    if w < 1 or h < 1:
        raise ValueError(f"image of size {w}x{h} cannot be letterboxed")
    if rounding == "darknet":  # darknet's letterbox_image (integer arithmetic)
        if W / w < H / h:
            new_w, new_h = W, max(1, (h * W) // w)
        else:
            new_h, new_w = H, max(1, (w * H) // h)
        left, top = (W - new_w) // 2, (H - new_h) // 2
    else:  # ultralytics LetterBox(center=True)
        r = min(H / h, W / w)
        new_w, new_h = max(1, int(round(w * r))), max(1, int(round(h * r)))
        left, top = int(round((W - new_w) / 2 - 0.1)), int(round((H - new_h) / 2 - 0.1))
    scale_x, scale_y = new_w / w, new_h / h
    return (scale_x, scale_y), new_w, new_h, left, top
# shortest_edge_crop resizes only the cropped region when the whole resized image would be more
# than this many times the crop (memory stays bounded for any aspect ratio; ordinary photos,
# at most 4:1 or so, take the reference's exact resize-then-crop path).
CROP_AWARE_RATIO = 16


def max_image_pixels():
    """The decompression-bomb limit load_image applies: ``PYVITCPP_MAX_IMAGE_PIXELS`` when set
    (0 or "none": no limit; it then also becomes Pillow's own limit), else Pillow's
    ``PIL.Image.MAX_IMAGE_PIXELS`` (None: no limit; default 89,478,485 pixels, about 9459 x 9459)."""
    from PIL import Image

    env = os.environ.get("PYVITCPP_MAX_IMAGE_PIXELS")
    if env is not None and env.strip():
        if env.strip().lower() in ("0", "none"):
            Image.MAX_IMAGE_PIXELS = None
            return None
        try:
            limit = int(env)
        except ValueError:
            raise ValueError(f"PYVITCPP_MAX_IMAGE_PIXELS must be an integer (0: no limit), got {env!r}") from None
        # Pillow's own guard (a warning above its limit, an error above twice that) follows ours
        Image.MAX_IMAGE_PIXELS = limit
        return limit
    return Image.MAX_IMAGE_PIXELS


def to_rgb(im):
    """A PIL image of any mode as 8-bit RGB: 16-bit and 32-bit integer greyscale scaled to 0..255
    (Pillow's convert("RGB") clips them, so a 16-bit PNG turns white), float images in [0, 1]
    scaled, palette images through RGBA (transparency in the palette), alpha dropped as the
    reference loaders (HF load_image, timm) drop it."""
    from PIL import Image

    if im.mode == "RGB":
        return im
    if im.mode.startswith("I") or im.mode == "F":
        a = np.asarray(im)
        if im.mode.startswith("I;16") or (im.mode == "I" and a.size and a.max() > 255):
            a = np.clip(a.astype(np.float64) / 257.0, 0, 255)  # 65535 -> 255
        elif im.mode == "F" and a.size and np.nanmax(a) <= 1.0:
            a = np.clip(np.nan_to_num(a.astype(np.float64)) * 255.0, 0, 255)
        a = np.clip(np.nan_to_num(a), 0, 255)
        return Image.fromarray(np.rint(a).astype(np.uint8), "L").convert("RGB")
    if im.mode == "P":
        im = im.convert("RGBA")
    return im.convert("RGB")


def load_image(path):
    """Open an image file as an RGB PIL image, as HF's load_image does: EXIF orientation applied,
    16-bit / palette / alpha images converted (to_rgb).

    Raises FileNotFoundError for a missing file, an OSError of the system's kind naming the file
    when it cannot be read (a directory: IsADirectoryError, no permission: PermissionError),
    ValueError naming the file for an undecodable one, and ValueError naming the file and its pixel count for an image over the
    decompression-bomb limit (max_image_pixels(): raise it with PYVITCPP_MAX_IMAGE_PIXELS or
    PIL.Image.MAX_IMAGE_PIXELS)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"image not found: {path}")
    limit = max_image_pixels()
    try:
        with Image.open(path) as im:
            w, h = im.size
            if limit is not None and w * h > limit:
                raise Image.DecompressionBombError(f"{w}x{h} = {w * h} pixels")
            im.load()
            return to_rgb(ImageOps.exif_transpose(im))
    except Image.DecompressionBombError as e:
        raise ValueError(f"image {path} is too large: {e}; the limit is {limit} pixels (decompression-bomb "
                         "guard; raise it with PYVITCPP_MAX_IMAGE_PIXELS=N, 0 for none, or "
                         "PIL.Image.MAX_IMAGE_PIXELS)") from None
    except UnidentifiedImageError as e:
        raise ValueError(f"cannot decode image {path}: {e}") from None
    except OSError as e:
        if e.errno is not None:  # the system's refusal (EISDIR, EACCES, EIO...), not the codec's
            raise OSError(e.errno, f"cannot read image: {e.strerror}", path) from None
        raise ValueError(f"cannot decode image {path}: {e}") from None
    except SyntaxError as e:
        raise ValueError(f"cannot decode image {path}: {e}") from None


def to_pil(image):
    """One image (path, PIL image or uint8 HxWx3 / HxW array) -> an RGB PIL image."""
    from PIL import Image

    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
    if isinstance(image, Image.Image):
        return to_rgb(image)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise TypeError(f"image arrays must be uint8 HxWx3 (got {image.dtype}); pass float32 "
                            "[B,3,H,W] pixels for already-preprocessed input")
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        if image.ndim != 3 or image.shape[2] not in (3, 4):
            raise ValueError(f"image arrays must be HxWx3 (or HxW), got shape {image.shape}")
        return Image.fromarray(np.ascontiguousarray(image[:, :, :3]), "RGB")
    raise TypeError(f"unsupported image type {type(image).__name__}: use a path, a PIL image, "
                    "a uint8 HxWx3 array or float32 [B,3,H,W] pixels")


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
                 resize_size: Sequence[int] | None = None, crop_rounding: str = "round",
                 pad_value: float = 114 / 255, stride: int = 1, letterbox_rounding: str = "ultralytics"):
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
        if letterbox_rounding not in LETTERBOX_ROUNDING:
            raise ValueError(f"unsupported letterbox_rounding {letterbox_rounding!r} ({', '.join(LETTERBOX_ROUNDING)})")
        stride = int(_numbers("stride", stride, 1, integer=True)[0])
        if resize_mode == "letterbox" and (image_size[0] % stride or image_size[1] % stride):
            raise ValueError(f"image_size {tuple(int(v) for v in image_size)} must be a multiple of the model's "
                             f"stride {stride}")
        self.pad_value = float(_numbers("pad_value", pad_value, 1, positive=False)[0])
        self.stride = stride
        self.letterbox_rounding = letterbox_rounding
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
                       resize_size=get("resize_size"), crop_rounding=get("crop_rounding", "round"),
                       pad_value=get("pad_value", 114 / 255), stride=get("stride", 1),
                       letterbox_rounding=get("letterbox_rounding", "ultralytics"))
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
                            resize_size=(h, w) if self.resize_mode in ("squash", "longest_edge_pad", "letterbox")
                            else (short, short),
                            crop_rounding=self.crop_rounding, pad_value=self.pad_value, stride=self.stride,
                            letterbox_rounding=self.letterbox_rounding)

    def config(self) -> dict:
        return {"image_size": self.image_size, "resize_mode": self.resize_mode, "crop_pct": self.crop_pct,
                "interpolation": self.interpolation, "mean": self.mean.ravel().tolist(),
                "std": self.std.ravel().tolist(), "rescale_factor": self.rescale_factor,
                "resize_size": self.resize_size, "crop_rounding": self.crop_rounding,
                **({"pad_value": self.pad_value, "stride": self.stride, "letterbox_rounding": self.letterbox_rounding}
                   if self.resize_mode == "letterbox" else {})}

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
        im = to_pil(image)
        if self.resize_mode == "letterbox":
            return self._letterbox(im)
        im = self._resize_crop(im)
        x = np.asarray(im, dtype=np.float32).transpose(2, 0, 1) * np.float32(self.rescale_factor)
        x = (x - self.mean) / self.std
        if self.resize_mode == "longest_edge_pad":  # zeros after normalising, as SAM pads
            out = np.zeros((3,) + self.image_size, np.float32)
            out[:, :x.shape[1], :x.shape[2]] = x
            return out
        return x

    def letterbox_geometry(self, w: int, h: int):
        """(scale_xy, new_w, new_h, left, top) of a w x h image in this letterboxed input."""
        return letterbox_geometry(w, h, self.image_size[0], self.image_size[1], self.letterbox_rounding)

    def _letterbox(self, im) -> np.ndarray:
        from PIL import Image

        _, new_w, new_h, left, top = self.letterbox_geometry(*im.size)
        if (new_w, new_h) != im.size:
            im = im.resize((new_w, new_h), getattr(Image.Resampling, _FILTERS[self.interpolation]))
        out = np.full((3,) + self.image_size, np.float32(self.pad_value), np.float32)
        out[:, top:top + new_h, left:left + new_w] = (np.asarray(im, dtype=np.float32).transpose(2, 0, 1)
                                                      * np.float32(self.rescale_factor))
        return (out - self.mean) / self.std

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
