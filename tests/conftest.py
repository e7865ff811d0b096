"""Shared fixtures: real test images, seeded reference models, kernel-level helpers."""
from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image as _PILImage

# ultralytics (a test-only reference) replaces PIL.Image.open on import with a wrapper that tries to
# pip-install pi-heif when Pillow cannot identify a file. Keep it from installing anything, and give
# every test Pillow's own Image.open, whichever test module imported ultralytics first.
os.environ.setdefault("YOLO_AUTOINSTALL", "false")
os.environ.setdefault("YOLO_OFFLINE", "true")
_PIL_OPEN = _PILImage.open


@pytest.fixture(autouse=True)
def _pillow_open_unpatched():
    _PILImage.open = _PIL_OPEN
    yield


def isa_or_skip(isa: str) -> str:
    """Skip the calling test when this CPU cannot run the kernel level, naming what is missing."""
    from pyvitcpp import _core

    ok, missing = _core.isa_supported(isa)
    if not ok:
        pytest.skip(f"kernel level {isa} not runnable on this CPU: missing {missing}")
    return isa


def randomize_(model, seed: int, *, scale: float = 1.0) -> None:
    """Seeded weights with O(1) activations (default inits give near-constant outputs that
    would hide errors): matrices ~ N(0, 1/fan_in), biases ~ N(0, 0.1), norm scales ~ 1 + N(0, 0.1),
    tokens and position tables ~ N(0, 0.5)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim >= 2:
                fan_in = int(np.prod(p.shape[1:]))
                if "pos" in name or "position" in name:
                    p.copy_(torch.randn(p.shape, generator=g) * 0.5)
                else:
                    p.copy_(torch.randn(p.shape, generator=g) * scale / np.sqrt(fan_in))
            elif any(k in name for k in ("norm", "layernorm", "ln")) and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif "token" in name or "cls" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


@pytest.fixture(scope="session")
def real_images():
    """Real photos shipped with scikit-image (uint8 HxWx3)."""
    import skimage.data as skimage_data
    return [skimage_data.chelsea(), skimage_data.coffee(), skimage_data.astronaut()]


def image_batch(real_images, n: int, size: int, seed: int = 0) -> np.ndarray:
    """n float32 [3, size, size] inputs cut from real photos (different crops), normalised
    roughly like a processor would (mean 0.5, std 0.5)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, 3, size, size), np.float32)
    for i in range(n):
        img = real_images[i % len(real_images)]
        h, w = img.shape[:2]
        s = min(h, w, 4 * size)
        y = rng.integers(0, h - s + 1)
        x = rng.integers(0, w - s + 1)
        crop = img[y:y + s, x:x + s]
        idx = (np.arange(size) * s // size)
        crop = crop[idx][:, idx].astype(np.float32) / 255.0
        out[i] = ((crop - 0.5) / 0.5).transpose(2, 0, 1)
    return out


def fp32_bound(ref: np.ndarray, n_layers: int, k_max: int, c: float = 4.0) -> float:
    """Max-abs error allowed between two fp32 evaluations of the same network.

    Each reduction of length K in fp32 carries a relative error ~ sqrt(K) * u (u = 2^-24,
    random rounding; K u is the worst case). Errors of the 2 residual branches per block and
    the embedding/head add up, so with L_eff = 2 * (layers + 1) reductions on the path the
    output error is about L_eff * sqrt(K_max) * u relative to the output's magnitude; c covers
    normalisation gain (LayerNorm divides by the row's std) and the reference's own rounding."""
    u = 2.0 ** -24
    l_eff = 2 * (n_layers + 1)
    return float(c * l_eff * np.sqrt(k_max) * u * max(1.0, float(np.abs(ref).max())))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-300))
