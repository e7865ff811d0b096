"""The detection API: letterbox preprocessing, darknet's [yolo] decode, class-aware NMS and
Encoder.detect / `pyvitcpp detect`, against references computed in the test (ultralytics'
LetterBox, a torch transcription of darknet's yolo layer + get_yolo_box, torchvision's batched_nms).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import pyvitcpp
from pyvitcpp import detect as D
from pyvitcpp.convert import convert
from pyvitcpp.preprocess import Preprocessor, letterbox_geometry

from darknet_ref import DarknetRef, yolov3_tiny_cfg

torchvision = pytest.importorskip("torchvision")


# ------------------------------------------------------------------------------------ letterbox
@pytest.mark.parametrize("w,h", [(640, 480), (480, 640), (333, 517), (1000, 101), (416, 416), (50, 70)])
@pytest.mark.parametrize("H,W", [(416, 416), (320, 480)])
def test_letterbox_geometry_ultralytics(w, h, H, W):
    LetterBox = pytest.importorskip("ultralytics.data.augment").LetterBox
    img = np.full((h, w, 3), 255, np.uint8)
    out = LetterBox(new_shape=(H, W), auto=False, scaleup=True, center=True)(image=img)
    assert out.shape[:2] == (H, W)
    ys, xs = np.nonzero(out[:, :, 0] > 200)
    _, nw, nh, left, top = letterbox_geometry(w, h, H, W, "ultralytics")
    assert (left, top, nw, nh) == (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)


@pytest.mark.parametrize("w,h", [(640, 480), (480, 640), (333, 517), (1000, 101)])
def test_letterbox_geometry_darknet(w, h):
    # darknet's letterbox_image (image.c), transcribed
    W = H = 416
    if W / w < H / h:
        nw, nh = W, (h * W) // w
    else:
        nh, nw = H, (w * H) // h
    _, gw, gh, left, top = letterbox_geometry(w, h, H, W, "darknet")
    assert (gw, gh, left, top) == (nw, nh, (W - nw) // 2, (H - nh) // 2)


def test_letterbox_pixels():
    pp = Preprocessor(image_size=(64, 96), resize_mode="letterbox", mean=(0, 0, 0), std=(1, 1, 1), pad_value=0.5,
                      stride=32, letterbox_rounding="darknet")
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (30, 20, 3), np.uint8)
    x = pp(img)[0]
    _, nw, nh, left, top = pp.letterbox_geometry(20, 30)
    want = np.asarray(Image.fromarray(img).resize((nw, nh), Image.Resampling.BILINEAR), np.float32).transpose(2, 0, 1) / 255
    np.testing.assert_allclose(x[:, top:top + nh, left:left + nw], want, rtol=1e-6, atol=1e-7)
    mask = np.ones((64, 96), bool)
    mask[top:top + nh, left:left + nw] = False
    assert (x[:, mask] == np.float32(0.5)).all() and mask.any()
    with pytest.raises(ValueError, match="multiple of the model's stride 32"):
        Preprocessor(image_size=(64, 90), resize_mode="letterbox", stride=32)


# ------------------------------------------------------------------------------------ NMS
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("iou", [0.3, 0.45, 0.7])
def test_batched_nms_matches_torchvision(seed, iou):
    rng = np.random.default_rng(seed)
    n = [5, 60, 300, 1200, 2, 0][seed]
    xy = rng.random((n, 2), dtype=np.float32) * 200
    wh = rng.random((n, 2), dtype=np.float32) * 80 + 1
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    scores = rng.random(n, dtype=np.float32)
    cls = rng.integers(0, [1, 3, 5, 80, 2, 1][seed], n)
    got = D.batched_nms(boxes, scores, cls, iou)
    want = torchvision.ops.batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(cls), iou)
    np.testing.assert_array_equal(got, want.numpy())


def test_nms_can_fail():
    """A shifted threshold changes the kept set on these boxes, so the comparison above has teeth."""
    rng = np.random.default_rng(3)
    xy = rng.random((300, 2), dtype=np.float32) * 200
    boxes = np.concatenate([xy, xy + 40], 1).astype(np.float32)
    scores = rng.random(300, dtype=np.float32)
    cls = np.zeros(300, np.int64)
    assert len(D.batched_nms(boxes, scores, cls, 0.45)) != len(D.batched_nms(boxes, scores, cls, 0.5))


# ------------------------------------------------------------------------------------ decode
def torch_yolo_decode(x, mask, anchors, classes, sxy, H, W, conf):
    """darknet's [yolo] forward (logistic on x, y, objectness and classes; scale_x_y) and
    get_yolo_box / get_yolo_detections, in torch, per box and class."""
    b, _, h, w = x.shape
    A = len(mask)
    p = x.view(b, A, 5 + classes, h, w).permute(0, 1, 3, 4, 2)
    out = []
    for i in range(b):
        rows = []
        for a in range(A):
            for r in range(h):
                for c in range(w):
                    v = p[i, a, r, c]
                    obj = torch.sigmoid(v[4])
                    if obj <= conf:
                        continue
                    bx = (c + torch.sigmoid(v[0]) * sxy - 0.5 * (sxy - 1)) / w * W
                    by = (r + torch.sigmoid(v[1]) * sxy - 0.5 * (sxy - 1)) / h * H
                    bw = torch.exp(v[2]) * anchors[mask[a]][0]
                    bh = torch.exp(v[3]) * anchors[mask[a]][1]
                    for k in range(classes):
                        prob = obj * torch.sigmoid(v[5 + k])
                        if prob > conf:
                            rows.append([bx - bw / 2, by - bh / 2, bx + bw / 2, by + bh / 2, prob, k])
        out.append(np.array([[float(t) for t in r] for r in rows], np.float64).reshape(-1, 6))
    return out


def _sorted(arr):
    return arr[np.lexsort((arr[:, 0], arr[:, 5], arr[:, 4]))]


def test_decode_darknet_matches_torch_reference():
    rng = np.random.default_rng(1)
    anchors = [[10, 14], [23, 27], [37, 58], [81, 82], [135, 169], [344, 319]]
    md = {"detect.kind": "darknet_yolo", "detect.num_classes": 3, "detect.anchors": sum(anchors, []),
          "detect.masks": [3, 4, 5, 1, 2, 3], "detect.mask_counts": [3, 3], "detect.scale_x_y": [1.05, 1.0],
          "preprocess.stride": 32}
    heads = [rng.standard_normal((2, 24, 3, 4)).astype(np.float32) * 2,
             rng.standard_normal((2, 24, 6, 8)).astype(np.float32) * 2]
    got = D.decode(heads, md, 0.3)
    for i in range(2):
        ref = []
        for x, mask, s in zip(heads, ([3, 4, 5], [1, 2, 3]), (1.05, 1.0)):
            ref.append(torch_yolo_decode(torch.from_numpy(x), mask, anchors, 3, s, 96, 128, 0.3)[i])
        ref = np.concatenate(ref)
        boxes, scores, cls = got[i]
        mine = np.concatenate([boxes, scores[:, None], cls[:, None]], 1).astype(np.float64)
        assert mine.shape == ref.shape and len(ref) > 10
        np.testing.assert_allclose(_sorted(mine), _sorted(ref), rtol=2e-5, atol=1e-3)


# ------------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("det")
    text = yolov3_tiny_cfg(classes=3)
    (d / "m.cfg").write_text(text)
    ref = DarknetRef(text, seed=11).eval()
    ref.write_weights(str(d / "m.weights"))
    (d / "names.txt").write_text("cat\ndog\nbird\n")
    convert(str(d / "m.weights"), str(d / "m.gguf"), outtype="f32", verbose=False, labels=str(d / "names.txt"))
    return ref, str(d / "m.gguf"), d


def test_detect_end_to_end(tiny):
    ref, path, d = tiny
    enc = pyvitcpp.Encoder(path)
    rng = np.random.default_rng(5)
    imgs = [rng.integers(0, 256, (300, 500, 3), np.uint8), rng.integers(0, 256, (480, 360, 3), np.uint8)]
    conf, iou = 0.4, 0.45
    res = enc.detect(imgs, conf=conf, iou=iou, max_det=100000)
    assert isinstance(res, list) and len(res) == 2
    px = enc.preprocess(imgs)
    with torch.no_grad():
        heads, _ = ref(torch.from_numpy(px))
    anchors = np.asarray(enc.metadata["detect.anchors"]).reshape(-1, 2).tolist()
    n_total = 0
    for i, img in enumerate(imgs):
        rows = np.concatenate([torch_yolo_decode(h[i:i + 1], m, anchors, 3, 1.0, 416, 416, conf)[0]
                               for h, m in zip(heads, ([3, 4, 5], [1, 2, 3]))])
        keep = torchvision.ops.batched_nms(torch.from_numpy(rows[:, :4]).float(), torch.from_numpy(rows[:, 4]).float(),
                                           torch.from_numpy(rows[:, 5]).long(), iou).numpy()
        rows = rows[keep]
        h0, w0 = img.shape[:2]
        r = min(416 / w0, 416 / h0)
        nw, nh = (416, int(h0 * 416 // w0)) if 416 / w0 < 416 / h0 else (int(w0 * 416 // h0), 416)
        left, top = (416 - nw) // 2, (416 - nh) // 2
        b = rows[:, :4].copy()
        b[:, [0, 2]] = np.clip((b[:, [0, 2]] - left) / (nw / w0), 0, w0)
        b[:, [1, 3]] = np.clip((b[:, [1, 3]] - top) / (nh / h0), 0, h0)
        assert r > 0
        got = res[i]
        assert len(got["boxes"]) == len(rows), (len(got["boxes"]), len(rows))
        mine = np.concatenate([got["boxes"], got["scores"][:, None], got["class_ids"][:, None]], 1).astype(np.float64)
        want = np.concatenate([b, rows[:, 4:]], 1)
        np.testing.assert_allclose(_sorted(mine), _sorted(want), rtol=1e-4, atol=2e-3)
        assert got["labels"] == [["cat", "dog", "bird"][c] for c in got["class_ids"]]
        assert (np.diff(got["scores"]) <= 0).all()
        n_total += len(rows)
    assert n_total > 0
    one = enc.detect(imgs[0], conf=conf, iou=iou, max_det=7)
    assert isinstance(one, dict) and np.array_equal(one["boxes"], res[0]["boxes"][:7])


def test_detect_cli_json(tiny, capsys):
    from pyvitcpp.cli import main
    _, path, d = tiny
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (200, 300, 3), np.uint8)).save(d / "x.png")
    assert main(["detect", str(d / "x.png"), "-m", path, "--json", "--conf", "0.3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out[0]["image"].endswith("x.png")
    for det in out[0]["detections"]:
        assert set(det) == {"label", "class_id", "score", "box"} and det["score"] > 0.3
        x1, y1, x2, y2 = det["box"]
        assert 0 <= x1 <= x2 <= 300 and 0 <= y1 <= y2 <= 200


def test_detect_and_classify_cli_skip_bad_files(tiny, capsys, tmp_path):
    """A folder with a text file named .jpg and a truncated PNG: detect reports the good images,
    one warning line per bad file and "N processed, M skipped" (it stopped at the first bad file
    and printed nothing); --on-error fail stops with the cause; a folder of only bad files fails."""
    from pyvitcpp.cli import main
    _, path, _ = tiny
    d = tmp_path / "mixed"
    d.mkdir()
    rng = np.random.default_rng(3)
    for name in ("a.png", "c.png"):
        Image.fromarray(rng.integers(0, 256, (64, 96, 3), np.uint8)).save(d / name)
    (d / "b.jpg").write_text("not an image")
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), np.uint8)).save(d / "t.png")
    (d / "t.png").write_bytes((d / "t.png").read_bytes()[:100])
    assert main(["detect", str(d), "-m", path, "--json"]) == 0
    cap = capsys.readouterr()
    folder_run = json.loads(cap.out)
    assert [r["image"] for r in folder_run] == [str(d / "a.png"), str(d / "c.png")]
    warnings = [ln for ln in cap.err.splitlines() if ln.startswith("pyvitcpp: warning: skipped")]
    assert len(warnings) == 2 and "b.jpg" in warnings[0] and "t.png" in warnings[1], cap.err
    assert "2 processed, 2 skipped" in cap.err
    # each image alone gives the detections it got in the folder run
    for i, name in enumerate(("a.png", "c.png")):
        assert main(["detect", str(d / name), "-m", path, "--json", "--conf", "0.3"]) == 0
        alone = json.loads(capsys.readouterr().out)[0]["detections"]
        assert main(["detect", str(d / "a.png"), str(d / "b.jpg"), str(d / name), "-m", path, "--json", "--conf", "0.3"]) == 0
        assert json.loads(capsys.readouterr().out)[-1]["detections"] == alone
        n_alone = n_alone + len(alone) if i else len(alone)
    assert n_alone > 0  # boxes were compared, not just empty lists
    assert main(["detect", str(d), "-m", path, "--on-error", "fail"]) != 0
    assert "b.jpg" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.jpg").write_text("no")
    assert main(["detect", str(bad), "-m", path]) != 0
    assert "no image could be read" in capsys.readouterr().err
    # classify takes the same path (this model has no classifier: the error names that)
    assert main(["classify", str(d), "-m", path]) != 0
    assert "no classifier head" in capsys.readouterr().err


def test_detect_errors(tiny, monkeypatch, tmp_path):
    _, path, _ = tiny
    enc = pyvitcpp.Encoder(path)
    img = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(ValueError, match="conf must be"):
        enc.detect(img, conf=1.5)
    with pytest.raises(ValueError, match="max_det"):
        enc.detect(img, max_det=0)
    monkeypatch.setitem(enc.metadata, "detect.kind", "ultralytics_dfl")
    import sys
    monkeypatch.setitem(sys.modules, "pyvitcpp.detect_ultralytics", None)
    with pytest.raises(pyvitcpp.ModelError, match="detect_ultralytics"):
        enc.detect(img)
    monkeypatch.delitem(enc.metadata, "detect.kind")
    with pytest.raises(pyvitcpp.ModelError, match="no detection head"):
        enc.detect(img)
