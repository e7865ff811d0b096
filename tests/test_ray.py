"""pyvitcpp.ray.ImageEmbedder on a local Ray instance: ray.data.read_images -> map_batches with
actors -> the same embeddings as Encoder.encode in this process; also the path-column form.
Skipped when ray is not installed (it is not in the [test] extra: a large install)."""
from __future__ import annotations

import os

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


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()


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
                        concurrency=2, batch_size=4, num_cpus=1)
    rows = ds.take_all()
    assert len(rows) == len(paths) and "image" not in rows[0]
    got = {os.path.basename(r["path"]): np.asarray(r["embedding"]) for r in rows}
    want = enc.encode(paths)
    for p, w in zip(paths, want):
        np.testing.assert_array_equal(got[os.path.basename(p)], w)
    # a dataset of paths (no image column)
    ds2 = ray.data.from_items([{"path": p} for p in paths])
    out = ds2.map_batches(ImageEmbedder, fn_constructor_kwargs={"model": model, "normalize": True},
                          concurrency=1, batch_size=5).take_all()
    wantn = enc.encode(paths, normalize=True)
    for r in out:
        np.testing.assert_array_equal(np.asarray(r["embedding"]), wantn[paths.index(r["path"])])
