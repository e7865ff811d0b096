"""Helpers for the ecosystem tests (hub, pipeline, Ray): a tiny seeded HF ViT folder and a
folder of real photos (scikit-image) cut into JPEG crops."""
from __future__ import annotations

import os

import numpy as np

from conftest import randomize_


def make_hf_vit(folder, seed: int = 0):
    """A tiny transformers ViTModel with every parameter seeded, saved as a HF folder
    (config.json + model.safetensors); returns the torch model."""
    import torch
    import transformers

    cfg = transformers.ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                 intermediate_size=64, image_size=32, patch_size=16)
    torch.manual_seed(seed)
    model = transformers.ViTModel(cfg).eval()
    randomize_(model, seed)
    model.save_pretrained(str(folder), safe_serialization=True)
    return model


def write_photos(folder, n: int, seed: int = 0, size=(48, 64), ext: str = ".jpg"):
    """n random crops of scikit-image photos as files; returns their paths, sorted."""
    import skimage.data as d
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    srcs = [d.chelsea(), d.coffee(), d.astronaut()]
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        img = srcs[i % 3]
        h, w = size
        y = int(rng.integers(0, img.shape[0] - h))
        x = int(rng.integers(0, img.shape[1] - w))
        p = os.path.join(os.fspath(folder), f"img_{i:04d}{ext}")
        Image.fromarray(np.ascontiguousarray(img[y:y + h, x:x + w])).save(p, quality=90)
        paths.append(p)
    return sorted(paths)
