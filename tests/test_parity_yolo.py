"""Ultralytics YOLOv8 / YOLO11 detection models vs ultralytics' DetectionModel (test-only reference,
AGPL, never imported by the package outside the converter's .pt path).

The reference is built from the yaml (nc=5), every parameter and BN statistic re-randomised with a
seed (the DFL's fixed arange conv is the decode's definition, not a learned weight, and stays),
eval mode. Captured with hooks: Detect's inputs (``head.{i}``, a forward pre-hook), the backbone
stage outputs (``features.{i}``: layers 0, 2, 4, 6 and the last backbone layer, P1/2 .. P5/32),
and Detect's per-level raw maps cat(cv2, cv3) (``pred.{i}``). The decode is checked against
Detect's own eval output (before NMS) and, after a class-aware NMS, against ultralytics'
non_max_suppression.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from conftest import cosine, fp32_bound, isa_or_skip
from pyvitcpp import _core
from pyvitcpp.convert import convert, load_model
from pyvitcpp.detect_ultralytics import decode, output_names, raw_predictions

ultralytics = pytest.importorskip("ultralytics")
from ultralytics.nn.tasks import DetectionModel  # noqa: E402

NC = 5
FEATURE_LAYERS = {"yolov8n.yaml": [0, 2, 4, 6, 9], "yolo11n.yaml": [0, 2, 4, 6, 10]}


def randomize(model, seed: int, gain: float):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if ".dfl." in n:
                continue
            if p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * (gain / np.sqrt(np.prod(p.shape[1:]))))
            elif n.endswith("bn.weight"):
                p.copy_(0.6 + 0.8 * torch.rand(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
        for n, b in model.named_buffers():
            if n.endswith("running_mean"):
                b.copy_(0.2 * torch.randn(b.shape, generator=g))
            elif n.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g))
    return model


_MODELS = {}


def reference(yaml: str):
    if yaml not in _MODELS:
        m = DetectionModel(yaml, nc=NC, verbose=False).eval()
        m.names = {i: f"class{i}" for i in range(NC)}
        _MODELS[yaml] = randomize(m, 0, 1.5) if "v8" in yaml else randomize(m, 1, 1.2)
    return _MODELS[yaml]


def run_reference(m, px: np.ndarray):
    detect = m.model[-1]
    got = {}
    hooks = [detect.register_forward_pre_hook(lambda mod, inp: got.__setitem__("heads", [t.clone() for t in inp[0]]))]
    for j, li in enumerate(FEATURE_LAYERS[m.yaml["yaml_file"]]):
        hooks.append(m.model[li].register_forward_hook(lambda mod, inp, out, j=j: got.__setitem__(f"features.{j}", out)))
    try:
        with torch.no_grad():
            y, raw = m(torch.from_numpy(px))
            ref = {f"head.{i}": h.numpy() for i, h in enumerate(got["heads"])}
            ref["pred"] = torch.cat((raw["boxes"], raw["scores"]), 1).numpy()
            for i, h in enumerate(got["heads"]):
                ref[f"pred.{i}"] = torch.cat((detect.cv2[i](h), detect.cv3[i](h)), 1).numpy()
    finally:
        for h in hooks:
            h.remove()
    for k, v in got.items():
        if k.startswith("features."):
            ref[k] = v.numpy()
    return ref, y.numpy()


@pytest.fixture(scope="module")
def gguf_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("yolo")
    out = {}
    for yaml in FEATURE_LAYERS:
        m = reference(yaml)
        pt = d / f"{yaml}.pt"
        torch.save({"model": m, "train_args": {"imgsz": 640}}, pt)
        out[yaml] = str(d / f"{yaml}.gguf")
        convert(str(pt), out[yaml], outtype="f32", verbose=False)
    return out


def pixels(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth random images in [0, 1] (letterboxed photos are smooth; pure noise works too)."""
    rng = np.random.default_rng(seed)
    small = rng.random((n, 3, h // 8, w // 8)).astype(np.float32)
    return np.ascontiguousarray(np.repeat(np.repeat(small, 8, axis=2), 8, axis=3) * 0.7
                                + 0.3 * rng.random((n, 3, h, w)).astype(np.float32))


def check(got, want, what, n_layers=60, k_max=9 * 256):
    assert got.shape == want.shape, f"{what}: {got.shape} vs {want.shape}"
    c = cosine(got, want)
    assert c >= 0.99999, f"{what}: cosine {c}"
    err = float(np.abs(got - want).max())
    bound = fp32_bound(want, n_layers, k_max, c=8.0)
    assert err <= bound, f"{what}: max abs err {err:.3g} > bound {bound:.3g}"


def run_ours(path, isa, px, names):
    model = _core.Model(path, 0, isa, True)
    return model, model.run(px, names)


CASES = [  # (isa, batch, H, W): batch 2 square, batch 1 non-square, and every kernel level
    ("avx512", 2, 320, 320),
    ("avx512", 1, 224, 320),
    ("avx2", 1, 128, 192),
    ("ref", 1, 64, 96),
    pytest.param("avx512", 1, 640, 640, marks=pytest.mark.slow),
    pytest.param("avx512", 2, 320, 480, marks=pytest.mark.slow),
    pytest.param("avx2", 2, 416, 416, marks=pytest.mark.slow),
]


@pytest.mark.parametrize("yaml", list(FEATURE_LAYERS))
@pytest.mark.parametrize("isa,B,H,W", CASES)
def test_parity(gguf_files, yaml, isa, B, H, W):
    isa_or_skip(isa)
    m = reference(yaml)
    px = pixels(B, H, W, seed=B * H + W)
    ref, y = run_reference(m, px)
    names = sorted(ref)
    model, out = run_ours(gguf_files[yaml], isa, px, names)
    assert set(model.output_names) == set(names)
    for n in names:
        check(out[n], ref[n], f"{yaml} {isa} B{B} {H}x{W} {n}")
    # DFL decode vs Detect's eval output [B, 4 + nc, anchors] (boxes xywh there): on the
    # reference's own maps (the decode alone, float tolerance), and on ours (the maps' fp32
    # differences pass through a softmax over 16 bins of logits in the tens to hundreds here).
    md = dict(model.file.metadata)
    xy, wh = y[:, 0:2], y[:, 2:4]
    ref_dec = np.concatenate([xy - wh / 2, xy + wh / 2, y[:, 4:]], axis=1)
    scale = max(H, W)
    for maps, tol, what in (([ref[n] for n in output_names(md)], 2e-5, "reference maps"),
                            ([out[n] for n in output_names(md)], 1e-3, "our maps")):
        mine = raw_predictions(maps, md)
        assert mine.shape == ref_dec.shape
        err = np.abs(mine[:, :4] - ref_dec[:, :4]).max()
        assert err <= tol * scale, f"decoded boxes from {what}: max err {err}"
        assert np.abs(mine[:, 4:] - ref_dec[:, 4:]).max() <= tol, f"class scores from {what}"
        assert cosine(mine, ref_dec) >= 0.99999


@pytest.mark.parametrize("yaml", list(FEATURE_LAYERS))
def test_batches_run_image_by_image_at_640(gguf_files, yaml, monkeypatch):
    """At 640 these detectors' activations per image outweigh their weights, so Model.run takes
    a batch one image per graph run (model.cpp: micro_batch): every output is the same bits as
    the whole batch in one run (PYVITCPP_MICRO_BATCH=0), runs of 2 with a remainder too, and
    matches the reference."""
    monkeypatch.delenv("PYVITCPP_MICRO_BATCH", raising=False)
    B, H, W = 3, 640, 640
    px = pixels(B, H, W, seed=7)
    model = _core.Model(gguf_files[yaml], 2, "", True)
    names = ["head.0", "head.2", "pred", "features.1"]
    assert model.images_per_run(B, H, W, names) == 1
    assert model.images_per_run(B, 320, 320, names) == B  # a quarter of the maps: one run
    got = model.run(px, names)
    ref, _ = run_reference(reference(yaml), px)
    for n in names:
        check(got[n], ref[n], f"{yaml} B{B} {H}x{W} {n} image by image")
    for forced in ("0", "2"):
        monkeypatch.setenv("PYVITCPP_MICRO_BATCH", forced)
        assert model.images_per_run(B, H, W, names) == (B if forced == "0" else 2)
        other = model.run(px, names)
        for n in names:
            np.testing.assert_array_equal(other[n], got[n], err_msg=f"{n}, runs of {forced or B}")


@pytest.mark.parametrize("yaml", list(FEATURE_LAYERS))
def test_decode_and_nms_match_ultralytics(gguf_files, yaml):
    """Our decode -> class-aware NMS keeps the same boxes as ultralytics' non_max_suppression
    (measured: the same count, 6-11 boxes per image, coordinates within 2.5e-4 px; one box of
    slack for ties that fp32 rounding may flip)."""
    from torchvision.ops import batched_nms
    try:
        from ultralytics.utils.nms import non_max_suppression
    except ImportError:  # older ultralytics
        from ultralytics.utils.ops import non_max_suppression
    m = reference(yaml)
    px = pixels(2, 256, 256, seed=7)
    _, y = run_reference(m, px)
    model, out = run_ours(gguf_files[yaml], "", px, ["pred.0", "pred.1", "pred.2"])
    md = dict(model.file.metadata)
    # A threshold that keeps a few hundred candidates of these random-weight maps.
    conf = float(np.quantile(y[:, 4:].max(axis=1), 0.9))
    res = decode([out[f"pred.{i}"] for i in range(3)], md, conf)
    want = non_max_suppression(torch.from_numpy(y), conf_thres=conf, iou_thres=0.45, max_det=10000)
    for b, (boxes, scores, ids) in enumerate(res):
        ref_yb = y[b]
        n_ref = int((ref_yb[4:].max(axis=0) > conf).sum())
        assert abs(len(scores) - n_ref) <= 1, "candidates above conf"
        keep = batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(ids), 0.45).numpy()
        w = want[b].numpy()
        assert abs(len(keep) - len(w)) <= 1, f"image {b}: {len(keep)} boxes kept vs {len(w)}"
        # Every reference box has a match of the same class with the same coordinates.
        got = np.concatenate([boxes[keep], scores[keep, None], ids[keep, None].astype(np.float32)], axis=1)
        matched = 0
        for r in w:
            d = np.abs(got[:, :4] - r[:4]).max(axis=1) + 1e3 * (got[:, 5] != r[5])
            matched += d.min() <= 1e-2
        assert matched >= len(w) - 1, f"image {b}: {matched} of {len(w)} boxes matched"


def test_metadata_and_state_dict_path(gguf_files, tmp_path):
    """The .safetensors state dict + yaml name converts to the same tensors and layer keys as the
    pickled .pt (which goes through the ultralytics model object)."""
    from safetensors.torch import save_file
    for yaml in FEATURE_LAYERS:
        m = reference(yaml)
        st = tmp_path / "w.safetensors"
        save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(st))
        a = load_model(str(st), model_name=yaml)
        pt = tmp_path / "m.pt"
        torch.save({"model": m}, pt)
        b = load_model(str(pt))
        assert sorted(a.tensors) == sorted(b.tensors)
        for k in a.tensors:
            np.testing.assert_allclose(a.tensors[k], b.tensors[k], rtol=1e-6, atol=1e-7, err_msg=k)
        ka = {k: v for k, v, _ in a.hparams if k.startswith("yolov8.layer") or k.startswith("yolov8.detect")}
        kb = {k: v for k, v, _ in b.hparams if k.startswith("yolov8.layer") or k.startswith("yolov8.detect")}
        assert ka == kb
        md = {k: v for k, v, _ in b.metadata()}
        assert md["preprocess.resize_mode"] == "letterbox"
        assert md["preprocess.stride"] == 32 and abs(md["preprocess.pad_value"] - 114 / 255) < 1e-7
        assert md["detect.kind"] == "ultralytics_dfl" and md["detect.strides"] == [8, 16, 32]
        assert md["detect.labels"] == [f"class{i}" for i in range(NC)]
        assert md["yolov8.feature_layers"] == FEATURE_LAYERS[yaml]


def test_bad_inputs(gguf_files):
    model = _core.Model(gguf_files["yolov8n.yaml"], 1, "", True)
    with pytest.raises(pyvitcpp_ModelError(), match="multiple of its stride 32"):
        model.run(np.zeros((1, 3, 100, 128), np.float32), ["head.0"])
    with pytest.raises(ValueError, match="not head"):
        decode([np.zeros((1, 64, 4, 4), np.float32)] * 3, dict(model.file.metadata), 0.25)


def pyvitcpp_ModelError():
    import pyvitcpp
    return pyvitcpp.ModelError


def _rewrite(tmp_path, yaml, edit):
    """The converted model with its metadata edited, written to a new file."""
    import copy
    from pyvitcpp.convert.writer import write_gguf
    if ("cm", yaml) not in _MODELS:
        _MODELS["cm", yaml] = load_model(str(_pt(tmp_path, yaml)))
    cm = copy.deepcopy(_MODELS["cm", yaml])
    edit(cm)
    out = tmp_path / "edited.gguf"
    write_gguf(cm, str(out), outtype="f32", verbose=False)
    return str(out)


def _pt(tmp_path, yaml):
    pt = tmp_path / f"{yaml}.pt"
    if not pt.exists():
        torch.save({"model": reference(yaml)}, pt)
    return pt


def test_bad_files_name_the_cause(tmp_path):
    import pyvitcpp

    def set_key(key, value, kind=None):
        def edit(cm):
            for j, (k, v, t) in enumerate(cm.hparams):
                if k == key:
                    cm.hparams[j] = (k, value, kind or t)
                    return
            raise AssertionError(key)
        return edit

    cases = [
        (set_key("yolov8.layer.3.type", "c3"), "yolov8.layer.3.type = 'c3'"),
        (set_key("yolov8.layer.11.from", [10, 12]), "not an earlier layer"),
        (set_key("yolov8.detect.from", [15, 18, 40]), "yolov8.detect.from holds 40"),
        (set_key("yolov8.num_classes", 7), "yolov8.num_classes is 7"),
        (lambda cm: cm.tensors.pop("model.4.m.1.cv2.weight"), "model.4.m.1.cv2.weight"),
    ]
    for edit, msg in cases:
        with pytest.raises(pyvitcpp.ModelError, match=msg):
            _core.Model(_rewrite(tmp_path, "yolov8n.yaml", edit), 1, "", True)

    # A grouped (not depthwise) conv: the engine says it does not run those.
    def grouped(cm):
        w = cm.tensors["model.1.weight"]  # [32, 16, 3, 3] -> groups of 2
        cm.tensors["model.1.weight"] = np.ascontiguousarray(w[:, : w.shape[1] // 2])
    with pytest.raises(pyvitcpp.ModelError, match="grouped convolutions other than depthwise"):
        _core.Model(_rewrite(tmp_path, "yolov8n.yaml", grouped), 1, "", True)


def test_converter_refuses_what_it_cannot_run(tmp_path):
    from pyvitcpp.convert import ConversionError
    from ultralytics.nn.tasks import SegmentationModel
    seg = SegmentationModel("yolov8n-seg.yaml", nc=3, verbose=False)
    pt = tmp_path / "seg.pt"
    torch.save({"model": seg}, pt)
    with pytest.raises(ConversionError, match="not Detect"):
        load_model(str(pt))
    st = tmp_path / "w.safetensors"
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in reference("yolov8n.yaml").state_dict().items()}, str(st))
    with pytest.raises(ConversionError, match="yolov8n.yaml or yolo11s.yaml"):
        load_model(str(st), model_name="yolov5n.yaml", source="ultralytics")
    with pytest.raises(ConversionError, match="needs --model-name"):
        load_model(str(st))  # recognised as an ultralytics state dict, which needs its yaml name


@pytest.mark.parametrize("outtype,min_cos", [("f16", 0.99999), ("q8_0", 0.998)])
def test_quantized(gguf_files, tmp_path, outtype, min_cos):
    """F16 / Q8_0 files (1x1 convs with C % 32 == 0 block-quantized, the rest F16) against the
    reference's F32 maps (measured: F16 0.999999, Q8_0 0.9994 on pred)."""
    yaml = "yolov8n.yaml"
    m = reference(yaml)
    px = pixels(1, 256, 256, seed=3)
    ref, _ = run_reference(m, px)
    path = tmp_path / f"y-{outtype}.gguf"
    convert(str(_pt(tmp_path, yaml)), str(path), outtype=outtype, verbose=False)
    names = ["head.0", "head.1", "head.2", "pred"]
    _, out = run_ours(str(path), "", px, names)
    for n in names:
        assert cosine(out[n], ref[n]) >= min_cos, n


@pytest.mark.slow
@pytest.mark.parametrize("yaml", ["yolo11m.yaml", "yolov8n-p2.yaml", "yolov8s.yaml"])
def test_other_scales_and_heads(tmp_path, yaml):
    """YOLO11 m (C3k blocks inside C3k2), the 4-level P2 head (strides 4..32) and a wider v8:
    head.{i} and pred from the .pt path, and (for the named-yaml families) the same tensors from
    the state dict + yaml name path."""
    m = randomize(DetectionModel(yaml, nc=3, verbose=False).eval(), 2, 1.2)
    pt = tmp_path / "m.pt"
    torch.save({"model": m}, pt)
    path = str(tmp_path / "m.gguf")
    convert(str(pt), path, outtype="f32", verbose=False)
    px = pixels(1, 64, 96, seed=1)
    got = {}
    h = m.model[-1].register_forward_pre_hook(lambda mod, inp: got.__setitem__("h", [t.clone() for t in inp[0]]))
    try:
        with torch.no_grad():
            _, raw = m(torch.from_numpy(px))
    finally:
        h.remove()
    ref = {f"head.{i}": t.numpy() for i, t in enumerate(got["h"])}
    ref["pred"] = torch.cat((raw["boxes"], raw["scores"]), 1).numpy()
    _, out = run_ours(path, "", px, sorted(ref))
    for n in ref:
        check(out[n], ref[n], f"{yaml} {n}")
    if "-p2" not in yaml:
        from safetensors.torch import save_file
        st = tmp_path / "w.safetensors"
        save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(st))
        a, b = load_model(str(st), model_name=yaml), load_model(str(pt))
        assert sorted(a.tensors) == sorted(b.tensors)
        ka = {k: v for k, v, _ in a.hparams if k.startswith("yolov8.layer")}
        kb = {k: v for k, v, _ in b.hparams if k.startswith("yolov8.layer")}
        assert ka == kb


@pytest.mark.parametrize("yaml", list(FEATURE_LAYERS))
def test_encoder_detect_end_to_end(gguf_files, yaml):
    """Encoder.detect on a real non-square photo (letterbox, our maps, DFL decode, NMS, boxes mapped
    back to the photo) gives the boxes of ultralytics' own chain on the same letterboxed pixels:
    DetectionModel -> non_max_suppression -> scale_boxes (its letterbox inverse)."""
    skimage_data = pytest.importorskip("skimage.data")
    from pyvitcpp import Encoder
    try:
        from ultralytics.utils.nms import non_max_suppression
    except ImportError:  # older ultralytics
        from ultralytics.utils.ops import non_max_suppression
    from ultralytics.utils.ops import scale_boxes

    photo = skimage_data.chelsea()  # 300 x 451
    enc = Encoder(gguf_files[yaml])
    px = enc.preprocessor([photo])
    assert px.shape[2:] == tuple(enc.preprocessor.image_size)
    m = reference(yaml)
    _, y = run_reference(m, px)
    conf = float(np.quantile(y[:, 4:].max(axis=1), 0.95))
    want = non_max_suppression(torch.from_numpy(y), conf_thres=conf, iou_thres=0.45, max_det=300)[0]
    want[:, :4] = scale_boxes(px.shape[2:], want[:, :4], photo.shape[:2])
    want = want.numpy()
    got = enc.detect(photo, conf=conf, iou=0.45)
    assert len(want) >= 3, f"only {len(want)} reference boxes: the check would be weak"
    assert abs(len(got["scores"]) - len(want)) <= 1, f"{len(got['scores'])} boxes vs {len(want)}"
    assert got["boxes"].shape[1] == 4 and np.all(got["boxes"][:, 2] <= photo.shape[1])
    matched = 0
    for r in want:
        d = np.abs(got["boxes"] - r[:4]).max(axis=1) + 1e3 * (got["class_ids"] != int(r[5]))
        matched += d.min() <= 0.05
    assert matched >= len(want) - 1, f"{matched} of {len(want)} boxes matched"
    assert got["labels"][0].startswith("class")


def test_pt_conversion_leaves_pillow_alone(tmp_path):
    """Importing ultralytics patches PIL.Image.open (a wrapper that pip-installs pi-heif on an
    unidentified file); the converter's .pt path restores Pillow's own, so image loading in the
    same process keeps its documented errors. In a fresh process: the patch happens on the first
    import only."""
    import subprocess
    import sys

    pt = _pt(tmp_path, "yolov8n.yaml")
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image at all")
    code = f"""
import sys
from PIL import Image
from pyvitcpp.convert import convert
from pyvitcpp.preprocess import load_image
before = Image.open
convert({str(pt)!r}, {str(tmp_path / "y.gguf")!r}, outtype="f32", verbose=False)
assert "ultralytics" in sys.modules
assert Image.open is before, "PIL.Image.open was replaced"
try:
    load_image({str(junk)!r})
except ValueError as e:
    assert "cannot decode image" in str(e), e
else:
    raise AssertionError("no ValueError")
print("ok")
"""
    env = {**os.environ, "YOLO_AUTOINSTALL": "false", "YOLO_OFFLINE": "true"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stdout + r.stderr
