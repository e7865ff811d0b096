"""Our preprocessing vs the reference processors on real photos (skimage), and the CLI on
real image files."""
from __future__ import annotations

import os

import numpy as np
import pytest
import transformers
from PIL import Image

from pyvitcpp.preprocess import Preprocessor


def _photos(real_images):
    # the three photos, a non-square odd-size crop and a grayscale image
    a = real_images[2]
    return [Image.fromarray(x) for x in real_images] + [Image.fromarray(a[13:290, 7:401]),
                                                         Image.fromarray(real_images[0]).convert("L")]


@pytest.mark.parametrize("size", [224, 28])
def test_hf_vit_processor(real_images, size):
    proc = transformers.ViTImageProcessor(size={"height": size, "width": size})
    ours = Preprocessor(image_size=(size, size), resize_mode="squash", interpolation="bilinear",
                        mean=proc.image_mean, std=proc.image_std, rescale_factor=proc.rescale_factor)
    for im in _photos(real_images):
        ref = proc(images=im.convert("RGB"), return_tensors="np")["pixel_values"]
        got = ours([im])
        assert got.shape == ref.shape
        err = np.abs(got - ref)
        # Measured: transformers 5's ViTImageProcessor rounds its bilinear resize differently
        # from PIL's integer path at 0.1-0.2% of pixels (chelsea, coffee), by exactly one
        # uint8 level; everywhere else the pixels are identical. Open item: reproduce its
        # rounding exactly.
        one_level = proc.rescale_factor / min(proc.image_std)
        assert err.max() <= one_level * 1.001, err.max()
        assert (err > 1e-5).mean() <= 0.005, (err > 1e-5).mean()


@pytest.mark.parametrize("name", ["deit_tiny_patch16_224", "vit_tiny_patch16_224"])
def test_timm_eval_transform(real_images, name, tmp_path):
    import timm
    import torch

    from pyvitcpp.convert import convert

    model = timm.create_model(name, pretrained=False, num_classes=3)
    cfg = timm.data.resolve_data_config({}, model=model)
    transform = timm.data.create_transform(**cfg)
    # the preprocessing our converter writes for this model, read back from the GGUF
    sd = tmp_path / "m.pth"
    torch.save(model.state_dict(), sd)
    out = tmp_path / "m.gguf"
    convert(str(sd), str(out), outtype="f16", model_name=name, verbose=False)
    from pyvitcpp import _core

    ours = Preprocessor.from_metadata(_core.GGUFFile(str(out)).metadata)
    for im in _photos(real_images):
        ref = transform(im.convert("RGB")).numpy()[None]
        got = ours([im])
        assert got.shape == ref.shape
        assert np.abs(got - ref).max() <= 1e-5, (name, np.abs(got - ref).max())


def test_cli_embed_classify(real_images, tmp_path, capsys):
    import timm
    import torch

    from pyvitcpp.cli import main

    torch.manual_seed(0)
    model = timm.create_model("deit_tiny_patch16_224", pretrained=False, num_classes=5).eval()
    sd = tmp_path / "m.pth"
    torch.save(model.state_dict(), sd)
    gguf = tmp_path / "m.gguf"
    assert main(["convert", str(sd), "-o", str(gguf), "--outtype", "f32",
                 "--model-name", "deit_tiny_patch16_224"]) == 0
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, a in enumerate(real_images):
        Image.fromarray(a).save(folder / f"{i}.png")
    npy = tmp_path / "e.npy"
    assert main(["embed", str(folder), "-m", str(gguf), "-o", str(npy), "-q"]) == 0
    emb = np.load(npy)
    assert emb.shape == (3, 192)
    # same numbers as timm on our preprocessed pixels
    from pyvitcpp import Encoder

    px = Encoder(gguf).preprocess([str(folder / f"{i}.png") for i in range(3)])
    with torch.no_grad():
        ref = model.forward_head(model.forward_features(torch.from_numpy(px)), pre_logits=True).numpy()
    np.testing.assert_allclose(emb, ref, atol=1e-4 * max(1.0, np.abs(ref).max()))
    capsys.readouterr()
    assert main(["classify", str(folder / "0.png"), "-m", str(gguf), "-k", "2"]) == 0
    text = capsys.readouterr().out
    assert "0.png" in text and text.count("(#") == 2
    assert main(["embed", str(tmp_path / "missing.jpg"), "-m", str(gguf), "-o", str(npy)]) == 2
    assert "missing.jpg" in capsys.readouterr().err


def test_crop_aware_resize_bounds_memory_and_matches(real_images):
    """A long thin image is resized only where the centre crop keeps it: the result equals the
    full resize-then-crop within one uint8 level, and a 1 x 20000 strip no longer takes
    gigabytes (it did: the shortest-edge resize made 224 x 4.48 M pixels)."""
    import subprocess
    import sys

    from PIL import Image

    from pyvitcpp import preprocess as pp

    p = pp.Preprocessor(image_size=(224, 224), resize_mode="shortest_edge_crop", crop_pct=0.875,
                        interpolation="bicubic", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    strip = np.ascontiguousarray(real_images[2][100:140, :, :])  # 40 x 512: ratio above the limit
    im = Image.fromarray(strip)
    fast = np.asarray(p._resize_crop(im), dtype=np.int16)
    ratio = pp.CROP_AWARE_RATIO
    try:
        pp.CROP_AWARE_RATIO = 10 ** 9  # the reference path: resize everything, then crop
        full = np.asarray(p._resize_crop(im), dtype=np.int16)
    finally:
        pp.CROP_AWARE_RATIO = ratio
    assert fast.shape == full.shape == (224, 224, 3)
    assert np.abs(fast - full).max() <= 1
    assert np.mean(fast != full) < 0.01
    # VmHWM of this process's own memory (ru_maxrss would carry the forking parent's peak)
    code = ("import numpy as np, pyvitcpp.preprocess as pp; "
            "p = pp.Preprocessor(image_size=(224, 224), resize_mode='shortest_edge_crop', crop_pct=0.875); "
            "x = p.one(np.full((1, 20000, 3), 128, np.uint8)); y = p.one(np.full((100000, 1, 3), 7, np.uint8)); "
            "assert x.shape == y.shape == (3, 224, 224); "
            "print([int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')][0])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(pp.__file__))))
    assert r.returncode == 0, r.stderr
    assert int(r.stdout.split()[-1]) < 400 * 1024, f"peak RSS {int(r.stdout.split()[-1]) // 1024} MB"
