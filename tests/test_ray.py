"""pyvitcpp.ray.ImageEmbedder on a local Ray instance: ray.data.read_images -> map_batches with
actors -> the same embeddings as Encoder.encode in this process; also the path-column form.
Skipped when ray is not installed (it is not in the [test] extra: a large install)."""
from __future__ import annotations


import numpy as np
import pytest

from eco_util import make_hf_vit, write_photos

import pyvitcpp


def test_module_imports_without_ray(monkeypatch):
    import importlib
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.delitem(sys.modules, "pyvitcpp.ray", raising=False)
    mod = importlib.import_module("pyvitcpp.ray")
    assert mod.actor_cpus() is None


def test_embedder_batches_without_ray(tmp_path):
    """The callable on the batch forms Ray hands over (dict of numpy: NHWC uint8, object array,
    path column; a pandas DataFrame), without starting Ray."""
    from pyvitcpp.ray import ImageEmbedder

    make_hf_vit(tmp_path / "hf", seed=12)
    model = pyvitcpp.convert(str(tmp_path / "hf"), str(tmp_path / "tiny.gguf"), outtype="f32", verbose=False)
    paths = write_photos(tmp_path / "img", 3, size=(40, 56))
    from PIL import Image

    imgs = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    want = pyvitcpp.Encoder(model).encode(paths)
    emb = ImageEmbedder(model, threads=1)
    out = emb({"image": np.stack(imgs), "path": np.array(paths)})
    assert out["embedding"].dtype == np.float32 and set(out) == {"image", "path", "embedding"}
    np.testing.assert_array_equal(out["embedding"], want)
    obj = np.empty(3, object)
    obj[:] = imgs
    np.testing.assert_array_equal(emb({"image": obj})["embedding"], want)
    np.testing.assert_array_equal(emb({"path": np.array(paths)})["embedding"], want)
    pd = pytest.importorskip("pandas")
    df = ImageEmbedder(model, drop_images=True, threads=1)(pd.DataFrame({"image": list(imgs), "path": paths}))
    assert list(df.columns) == ["path", "embedding"]
    np.testing.assert_array_equal(np.stack(df["embedding"].to_list()), want)
    with pytest.raises(ValueError, match="neither"):
        emb({"x": np.zeros(3)})


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.mark.slow  # ~35 s on the shared 2-core machine (Ray start ~13 s); the fast variant is below
def test_map_batches_equals_in_process(ray_local, tmp_path):
    from pyvitcpp.ray import ImageEmbedder

    ray = ray_local
    make_hf_vit(tmp_path / "hf", seed=11)
    model = pyvitcpp.convert(str(tmp_path / "hf"), str(tmp_path / "tiny.gguf"), outtype="f32", verbose=False)
    paths = write_photos(tmp_path / "img", 6, size=(40, 56))
    paths += write_photos(tmp_path / "img2", 3, size=(52, 36), seed=1)  # another size: object arrays
    enc = pyvitcpp.Encoder(model)
    ds = ray.data.read_images([str(tmp_path / "img"), str(tmp_path / "img2")], include_paths=True, mode="RGB")
    ds = ds.map_batches(ImageEmbedder, fn_constructor_kwargs={"model": model, "drop_images": True},
                        concurrency=2, batch_size=4, num_cpus=0.5)  # leaves a CPU for read_images
    rows = ds.take_all()
    assert len(rows) == len(paths) and "image" not in rows[0]
    key = lambda p: tuple(p.split("/")[-2:])  # noqa: E731  (folder/file: both folders hold img_0000.jpg)
    got = {key(r["path"]): np.asarray(r["embedding"]) for r in rows}
    assert len(got) == len(paths)
    want = enc.encode(paths)
    for p, w in zip(paths, want):
        np.testing.assert_array_equal(got[key(p)], w)
    # a dataset of paths (no image column)
    ds2 = ray.data.from_items([{"path": p} for p in paths])
    out = ds2.map_batches(ImageEmbedder, fn_constructor_kwargs={"model": model, "normalize": True},
                          concurrency=1, batch_size=5, num_cpus=0.5).take_all()
    wantn = enc.encode(paths, normalize=True)
    for r in out:
        np.testing.assert_array_equal(np.asarray(r["embedding"]), wantn[paths.index(r["path"])])
