"""`pyvitcpp embed` as a folder job (pyvitcpp.pipeline): bad files skipped, npy + paths / parquet
/ shard outputs in file order, resume, worker pool = serial, output checked before the work,
--normalize on maps; the rows equal Encoder.encode on the same files."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from eco_util import make_hf_vit, write_photos

import pyvitcpp
from pyvitcpp import cli, pipeline


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("m")
    make_hf_vit(d / "hf", seed=5)
    return pyvitcpp.convert(str(d / "hf"), str(d / "tiny.gguf"), outtype="f32", verbose=False)


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "photos"
    good = write_photos(d, 7)
    # bad files: a text file named .jpg, a truncated JPEG, an empty .png
    (d / "img_0002b.jpg").write_text("not an image")
    data = open(good[0], "rb").read()
    (d / "img_0004b.jpg").write_bytes(data[: len(data) // 3])
    (d / "sub").mkdir()
    (d / "sub" / "empty.png").write_bytes(b"")
    bad = [str(d / "img_0002b.jpg"), str(d / "img_0004b.jpg"), str(d / "sub" / "empty.png")]
    return d, good, bad


def test_npy_skips_bad_files_keeps_order(model, folder, tmp_path, capsys):
    d, good, bad = folder
    out = tmp_path / "e.npy"
    lst = tmp_path / "rows.txt"
    assert cli.main(["embed", str(d), "-m", model, "-o", str(out), "-b", "3", "--list", str(lst)]) == 0
    err = capsys.readouterr().err
    for b in bad:
        assert sum(b in line for line in err.splitlines()) == 1, err
    assert all(line.startswith("pyvitcpp: warning: skipped") for line in err.splitlines() if "skipped " in line
               and "embedded" not in line)
    assert "7 embedded, 3 skipped" in err
    paths = (tmp_path / "e.paths.txt").read_text().splitlines()
    assert paths == good  # sorted file order, bad ones left out
    assert lst.read_text().splitlines() == good
    enc = pyvitcpp.Encoder(model)
    np.testing.assert_array_equal(np.load(out), enc.encode(good))


def test_fail_mode_writes_nothing(model, folder, tmp_path, capsys):
    d, _good, bad = folder
    out = tmp_path / "e.npy"
    assert cli.main(["embed", str(d), "-m", model, "-o", str(out), "--on-error", "fail"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pyvitcpp: error:") and bad[0] in err
    assert not out.exists() and not (tmp_path / "e.paths.txt").exists()


def test_parquet_columns(model, folder, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    d, good, _bad = folder
    out = tmp_path / "e.parquet"
    assert cli.main(["embed", str(d), "-m", model, "-o", str(out), "-q", "--workers", "3"]) == 0
    t = pq.read_table(out)
    assert t.column_names == ["path", "embedding", "width", "height"]
    assert t.column("path").to_pylist() == good
    emb = np.array(t.column("embedding").to_pylist(), np.float32)
    np.testing.assert_array_equal(emb, pyvitcpp.Encoder(model).encode(good))
    assert set(t.column("width").to_pylist()) == {64} and set(t.column("height").to_pylist()) == {48}
    assert json.loads(t.schema.metadata[b"pyvitcpp.shape"]) == [emb.shape[1]]


def test_shards_and_resume(model, folder, tmp_path, capsys, monkeypatch):
    d, good, _bad = folder
    out = tmp_path / "shards.npy"
    args = ["embed", str(d), "-m", model, "-o", str(out), "--shard-size", "4", "-b", "2"]
    assert cli.main(args) == 0
    names = sorted(os.listdir(out))
    assert names == ["part-00000.done.json", "part-00000.npy", "part-00000.paths.txt",
                     "part-00001.done.json", "part-00001.npy", "part-00001.paths.txt",
                     "part-00002.done.json", "part-00002.npy", "part-00002.paths.txt"]
    emb, paths = pipeline.read_shards(str(out))
    assert paths == good
    np.testing.assert_array_equal(emb, pyvitcpp.Encoder(model).encode(good))
    capsys.readouterr()
    # interrupted run: remove one shard's marker; the rerun redoes only that shard
    os.unlink(out / "part-00001.done.json")
    seen = []
    real = pipeline._decode
    monkeypatch.setattr(pipeline, "_decode", lambda pre, p: (seen.append(p), real(pre, p))[1])
    assert cli.main(args) == 0
    inputs = sorted(str(p) for p in d.rglob("*") if p.is_file())
    assert sorted(seen) == inputs[4:8]
    assert "2 shard(s) already complete" in capsys.readouterr().err
    emb2, paths2 = pipeline.read_shards(str(out))
    assert paths2 == good
    np.testing.assert_array_equal(emb2, emb)
    # other settings (normalize) invalidate every shard
    seen.clear()
    assert cli.main(args + ["--normalize"]) == 0
    assert len(seen) == len(inputs)


def test_workers_equal_serial(model, tmp_path):
    paths = write_photos(tmp_path / "p", 9, seed=2)
    enc = pyvitcpp.Encoder(model)
    r0 = pipeline.embed_paths(enc, paths, str(tmp_path / "a.npy"), workers=0, batch_size=4)
    r3 = pipeline.embed_paths(enc, paths, str(tmp_path / "b.npy"), workers=3, batch_size=4)
    assert r0.embedded == r3.embedded == 9 and not r0.skipped
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))


def test_output_checked_before_work(model, folder, tmp_path, monkeypatch, capsys):
    d, _good, _bad = folder
    monkeypatch.setattr(pipeline, "_decode", lambda *a: pytest.fail("decoded before the output was checked"))
    assert cli.main(["embed", str(d), "-m", model, "-o", str(tmp_path / "noext")]) == 1
    assert ".npy or .parquet" in capsys.readouterr().err
    assert cli.main(["embed", str(d), "-m", model, "-o", str(tmp_path / "missing" / "e.npy")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["embed", str(d), "-m", model, "-o", str(d)]) == 1  # a folder without --shard-size
    assert cli.main(["embed", str(d), "-m", "/nonexistent/model.gguf", "-o", str(tmp_path / "x.txt")]) == 1
    assert not (tmp_path / "noext.npy").exists()


def test_all_bad_is_an_error(model, tmp_path, capsys):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "a.jpg").write_text("x")
    assert cli.main(["embed", str(d), "-m", model, "-o", str(tmp_path / "e.npy")]) == 1
    assert "no image could be embedded" in capsys.readouterr().err


def test_normalize_maps_over_channels(model, tmp_path):
    paths = write_photos(tmp_path / "p", 2)
    enc = pyvitcpp.Encoder(model)
    assert "feature_map" in enc.output_names
    pipeline.embed_paths(enc, paths, str(tmp_path / "m.npy"), output="feature_map", normalize=True)
    m = np.load(tmp_path / "m.npy")
    assert m.ndim == 4
    np.testing.assert_allclose(np.linalg.norm(m, axis=1), 1.0, atol=1e-5)
    raw = enc.encode(paths, output="feature_map")
    np.testing.assert_allclose(m, raw / np.linalg.norm(raw, axis=1, keepdims=True), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(enc.encode(paths, output="feature_map", normalize=True), m, rtol=1e-6, atol=1e-7)


def test_runs_of_images_equal_one_run(model, monkeypatch):
    """Model.run may take a batch in runs of fewer images (model.cpp: micro_batch; forced here
    with PYVITCPP_MICRO_BATCH, the YOLO detectors at 640 do it by default): every output,
    sequence and pooled alike, is the same bits as one run of the whole batch."""
    from pyvitcpp import _core

    m = _core.Model(model, 2, "", True)
    px = np.random.default_rng(3).random((5, 3, 32, 32), dtype=np.float32)
    names = list(m.output_names)
    monkeypatch.setenv("PYVITCPP_MICRO_BATCH", "0")
    assert m.images_per_run(5, 32, 32, names) == 5
    whole = m.run(px, names)
    for n in ("1", "2", "4"):
        monkeypatch.setenv("PYVITCPP_MICRO_BATCH", n)
        assert m.images_per_run(5, 32, 32, names) == int(n)
        part = m.run(px, names)
        assert set(part) == set(whole)
        for k in names:
            assert part[k].shape == whole[k].shape
            np.testing.assert_array_equal(part[k], whole[k], err_msg=f"{k}, runs of {n}")
