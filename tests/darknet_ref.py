"""Test-side reference for Darknet YOLO: .cfg texts (YOLOv3-tiny, YOLOv4-tiny and YOLOv3 with the
layer lists of darknet's cfg/ files), a PyTorch module that follows darknet's semantics layer by
layer (BN as darknet computes it, unfolded; maxpool padding; route groups; shortcut; [yolo]
inputs recorded), seeded random parameters, and a writer of darknet's .weights binary layout.

Independent of pyvitcpp.convert.darknet on purpose: the parity tests compare the two.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

NET_416 = "[net]\nbatch=1\nwidth=416\nheight=416\nchannels=3\n\n"


def _conv(filters, size, stride=1, bn=1, act="leaky"):
    s = "[convolutional]\n"
    if bn:
        s += "batch_normalize=1\n"
    return s + f"filters={filters}\nsize={size}\nstride={stride}\npad=1\nactivation={act}\n\n"


def _yolo(mask, anchors, classes=80, num=None, extra=""):
    num = num if num is not None else len(anchors.split(",")) // 2
    return (f"[yolo]\nmask = {mask}\nanchors = {anchors}\nclasses={classes}\nnum={num}\njitter=.3\n"
            f"ignore_thresh = .7\ntruth_thresh = 1\nrandom=1\n{extra}\n")


TINY_ANCHORS = "10,14,  23,27,  37,58,  81,82,  135,169,  344,319"
V3_ANCHORS = "10,13,  16,30,  33,23,  30,61,  62,45,  59,119,  116,90,  156,198,  373,326"


def yolov3_tiny_cfg(classes=80):
    f = 3 * (5 + classes)
    s = NET_416
    for i, c in enumerate([16, 32, 64, 128, 256]):
        s += _conv(c, 3) + "[maxpool]\nsize=2\nstride=2\n\n"
    s += _conv(512, 3) + "[maxpool]\nsize=2\nstride=1\n\n" + _conv(1024, 3)
    s += "###########\n\n" + _conv(256, 1) + _conv(512, 3) + _conv(f, 1, bn=0, act="linear")
    s += _yolo("3,4,5", TINY_ANCHORS, classes)
    s += "[route]\nlayers = -4\n\n" + _conv(128, 1) + "[upsample]\nstride=2\n\n[route]\nlayers = -1, 8\n\n"
    s += _conv(256, 3) + _conv(f, 1, bn=0, act="linear") + _yolo("1,2,3", TINY_ANCHORS, classes)
    return s


def yolov4_tiny_cfg(classes=80):
    f = 3 * (5 + classes)
    yx = "scale_x_y = 1.05\ncls_normalizer=1.0\niou_normalizer=0.07\niou_loss=ciou\nnms_kind=greedynms\nbeta_nms=0.6\n"
    s = NET_416 + _conv(32, 3, 2) + _conv(64, 3, 2)
    for c in (64, 128, 256):
        s += _conv(c, 3) + "[route]\nlayers=-1\ngroups=2\ngroup_id=1\n\n"
        s += _conv(c // 2, 3) + _conv(c // 2, 3) + "[route]\nlayers = -1,-2\n\n" + _conv(c, 1)
        s += "[route]\nlayers = -6,-1\n\n[maxpool]\nsize=2\nstride=2\n\n"
    s += _conv(512, 3) + "##################################\n\n" + _conv(256, 1) + _conv(512, 3)
    s += _conv(f, 1, bn=0, act="linear") + _yolo("3,4,5", TINY_ANCHORS, classes, extra=yx)
    s += "[route]\nlayers = -4\n\n" + _conv(128, 1) + "[upsample]\nstride=2\n\n[route]\nlayers = -1, 23\n\n"
    s += _conv(256, 3) + _conv(f, 1, bn=0, act="linear") + _yolo("1,2,3", TINY_ANCHORS, classes, extra=yx)
    return s


def yolov3_cfg(classes=80, width=1.0, act="leaky"):
    """darknet's cfg/yolov3.cfg (Darknet-53 + three heads), channels scaled by `width`."""
    f = 3 * (5 + classes)
    c = lambda n: max(1, int(n * width))  # noqa: E731
    s = NET_416 + _conv(c(32), 3, act=act)
    for n_blocks, ch in ((1, 64), (2, 128), (8, 256), (8, 512), (4, 1024)):
        s += _conv(c(ch), 3, 2, act=act)
        for _ in range(n_blocks):
            s += _conv(c(ch // 2), 1, act=act) + _conv(c(ch), 3, act=act) + "[shortcut]\nfrom=-3\nactivation=linear\n\n"
    for k, (ch, mask, route) in enumerate(((512, "6,7,8", None), (256, "3,4,5", 61), (128, "0,1,2", 36))):
        if route is not None:
            s += "[route]\nlayers = -4\n\n" + _conv(c(ch), 1, act=act) + "[upsample]\nstride=2\n\n"
            s += f"[route]\nlayers = -1, {route}\n\n"
        for _ in range(3):
            s += _conv(c(ch), 1, act=act) + _conv(c(2 * ch), 3, act=act)
        s += _conv(f, 1, bn=0, act="linear") + _yolo(mask, V3_ANCHORS, classes)
    return s


def parse(text):
    out = []
    for raw in text.splitlines():
        line = raw.split("#")[0].strip()
        if not line:
            continue
        if line.startswith("["):
            out.append([line[1:-1], {}])
        else:
            k, v = line.split("=", 1)
            out[-1][1][k.strip()] = v.strip()
    return out


class DarknetRef(torch.nn.Module):
    """darknet's forward pass, layer by layer, from a .cfg text; parameters seeded random."""

    def __init__(self, cfg_text, seed=0):
        super().__init__()
        secs = parse(cfg_text)
        net, self.layers = secs[0][1], secs[1:]
        g = torch.Generator().manual_seed(seed)
        chans, self.params = [], []
        c_in = int(net.get("channels", 3))
        for i, (kind, o) in enumerate(self.layers):
            prev = chans[-1] if chans else c_in
            p = {}
            if kind == "convolutional":
                n, k = int(o["filters"]), int(o["size"])
                groups = int(o.get("groups", 1))
                fan = prev // groups * k * k
                p["w"] = torch.randn(n, prev // groups, k, k, generator=g) * (1.5 / fan) ** 0.5
                p["b"] = torch.randn(n, generator=g) * 0.1
                if int(o.get("batch_normalize", 0)):
                    p["scale"] = torch.rand(n, generator=g) + 0.5
                    p["mean"] = torch.randn(n, generator=g) * 0.1
                    p["var"] = torch.rand(n, generator=g) + 0.5
                chans.append(n)
            elif kind == "route":
                ls = [int(v) for v in o["layers"].split(",")]
                ls = [i + v if v < 0 else v for v in ls]
                p["layers"] = ls
                chans.append(sum(chans[j] for j in ls) // int(o.get("groups", 1)))
            elif kind == "shortcut":
                v = int(o["from"])
                p["from"] = i + v if v < 0 else v
                chans.append(prev)
            else:
                chans.append(prev)
            self.params.append(p)

    @staticmethod
    def act(x, name):
        if name == "leaky":
            return F.leaky_relu(x, 0.1)
        if name == "mish":
            return F.mish(x)
        if name == "logistic":
            return torch.sigmoid(x)
        if name == "relu":
            return F.relu(x)
        assert name == "linear", name
        return x

    def forward(self, x):
        outs, heads = [], []
        for (kind, o), p in zip(self.layers, self.params):
            if kind == "convolutional":
                k, s = int(o["size"]), int(o.get("stride", 1))
                pad = k // 2 if int(o.get("pad", 0)) else int(o.get("padding", 0))
                y = F.conv2d(x, p["w"], None, s, pad, 1, int(o.get("groups", 1)))
                if "scale" in p:  # darknet: (x - mean) / (sqrt(var) + .000001f) * scale + bias
                    y = (y - p["mean"][:, None, None]) / (p["var"].sqrt()[:, None, None] + 1e-6)
                    y = y * p["scale"][:, None, None]
                y = self.act(y + p["b"][:, None, None], o.get("activation", "logistic"))
            elif kind == "maxpool":
                s = int(o.get("stride", 1))
                k = int(o.get("size", s))
                pad = int(o.get("padding", k - 1))
                y = F.pad(x, (pad // 2, pad - pad // 2, pad // 2, pad - pad // 2), value=float("-inf"))
                y = F.max_pool2d(y, k, s)
            elif kind == "upsample":
                y = F.interpolate(x, scale_factor=int(o.get("stride", 2)), mode="nearest")
            elif kind == "route":
                gs, gid = int(o.get("groups", 1)), int(o.get("group_id", 0))
                parts = []
                for j in p["layers"]:
                    c = outs[j].shape[1] // gs
                    parts.append(outs[j][:, c * gid:c * (gid + 1)])
                y = torch.cat(parts, 1)
            elif kind == "shortcut":
                y = self.act(x + outs[p["from"]], o.get("activation", "linear"))
            elif kind == "yolo":
                heads.append(x)
                y = x
            else:
                raise AssertionError(kind)
            outs.append(y)
            x = y
        return heads, outs

    def fold_bn_(self):
        """Fold each conv's batch norm into its weight and bias (darknet's formula), in place: the
        same function with fewer ops (the benchmark's PyTorch peer)."""
        for p in self.params:
            if "scale" in p:
                s = p.pop("scale") / (p.pop("var").sqrt() + 1e-6)
                p["w"] = p["w"] * s[:, None, None, None]
                p["b"] = p["b"] - p.pop("mean") * s
        return self

    def write_weights(self, path, version=(0, 2, 5), seen=32013312):
        major, minor, rev = version
        with open(path, "wb") as f:
            f.write(np.array([major, minor, rev], "<i4").tobytes())
            big = major * 10 + minor >= 2 and major < 1000 and minor < 1000
            f.write(np.array([seen], "<u8" if big else "<u4").tobytes())
            for (kind, _), p in zip(self.layers, self.params):
                if kind != "convolutional":
                    continue
                parts = [p["b"]] + ([p["scale"], p["mean"], p["var"]] if "scale" in p else []) + [p["w"]]
                for t in parts:
                    f.write(t.detach().numpy().astype("<f4").ravel().tobytes())


def feature_layer_indices(model, outs, H):
    """The documented features.{k} rule: the last layer at each total stride >= 8 before the first
    [yolo] layer, strides in increasing order (computed here from the reference's map sizes)."""
    first_yolo = [k for k, _ in model.layers].index("yolo")
    last = {}
    for i in range(first_yolo):
        s = H // outs[i].shape[2]
        if s >= 8:
            last[s] = i
    return [last[s] for s in sorted(last)]
