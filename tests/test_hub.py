"""Encoder.from_pretrained / pyvitcpp.hub: local HF folders, .gguf files, hub ids served from a
pre-filled local Hugging Face cache (HF_HUB_OFFLINE=1), the conversion cache, offline errors."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from conftest import cosine
from eco_util import make_hf_vit, write_photos

import pyvitcpp
from pyvitcpp import cli, hub


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    calls = []
    real = hub._run_converter

    def counting(*a, **k):
        calls.append(a[0])
        return real(*a, **k)

    monkeypatch.setattr(hub, "_run_converter", counting)
    return calls


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("hf") / "tiny-vit"
    model = make_hf_vit(d, seed=3)
    return d, model


def _reference(model, enc, paths):
    import torch

    px = enc.preprocess(paths)
    with torch.no_grad():
        return model(pixel_values=torch.from_numpy(px)).pooler_output.numpy(), px


def test_local_folder_converted_once(env, hf_folder, tmp_path):
    folder, model = hf_folder
    paths = write_photos(tmp_path / "img", 3)
    enc = pyvitcpp.Encoder.from_pretrained(str(folder))
    assert env == [os.path.abspath(folder)]
    cached = os.path.join(str(tmp_path / "xdg"), "pyvitcpp", "converted")
    assert os.path.dirname(enc.path) == cached and enc.path.endswith(".gguf")
    ref, px = _reference(model, enc, paths)
    got = enc.forward(px, "embedding")
    assert cosine(got, ref) > 0.99999 and np.abs(got - ref).max() < 1e-4
    # second call: the cached GGUF, no conversion
    mtime = os.stat(enc.path).st_mtime_ns
    enc2 = pyvitcpp.Encoder.from_pretrained(str(folder))
    assert env == [os.path.abspath(folder)] and enc2.path == enc.path
    assert os.stat(enc.path).st_mtime_ns == mtime
    # another dtype is another cache entry
    enc16 = pyvitcpp.Encoder.from_pretrained(str(folder), dtype="f16")
    assert len(env) == 2 and enc16.path != enc.path and "-f16-" in os.path.basename(enc16.path)
    assert sorted(os.listdir(cached)) == sorted([os.path.basename(enc.path), os.path.basename(enc16.path)])


def test_edited_source_is_converted_again(env, tmp_path):
    folder = tmp_path / "m"
    make_hf_vit(folder, seed=1)
    a = pyvitcpp.Encoder.from_pretrained(str(folder)).path
    make_hf_vit(folder, seed=2)  # new weights, same place
    st = os.stat(folder / "model.safetensors")
    os.utime(folder / "model.safetensors", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    b = pyvitcpp.Encoder.from_pretrained(str(folder)).path
    assert a != b and len(env) == 2


def _fill_hub_cache(root, repo_id, files: dict, commit="0123456789abcdef0123456789abcdef01234567"):
    """The huggingface_hub cache layout: models--org--name/{refs/main, snapshots/<commit>/...}."""
    d = root / ("models--" + repo_id.replace("/", "--"))
    (d / "refs").mkdir(parents=True)
    (d / "refs" / "main").write_text(commit)
    snap = d / "snapshots" / commit
    snap.mkdir(parents=True)
    for name, src in files.items():
        shutil.copy(src, snap / name)
    return snap


def _use_hub_cache(monkeypatch, root):
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(root))


def _tiny_vit_in_hub_cache(tmp_path, folder, monkeypatch):
    hf_home = tmp_path / "hfcache"
    _fill_hub_cache(hf_home, "acme/tiny-vit", {n: folder / n for n in os.listdir(folder)})
    _use_hub_cache(monkeypatch, hf_home)
    return hf_home


def test_hub_id_from_local_cache(env, hf_folder, tmp_path, monkeypatch):
    folder, model = hf_folder
    hf_home = _tiny_vit_in_hub_cache(tmp_path, folder, monkeypatch)
    enc = pyvitcpp.Encoder.from_pretrained("acme/tiny-vit")
    assert len(env) == 1 and env[0].startswith(str(hf_home))
    local = pyvitcpp.Encoder.from_pretrained(str(folder))
    px = local.preprocess(write_photos(tmp_path / "img", 2))
    np.testing.assert_array_equal(enc.forward(px, "embedding"), local.forward(px, "embedding"))
    # hf-hub: prefix, second call: cache hit
    again = pyvitcpp.Encoder.from_pretrained("hf-hub:acme/tiny-vit")
    assert again.path == enc.path and len(env) == 2  # the first local-folder call converted once more
    # the CLI's -m takes the same string
    assert cli.main(["embed", str(tmp_path / "img"), "-m", "acme/tiny-vit", "-o", str(tmp_path / "e.npy"), "-q"]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "e.npy"), enc.encode(sorted(
        str(p) for p in (tmp_path / "img").iterdir())))
    assert len(env) == 2


def test_gguf_in_hub_repo_used_as_is(env, hf_folder, tmp_path, monkeypatch):
    folder, _ = hf_folder
    gguf = pyvitcpp.convert(str(folder), str(tmp_path / "tiny-f16.gguf"), outtype="f16", verbose=False)
    hf_home = tmp_path / "hfcache"
    snap = _fill_hub_cache(hf_home, "acme/tiny-gguf", {"tiny-f16.gguf": gguf, "README.md": gguf})
    _use_hub_cache(monkeypatch, hf_home)
    n = len(env)
    enc = pyvitcpp.Encoder.from_pretrained("acme/tiny-gguf", dtype="f16")
    assert len(env) == n and os.path.realpath(enc.path) == os.path.realpath(snap / "tiny-f16.gguf")


def test_offline_missing_hub_id_names_it(env, tmp_path, monkeypatch, capsys):
    _use_hub_cache(monkeypatch, tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match=r"google/vit-base-patch16-224.*HF_HUB_OFFLINE"):
        pyvitcpp.Encoder.from_pretrained("google/vit-base-patch16-224")
    # convert says the same instead of "source not found"
    assert cli.main(["convert", "google/vit-base-patch16-224", "-o", str(tmp_path / "x.gguf")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pyvitcpp: error:") and "HF_HUB_OFFLINE" in err and "google/vit-base-patch16-224" in err
    with pytest.raises(FileNotFoundError, match="not a file or folder"):
        pyvitcpp.Encoder.from_pretrained("./nope/nothing.gguf")
    with pytest.raises(ValueError, match="dtype"):
        pyvitcpp.Encoder.from_pretrained("acme/x", dtype="f8")


def test_hub_id_needs_huggingface_hub(env, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(ImportError, match=r"pyvitcpp\[hub\]"):
        pyvitcpp.Encoder.from_pretrained("acme/whatever")


def test_convert_hub_id_from_cache(env, hf_folder, tmp_path, monkeypatch):
    folder, _ = hf_folder
    hf_home = _tiny_vit_in_hub_cache(tmp_path, folder, monkeypatch)
    out = tmp_path / "c.gguf"
    assert cli.main(["convert", "acme/tiny-vit", "-o", str(out), "--outtype", "f32", "-q"]) == 0
    local = pyvitcpp.Encoder.from_pretrained(str(folder))
    assert pyvitcpp.Encoder(str(out)).config["embedding_length"] == local.config["embedding_length"]
    px = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    np.testing.assert_array_equal(pyvitcpp.Encoder(str(out)).forward(px), local.forward(px))


def test_info_shows_default_model_and_cache(env, tmp_path, capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "default model: EfficientNet-Lite0" in out and str(tmp_path / "xdg" / "pyvitcpp") in out
