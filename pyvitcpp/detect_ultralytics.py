"""Ultralytics' DFL box decode (YOLOv8 / YOLO11 Detect), numpy only.

The model's ``pred.{i}`` outputs (``detect.outputs`` in the file's metadata) are Detect's raw
per-level maps [B, 4 * reg_max + nc, h, w]: for each anchor (cell centre ``(x + 0.5, y + 0.5)``
in grid units) the box branch holds, per side (left, top, right, bottom), a distribution over
``reg_max`` bins; its softmax expectation is the distance from the anchor to that side. Boxes are
``(anchor -+ distance) * stride``; class scores are the sigmoid of the class branch. As
ultralytics' ``non_max_suppression(multi_label=False)``: each anchor keeps its best class, and
anchors whose score is above ``conf`` (strictly) are returned, before NMS.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np

KIND = "ultralytics_dfl"


def output_names(md: Dict) -> List[str]:
    """The model outputs :func:`decode` reads, in order (``pred.0``, ``pred.1``, ...)."""
    names = md.get("detect.outputs")
    if names:
        return [str(n) for n in names]
    return [f"pred.{i}" for i in range(len(md.get("detect.strides", (8, 16, 32))))]


def _params(md: Dict, n_levels: int) -> Tuple[int, int, List[int]]:
    if md.get("detect.kind", KIND) != KIND:
        raise ValueError(f"detect.kind is {md.get('detect.kind')!r}, not {KIND!r}")
    try:
        nc = int(md["detect.num_classes"])
    except KeyError:
        raise ValueError("the model metadata has no detect.num_classes") from None
    reg_max = int(md.get("detect.reg_max", 16))
    strides = [int(s) for s in md.get("detect.strides", (8, 16, 32))]
    if nc < 1 or reg_max < 1:
        raise ValueError(f"detect.num_classes {nc} / detect.reg_max {reg_max} must be positive")
    if len(strides) != n_levels:
        raise ValueError(f"{n_levels} maps given for {len(strides)} detect.strides {strides}")
    return nc, reg_max, strides


def raw_predictions(heads: Sequence[np.ndarray], md: Dict) -> np.ndarray:
    """Detect's eval-mode output: [B, 4 + nc, anchors] with boxes xyxy in input pixels (ultralytics
    returns xywh here; the boxes are the same) and sigmoid class scores."""
    nc, reg_max, strides = _params(md, len(heads))
    no = 4 * reg_max + nc
    out = []
    B = None
    for i, (p, s) in enumerate(zip(heads, strides)):
        p = np.asarray(p, dtype=np.float32)
        if p.ndim != 4 or p.shape[1] != no or (B is not None and p.shape[0] != B):
            raise ValueError(f"map {i} has shape {p.shape}; expected [B, {no}, h, w] (4 * reg_max + num_classes "
                             f"channels: the model's {output_names(md)[i] if i < len(output_names(md)) else 'pred'} "
                             "output, not head.{i})")
        B, _, h, w = p.shape
        box = p[:, :4 * reg_max].reshape(B, 4, reg_max, h * w).astype(np.float64)
        box = np.exp(box - box.max(axis=2, keepdims=True))
        box /= box.sum(axis=2, keepdims=True)
        dist = np.einsum("bsra,r->bsa", box, np.arange(reg_max, dtype=np.float64))  # [B, 4, hw]
        ay, ax = np.meshgrid(np.arange(h, dtype=np.float64) + 0.5, np.arange(w, dtype=np.float64) + 0.5,
                             indexing="ij")
        ax, ay = ax.ravel(), ay.ravel()
        xyxy = np.stack([ax - dist[:, 0], ay - dist[:, 1], ax + dist[:, 2], ay + dist[:, 3]], axis=1) * s
        cls = np.exp(-np.logaddexp(0.0, -p[:, 4 * reg_max:].reshape(B, nc, h * w).astype(np.float64)))  # sigmoid
        out.append(np.concatenate([xyxy, cls], axis=1))
    return np.concatenate(out, axis=2).astype(np.float32)


def decode(heads: Sequence[np.ndarray], md: Dict, conf: float) -> List[Tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per image (boxes float32 [N, 4] xyxy in network-input pixels, scores float32 [N], class ids
    int64 [N]) of the anchors whose best class score is above ``conf``, before NMS."""
    if not heads:
        raise ValueError("no maps to decode")
    pred = raw_predictions(heads, md)
    res = []
    for b in range(pred.shape[0]):
        cls = pred[b, 4:]
        ids = cls.argmax(axis=0)
        scores = cls[ids, np.arange(cls.shape[1])]
        keep = scores > conf
        res.append((np.ascontiguousarray(pred[b, :4][:, keep].T, dtype=np.float32),
                    scores[keep].astype(np.float32), ids[keep].astype(np.int64)))
    return res
