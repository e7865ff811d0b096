"""Encoder.encode on what pipelines hand over (generators, object arrays, uint8 NHWC batches),
iter_encode, the progress bar off a terminal, and pickling (spawned processes get the same
embeddings)."""
from __future__ import annotations

import multiprocessing
import pickle

import numpy as np
import pytest

from eco_util import make_hf_vit

import pyvitcpp


@pytest.fixture(scope="module")
def enc(tmp_path_factory):
    d = tmp_path_factory.mktemp("m")
    make_hf_vit(d / "hf", seed=7)
    return pyvitcpp.Encoder(pyvitcpp.convert(str(d / "hf"), str(d / "tiny.gguf"), outtype="f32", verbose=False),
                            threads=1)


@pytest.fixture(scope="module")
def imgs(real_images):
    return [np.ascontiguousarray(im[10:70, 20:100]) for im in real_images]  # same size: stackable


def test_iterables_object_arrays_and_nhwc(enc, imgs):
    want = enc.encode(list(imgs))
    np.testing.assert_array_equal(enc.encode(im for im in imgs), want)
    obj = np.empty(len(imgs), object)
    obj[:] = imgs
    np.testing.assert_array_equal(enc.encode(obj), want)
    np.testing.assert_array_equal(enc.encode(np.stack(imgs)), want)  # uint8 [N, H, W, 3]
    np.testing.assert_array_equal(enc.encode(imgs[1]), want[1:2])
    parts = list(enc.iter_encode(iter(imgs), batch_size=2))
    assert [p.shape[0] for p in parts] == [2, 1]
    np.testing.assert_array_equal(np.concatenate(parts), want)
    assert enc.encode(iter([])).shape[0] == 0
    with pytest.raises(TypeError, match="unsupported images"):
        enc.encode({"a": 1})
    with pytest.raises(ValueError, match="batch_size"):
        enc.encode(imgs, batch_size=0)


def test_progress_bar_off_terminal(enc, imgs, capsys):
    enc.encode(im for im in imgs)
    assert capsys.readouterr().err == ""
    enc.encode((im for im in imgs), show_progress_bar=True)
    assert "3img" in capsys.readouterr().err.replace(" ", "")


def _embed_in_child(e, imgs):
    return e.encode(imgs)


def test_pickle_round_trip(enc, imgs):
    e2 = pickle.loads(pickle.dumps(enc))
    assert e2.path == enc.path and e2.threads == 1 and e2.config["preprocess"] == enc.config["preprocess"]
    np.testing.assert_array_equal(e2.encode(imgs), enc.encode(imgs))
    small = pyvitcpp.Encoder(enc.path, image_size=(48, 48), nonfinite="ignore", mmap=False)
    s2 = pickle.loads(pickle.dumps(small))
    assert s2.preprocessor.image_size == (48, 48) and s2._nonfinite == "ignore"
    np.testing.assert_array_equal(s2.encode(imgs), small.encode(imgs))
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        got = pool.apply(_embed_in_child, (enc, imgs))
    np.testing.assert_array_equal(got, enc.encode(imgs))


def test_pickled_pretrained_name_reresolved(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    make_hf_vit(tmp_path / "hf", seed=8)
    e = pyvitcpp.Encoder.from_pretrained(str(tmp_path / "hf"), threads=1)
    blob = pickle.dumps(e)
    import os
    os.unlink(e.path)  # "another machine": the cached file is not there
    e2 = pickle.loads(blob)
    assert os.path.isfile(e2.path) and e2.threads == 1
    np.testing.assert_array_equal(e2.forward(np.ones((1, 3, 32, 32), np.float32)),
                                  pyvitcpp.Encoder(e2.path).forward(np.ones((1, 3, 32, 32), np.float32)))
