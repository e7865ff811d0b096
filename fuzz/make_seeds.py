"""Seed corpus for fuzz/gguf_model_fuzz.cpp, written by our own converter.

Tiny models of every family the loader runs (ViT, DINOv2, CLIP and SigLIP towers, ResNet basic
and bottleneck, EfficientNet, SAM), each in every output type (F32, F16 and the ggml block
types Q8_0 / Q4_0 / Q4_1 / Q5_0 / Q5_1), with seeded random weights. Widths are 32 so that
block quantization applies to the matrices; images are 16-32 pixels so one forward is cheap.

    python fuzz/make_seeds.py OUT_DIR [--types f32,q8_0] [--dict fuzz/gguf.dict]

--dict also writes a libFuzzer dictionary: every metadata key and tensor name of the seeds, raw
and as GGUF encodes a string (u64 little-endian length, then the bytes), plus the magic and
the value-type ids.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pyvitcpp.convert import convert  # noqa: E402
from pyvitcpp.convert.writer import OUTTYPES, write_gguf  # noqa: E402


def _randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))


def _hf(model, tmp, name):
    folder = os.path.join(tmp, name)
    model.save_pretrained(folder)
    return dict(src=folder)


def _timm_sd(model, tmp, name, model_name, kwargs):
    path = os.path.join(tmp, name + ".pth")
    torch.save(model.state_dict(), path)
    return dict(src=path, model_name=model_name, model_kwargs=kwargs)


def sources(tmp):
    """name -> convert() arguments (or a ConvertedModel for the CNNs built from state dicts)."""
    import timm
    import transformers

    out = {}
    m = transformers.ViTForImageClassification(transformers.ViTConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, image_size=16,
        patch_size=8, num_labels=3))
    _randomize(m, 1)
    out["vit"] = _hf(m, tmp, "vit")
    kw = dict(img_size=28, embed_dim=32, num_heads=2, depth=1, num_classes=0)
    m = timm.create_model("vit_small_patch14_dinov2", pretrained=False, **kw)
    _randomize(m, 2)
    out["dinov2"] = _timm_sd(m, tmp, "dinov2", "vit_small_patch14_dinov2", kw)
    m = transformers.CLIPVisionModelWithProjection(transformers.CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_attention_heads=2, num_hidden_layers=1, image_size=16,
        patch_size=8, projection_dim=16))
    _randomize(m, 3)
    out["clip"] = _hf(m, tmp, "clip")
    m = transformers.SiglipVisionModel(transformers.SiglipVisionConfig(
        hidden_size=32, intermediate_size=64, num_attention_heads=2, num_hidden_layers=1, image_size=16,
        patch_size=8))
    _randomize(m, 4)
    out["siglip"] = _hf(m, tmp, "siglip")

    from timm.models.resnet import BasicBlock, Bottleneck, ResNet
    from pyvitcpp.convert.cnn import convert_efficientnet, convert_resnet
    for name, block, ch in (("resnet_basic", BasicBlock, (8, 16, 16, 32)),
                            ("resnet_bottleneck", Bottleneck, (8, 8, 8, 8))):
        m = ResNet(block, [1, 1, 1, 1], channels=ch, stem_width=8, num_classes=3).eval()
        _randomize(m, 5)
        sd = {k: v.numpy() for k, v in m.state_dict().items()}
        out[name] = convert_resnet(sd, name=name, source="fuzz seed")
    from timm.models.efficientnet import _gen_efficientnet_lite  # (create_model fixes the multipliers)
    m = _gen_efficientnet_lite("efficientnet_lite0", channel_multiplier=0.1, depth_multiplier=0.1,
                               num_classes=3).eval()
    _randomize(m, 6)
    sd = {k: v.numpy() for k, v in m.state_dict().items()}
    out["efficientnet"] = convert_efficientnet(sd, layout="timm", name="efficientnet", source="fuzz seed",
                                               padding="symmetric", bn_eps=1e-5)

    from segment_anything.modeling import image_encoder
    m = image_encoder.ImageEncoderViT(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, out_chans=32,
                                      qkv_bias=True, use_rel_pos=True, window_size=2, global_attn_indexes=(1,))
    _randomize(m, 7)
    path = os.path.join(tmp, "sam.pth")
    torch.save({"image_encoder." + k: v for k, v in m.state_dict().items()}, path)
    out["sam"] = dict(src=path)
    return out


def _escape(b: bytes) -> str:
    return "".join(chr(c) if 0x20 <= c < 0x7f and c not in (0x22, 0x5c) else f"\\x{c:02x}" for c in b)


def write_dict(seed_paths, out):
    import gguf
    import struct

    names = set()
    for p in seed_paths:
        r = gguf.GGUFReader(p)
        names.update(k for k in r.fields if not k.startswith("GGUF."))
        names.update(t.name for t in r.tensors)
    lines = ["# GGUF keys and tensor names of the seed corpus (fuzz/make_seeds.py --dict); do not edit",
             'magic="GGUF"', 'v3="\\x03\\x00\\x00\\x00"']
    for t in range(13):  # value types, as the u32 that precedes a value
        lines.append(f'type{t}="{_escape(struct.pack("<I", t))}"')
    for i, n in enumerate(sorted(names)):
        b = n.encode()
        lines.append(f'k{i}="{_escape(b)}"')
        lines.append(f'kl{i}="{_escape(struct.pack("<Q", len(b)) + b)}"')
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{out}: {len(names)} names")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--types", default=",".join(OUTTYPES))
    ap.add_argument("--dict", help="also write a libFuzzer dictionary here")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    types = args.types.split(",")
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, src in sources(tmp).items():
            for t in types:
                dst = os.path.join(args.out, f"{name}-{t}.gguf")
                if isinstance(src, dict):
                    convert(src["src"], dst, outtype=t, verbose=False,
                            **{k: v for k, v in src.items() if k != "src"})
                else:
                    write_gguf(src, dst, outtype=t, verbose=False)
                print(f"{dst}: {os.path.getsize(dst)} bytes")
                written.append(dst)
    if args.dict:
        write_dict(written, args.dict)


if __name__ == "__main__":
    main()
