"""Object detection on top of an Encoder: decode the model's `head.{i}` maps into boxes, run
class-aware NMS and map the boxes back to the original images (numpy only).

The decode is chosen by the file's ``detect.kind``:

- ``darknet_yolo`` (:func:`decode_darknet`): darknet's [yolo] layer. For anchor a of head k
  (``detect.masks``) at cell (i, j) of an h x w map, with s = ``detect.scale_x_y[k]``:
  ``cx = (i + sigmoid(tx) * s - (s - 1) / 2) * W / w``, ``cy`` likewise with H / h,
  ``bw = exp(tw) * anchor_w``, ``bh = exp(th) * anchor_h`` (anchors in input pixels),
  objectness ``sigmoid(to)`` and per class ``sigmoid(to) * sigmoid(tc)``; every class whose score
  exceeds ``conf`` is a detection, as darknet's ``get_yolo_detections`` does.
- ``ultralytics_dfl``: ``pyvitcpp.detect_ultralytics.decode`` (same signature).

Both return, per image, boxes float32 [N, 4] xyxy in network-input pixels (before undoing the
letterbox), scores float32 [N], class ids int64 [N], filtered by ``conf``, before NMS.
:func:`batched_nms` has ``torchvision.ops.batched_nms`` semantics.
"""
from __future__ import annotations

import numbers
from typing import List, Sequence, Tuple

import numpy as np

Decoded = Tuple[np.ndarray, np.ndarray, np.ndarray]


def _model_error(msg):
    from ._core import ModelError
    return ModelError(msg)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def darknet_heads_spec(md: dict):
    """[(mask list, scale_x_y)] per head, anchors [A, 2] and the class count from the metadata."""
    try:
        classes = int(md["detect.num_classes"])
        anchors = np.asarray(md["detect.anchors"], np.float32).reshape(-1, 2)
        masks = [int(m) for m in md["detect.masks"]]
        counts = [int(c) for c in md["detect.mask_counts"]]
        sxy = [float(v) for v in md.get("detect.scale_x_y", [1.0] * len(counts))]
    except KeyError as e:
        raise _model_error(f"darknet_yolo model without metadata key {e.args[0]!r}") from None
    except ValueError as e:
        raise _model_error(f"darknet_yolo metadata is malformed: {e}") from None
    if sum(counts) != len(masks) or len(sxy) != len(counts):
        raise _model_error("detect.masks / detect.mask_counts / detect.scale_x_y disagree")
    if any(not 0 <= m < len(anchors) for m in masks):
        raise _model_error("detect.masks refers to an anchor that detect.anchors lacks")
    heads, pos = [], 0
    for c, s in zip(counts, sxy):
        heads.append((masks[pos:pos + c], s))
        pos += c
    return heads, anchors, classes


def decode_darknet(heads: List[np.ndarray], md: dict, conf: float) -> List[Decoded]:
    """darknet's [yolo] decode of the head maps [B, A * (5 + C), h, w] (module docstring).

    The network input size is ``md["detect.input_size"]`` (H, W) when given, else the smallest
    map times ``preprocess.stride``."""
    spec, anchors, C = darknet_heads_spec(md)
    if len(heads) != len(spec):
        raise _model_error(f"{len(heads)} head maps for {len(spec)} [yolo] layers")
    if "detect.input_size" in md:
        H, W = (int(v) for v in md["detect.input_size"])
    else:
        stride = int(md.get("preprocess.stride", 32))
        H = min(h.shape[2] for h in heads) * stride
        W = min(h.shape[3] for h in heads) * stride
    B = heads[0].shape[0]
    per_image: List[List[Decoded]] = [[] for _ in range(B)]
    for x, (mask, s) in zip(heads, spec):
        A = len(mask)
        if x.ndim != 4 or x.shape[1] != A * (5 + C):
            raise _model_error(f"head map of shape {x.shape}: expected [B, {A * (5 + C)}, h, w]")
        b, _, h, w = x.shape
        t = x.reshape(b, A, 5 + C, h, w).astype(np.float32)
        gy, gx = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij")
        sx = _sigmoid(t[:, :, 0]) * np.float32(s) - np.float32(0.5 * (s - 1))
        sy = _sigmoid(t[:, :, 1]) * np.float32(s) - np.float32(0.5 * (s - 1))
        cx = (gx + sx) * np.float32(W / w)
        cy = (gy + sy) * np.float32(H / h)
        anc = anchors[mask]  # [A, 2]
        bw = np.exp(t[:, :, 2]) * anc[None, :, 0, None, None]
        bh = np.exp(t[:, :, 3]) * anc[None, :, 1, None, None]
        obj = _sigmoid(t[:, :, 4])
        cls = _sigmoid(t[:, :, 5:]) * obj[:, :, None]  # [b, A, C, h, w]
        for i in range(b):
            # darknet keeps a box when its objectness exceeds the threshold, then each class
            # whose objectness * class probability does.
            a_i, c_i, y_i, x_i = np.nonzero((cls[i] > conf) & (obj[i] > conf)[:, None])
            xc, yc = cx[i, a_i, y_i, x_i], cy[i, a_i, y_i, x_i]
            ww, hh = bw[i, a_i, y_i, x_i], bh[i, a_i, y_i, x_i]
            boxes = np.stack([xc - ww / 2, yc - hh / 2, xc + ww / 2, yc + hh / 2], axis=1).astype(np.float32)
            per_image[i].append((boxes.reshape(-1, 4), cls[i, a_i, c_i, y_i, x_i].astype(np.float32),
                                 c_i.astype(np.int64)))
    return [tuple(np.concatenate(parts, axis=0) for parts in zip(*img)) for img in per_image]


decode = decode_darknet  # the contract's name: decode(heads, md, conf)


def box_iou_one(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box with each row of boxes, in float32 as torchvision computes it."""
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    w = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    h = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = w * h
    return inter / (area + areas - inter)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy NMS (torchvision.ops.nms): indices kept, by decreasing score; a box is dropped when
    its IoU with a kept higher-scoring box exceeds `iou`."""
    order = np.argsort(-scores, kind="stable")
    boxes = boxes.astype(np.float32, copy=False)
    suppressed = np.zeros(len(order), bool)
    keep = []
    for n, i in enumerate(order):
        if suppressed[n]:
            continue
        keep.append(i)
        rest = order[n + 1:]
        if len(rest):
            suppressed[n + 1:] |= box_iou_one(boxes[i], boxes[rest]) > np.float32(iou)
    return np.asarray(keep, np.int64)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou: float) -> np.ndarray:
    """torchvision.ops.batched_nms: NMS within each class; the kept indices by decreasing score."""
    keep = [np.nonzero(class_ids == c)[0][nms(boxes[class_ids == c], scores[class_ids == c], iou)]
            for c in np.unique(class_ids)]
    if not keep:
        return np.zeros(0, np.int64)
    keep = np.concatenate(keep)
    return keep[np.argsort(-scores[keep], kind="stable")]


def _decoder(md: dict):
    kind = md.get("detect.kind")
    if kind == "darknet_yolo":
        return decode_darknet
    if kind == "ultralytics_dfl":
        try:
            from .detect_ultralytics import decode as ultra_decode
        except ImportError as e:
            raise _model_error(f"detect.kind 'ultralytics_dfl' needs pyvitcpp.detect_ultralytics, which is "
                               f"missing from this installation ({e})") from None
        return ultra_decode
    if kind is None:
        raise _model_error("this model has no detection head (no detect.kind in its metadata)")
    raise _model_error(f"unsupported detect.kind {kind!r} (darknet_yolo, ultralytics_dfl)")


def _check_unit(name, v):
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0.0 <= float(v) <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {v!r}")
    return float(v)


def detect(enc, images, *, conf: float = 0.25, iou: float = 0.45, max_det: int = 300, batch_size: int = 8):
    """Boxes of the objects in images (see Encoder.detect)."""
    from .preprocess import to_pil

    conf, iou = _check_unit("conf", conf), _check_unit("iou", iou)
    for name, v in (("max_det", max_det), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    md = enc.metadata
    decoder = _decoder(md)
    pp = enc.preprocessor
    # The maps the decoder reads: detect.outputs when the file names them (ultralytics: Detect's
    # raw per-level maps pred.{i}), else the head.{i} maps (darknet: the [yolo] layers' inputs).
    named = md.get("detect.outputs")
    if named:
        heads = [str(n) for n in named]
        missing = [n for n in heads if n not in enc.output_names]
        if missing:
            raise _model_error(f"{enc.path}: detect.outputs names {', '.join(missing)}, which the model does not output")
    else:
        heads = sorted((n for n in enc.output_names if n.startswith("head.")), key=lambda n: int(n.split(".")[1]))
    if not heads:
        raise _model_error(f"{enc.path}: the model has no head.{{i}} outputs")
    labels = md.get("detect.labels")
    pixels_in = isinstance(images, np.ndarray) and images.dtype == np.float32
    single = not pixels_in and not isinstance(images, (list, tuple))
    if pixels_in:
        px_all = enc._check_pixels(images)
        items = list(range(px_all.shape[0]))
    else:
        items = list(images) if not single else [images]
        if not items:
            raise ValueError("no images given")
    results = []
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        if pixels_in:
            px = px_all[start:start + batch_size]
            H, W = px.shape[2:]
            geoms = [((1.0, 1.0), 0, 0, W, H)] * len(chunk)
        else:
            ims = [to_pil(im) for im in chunk]
            px = pp(ims)
            H, W = pp.image_size
            geoms = []
            for im in ims:
                if pp.resize_mode != "letterbox":
                    raise _model_error(f"{enc.path}: detection needs letterbox preprocessing "
                                       f"(preprocess.resize_mode is {pp.resize_mode!r})")
                scale, _, _, left, top = pp.letterbox_geometry(*im.size)
                geoms.append((scale, left, top, im.size[0], im.size[1]))
        maps = enc.forward(px, heads)
        decoded = decoder([maps[n] for n in heads], {**md, "detect.input_size": (H, W)}, conf)
        for (boxes, scores, cls), (scale, left, top, w0, h0) in zip(decoded, geoms):
            keep = batched_nms(boxes, scores, cls, iou)[:max_det]
            b = boxes[keep].astype(np.float64)
            b[:, [0, 2]] = np.clip((b[:, [0, 2]] - left) / scale[0], 0, w0)
            b[:, [1, 3]] = np.clip((b[:, [1, 3]] - top) / scale[1], 0, h0)
            ids = cls[keep].astype(np.int64)
            results.append({
                "boxes": b.astype(np.float32),
                "scores": scores[keep].astype(np.float32),
                "class_ids": ids,
                "labels": [str(labels[i]) if labels is not None and i < len(labels) else f"LABEL_{i}" for i in ids],
            })
    return results[0] if single else results


def _records(result: dict) -> List[dict]:
    return [{"label": lab, "class_id": int(c), "score": float(s), "box": [float(v) for v in b]}
            for b, s, c, lab in zip(result["boxes"], result["scores"], result["class_ids"], result["labels"])]


def as_records(results: Sequence[dict]) -> List[List[dict]]:
    """detect()'s per-image dicts as lists of {'label', 'class_id', 'score', 'box'} (JSON-ready)."""
    return [_records(r) for r in results]
