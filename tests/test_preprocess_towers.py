"""Preprocessing of the vision towers (what the converters write into the GGUF, reproduced by
pyvitcpp.preprocess) vs the reference processors on real photos: HF CLIPImageProcessor,
SiglipImageProcessor, BitImageProcessor (DINOv2) with the PIL backend (exact) and the default
torchvision backend (rounding differences, bounded), and open_clip's eval transform."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers
from PIL import Image

from pyvitcpp import _core
from pyvitcpp.convert import convert
from pyvitcpp.preprocess import Preprocessor

DINO_PROC = dict(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224}, resample=3,
                 image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
FAMILIES = {
    "clip": (transformers.CLIPVisionModel,
             transformers.CLIPVisionConfig(hidden_size=24, intermediate_size=40, num_hidden_layers=1,
                                           num_attention_heads=3, image_size=28, patch_size=14),
             "CLIPImageProcessor", {}),
    "siglip": (transformers.SiglipVisionModel,
               transformers.SiglipVisionConfig(hidden_size=24, intermediate_size=40, num_hidden_layers=1,
                                               num_attention_heads=3, image_size=28, patch_size=14),
               "SiglipImageProcessor", {}),
    "dinov2": (transformers.Dinov2Model,
               transformers.Dinov2Config(hidden_size=24, num_hidden_layers=1, num_attention_heads=3, image_size=28,
                                         patch_size=14),
               "BitImageProcessor", DINO_PROC),
}


def photos(real_images):
    a = real_images[2]
    return [Image.fromarray(x) for x in real_images] + [Image.fromarray(a[13:290, 7:401]),
                                                         Image.fromarray(real_images[0]).convert("L")]


def ours_from(folder_or_gguf):
    return Preprocessor.from_metadata(_core.GGUFFile(str(folder_or_gguf)).metadata)


@pytest.mark.parametrize("backend", ["pil", "default"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_hf_processor(real_images, tmp_path, family, backend):
    Model, cfg, proc_name, proc_kw = FAMILIES[family]
    cls = getattr(transformers, proc_name + ("Pil" if backend == "pil" else ""))
    proc = cls(**proc_kw)
    model = Model(cfg)
    model.save_pretrained(tmp_path)
    proc.save_pretrained(tmp_path)
    convert(str(tmp_path), str(tmp_path / "m.gguf"), outtype="f16", verbose=False)
    ours = ours_from(tmp_path / "m.gguf")
    one_level = proc.rescale_factor / min(proc.image_std)
    for im in photos(real_images):
        ref = proc(images=im.convert("RGB"), return_tensors="np")["pixel_values"]
        got = ours([im])
        assert got.shape == ref.shape
        err = np.abs(got - ref)
        if backend == "pil":
            assert err.max() <= 1e-5, err.max()
        else:
            # Measured: the torchvision backend resizes the uint8 tensor with its own antialiased
            # bicubic, which rounds differently from PIL at <= 0.7% of pixels by one level (two
            # at one pixel of the odd-size crop). Open item: reproduce it exactly.
            assert err.max() <= 2 * one_level * 1.001, err.max() / one_level
            assert (err > 1e-5).mean() <= 0.01, (err > 1e-5).mean()


def test_open_clip_transform(real_images, tmp_path):
    import open_clip

    kw = dict(embed_dim=16, vision_cfg=dict(layers=1, width=32, head_width=16, patch_size=14, image_size=56),
              text_cfg=dict(context_length=8, vocab_size=50, width=16, heads=2, layers=1))
    model, _, transform = open_clip.create_model_and_transforms("ViT-B-32", pretrained=None, **kw)
    torch.save(model.state_dict(), tmp_path / "m.pth")
    convert(str(tmp_path / "m.pth"), str(tmp_path / "m.gguf"), outtype="f16", model_name="ViT-B-32", model_kwargs=kw,
            verbose=False)
    ours = ours_from(tmp_path / "m.gguf")
    for im in photos(real_images):
        ref = transform(im).numpy()[None]
        got = ours([im])
        assert got.shape == ref.shape
        assert np.abs(got - ref).max() <= 1e-5, np.abs(got - ref).max()


def test_encoder_image_size(real_images, tmp_path):
    """Encoder(image_size=...) preprocesses to that size (HF processor semantics at that size)
    and the tower runs there."""
    import pyvitcpp

    Model, cfg, proc_name, proc_kw = FAMILIES["dinov2"]
    proc = getattr(transformers, proc_name + "Pil")(**proc_kw)
    Model(cfg).save_pretrained(tmp_path)
    proc.save_pretrained(tmp_path)
    convert(str(tmp_path), str(tmp_path / "m.gguf"), outtype="f16", verbose=False)
    enc = pyvitcpp.Encoder(tmp_path / "m.gguf", image_size=(98, 140), threads=1)
    # the same processor asked for a 98x140 crop after a shorter-edge resize to 140 / (224/256)
    ref_proc = getattr(transformers, proc_name + "Pil")(**dict(proc_kw, size={"shortest_edge": 160},
                                                                crop_size={"height": 98, "width": 140}))
    for im in photos(real_images)[:3]:
        ref = ref_proc(images=im, return_tensors="np")["pixel_values"]
        np.testing.assert_allclose(enc.preprocess([im]), ref, atol=1e-5)
    out = enc.encode(photos(real_images)[:2], output="feature_map")
    assert out.shape == (2, 24, 7, 10)
