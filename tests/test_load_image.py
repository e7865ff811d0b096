"""load_image: EXIF orientation (as HF's load_image), 16-bit / palette / alpha conversion, the
decompression-bomb limit with its override."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from pyvitcpp.preprocess import load_image, to_rgb


def test_exif_orientation_applied(tmp_path, real_images):
    img = real_images[0][:40, :60]  # 40 x 60, landscape
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(img, k=1)))  # stored rotated CCW: 60 high
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    p = tmp_path / "phone.png"
    stored.save(p, exif=exif)
    with Image.open(p) as raw:
        assert raw.size == (40, 60)
        want = np.asarray(ImageOps.exif_transpose(raw).convert("RGB"))
    got = load_image(p)
    assert got.size == (60, 40)
    np.testing.assert_array_equal(np.asarray(got), want)
    np.testing.assert_array_equal(np.asarray(got), img)  # upright again


def test_16bit_grey_png_scaled_not_clipped(tmp_path):
    ramp = (np.arange(64 * 32, dtype=np.uint32).reshape(32, 64) * 32).astype(np.uint16)  # 0 .. 65504
    p = tmp_path / "g16.png"
    Image.fromarray(ramp).save(p)
    with Image.open(p) as im:
        assert im.mode.startswith("I")
    got = np.asarray(load_image(p))
    assert got.shape == (32, 64, 3) and (got[..., 0] == got[..., 1]).all()
    np.testing.assert_array_equal(got[..., 0], np.rint(ramp / 257.0).astype(np.uint8))
    assert got.min() == 0 and got.max() == 255 and (got < 255).mean() > 0.9  # not clipped to white


def test_palette_with_transparency(tmp_path, real_images):
    rgb = Image.fromarray(real_images[1][:32, :32])
    pal = rgb.quantize(16)
    pal.info["transparency"] = 0
    p = tmp_path / "pal.png"
    pal.save(p, transparency=0)
    got = np.asarray(load_image(p))
    with Image.open(p) as im:
        want = np.asarray(im.convert("RGBA"))[..., :3]
    np.testing.assert_array_equal(got, want)
    la = Image.fromarray(np.stack([real_images[1][:8, :8, 0]] * 2, -1), "LA")
    np.testing.assert_array_equal(np.asarray(to_rgb(la))[..., 1], real_images[1][:8, :8, 0])


def test_decompression_bomb_limit(tmp_path, monkeypatch):
    p = tmp_path / "big.png"
    Image.new("L", (300, 200)).save(p)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50_000)
    with pytest.raises(ValueError, match=r"big\.png.*300x200 = 60000 pixels.*PYVITCPP_MAX_IMAGE_PIXELS"):
        load_image(p)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20_000)  # over 2x Pillow's limit: its own error, same message
    with pytest.raises(ValueError, match=r"big\.png.*PYVITCPP_MAX_IMAGE_PIXELS"):
        load_image(p)
    monkeypatch.setenv("PYVITCPP_MAX_IMAGE_PIXELS", "70000")
    assert load_image(p).size == (300, 200)
    monkeypatch.setenv("PYVITCPP_MAX_IMAGE_PIXELS", "59999")
    with pytest.raises(ValueError, match="59999"):
        load_image(p)
    monkeypatch.setenv("PYVITCPP_MAX_IMAGE_PIXELS", "0")
    assert load_image(p).size == (300, 200)
    monkeypatch.setenv("PYVITCPP_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(ValueError, match="integer"):
        load_image(p)


def test_undecodable_names_file(tmp_path):
    p = tmp_path / "x.jpg"
    p.write_text("hello")
    with pytest.raises(ValueError, match="x.jpg"):
        load_image(p)


def test_truncated_is_a_decode_error_and_a_directory_an_os_error(tmp_path, real_images):
    """The codec's failures (PIL's errno-less OSError "image file is truncated") are ValueErrors;
    the system's (a directory, EISDIR) stay OSErrors of their kind, naming the path (they were
    ValueErrors)."""
    p = tmp_path / "cut.png"
    Image.fromarray(real_images[0][:64, :64]).save(p)
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(ValueError, match="cut.png"):
        load_image(p)
    d = tmp_path / "folder.jpg"
    d.mkdir()
    with pytest.raises(IsADirectoryError) as e:
        load_image(d)
    assert e.value.filename == str(d)
