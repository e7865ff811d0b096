"""What the ViT-family loaders share: the ``vit.*`` hyper-parameters and a shape check of the
canonical tensors against docs/GGUF_SCHEMA.md, so a loader bug cannot produce a file the engine
would misread."""
from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np

from ._model import F32, STR, U32, ConversionError

ACTIVATIONS = ("gelu", "gelu_tanh", "quick_gelu")
POOLINGS = ("cls", "avg", "cls_dist_avg")


def vit_hparams(*, block_count: int, embedding_length: int, feed_forward_length: int,
                head_count: int, layer_norm_epsilon: float, patch_size: int, image_size: int,
                num_channels: int, hidden_act: str, pooling: str,
                pos_resize: str = "bicubic") -> List[Tuple[str, object, str]]:
    if hidden_act not in ACTIVATIONS:
        raise ConversionError(f"activation {hidden_act!r} is not supported (supported: {ACTIVATIONS})")
    if pooling not in POOLINGS:
        raise ConversionError(f"pooling {pooling!r} is not supported (supported: {POOLINGS})")
    if embedding_length % head_count:
        raise ConversionError(f"hidden size {embedding_length} is not divisible by {head_count} heads")
    if image_size % patch_size:
        raise ConversionError(f"image size {image_size} is not a multiple of the patch size {patch_size}")
    return [
        ("vit.block_count", block_count, U32),
        ("vit.embedding_length", embedding_length, U32),
        ("vit.feed_forward_length", feed_forward_length, U32),
        ("vit.attention.head_count", head_count, U32),
        ("vit.attention.layer_norm_epsilon", layer_norm_epsilon, F32),
        ("vit.patch_size", patch_size, U32),
        ("vit.image_size", image_size, U32),
        ("vit.num_channels", num_channels, U32),
        ("vit.hidden_act", hidden_act, STR),
        ("vit.pooling", pooling, STR),
        # how the position table is resized for other input sizes (docs/GGUF_SCHEMA.md)
        ("vit.pos_resize", pos_resize, STR),
    ]


def check_vit_tensors(t: Dict[str, np.ndarray], hp: List[Tuple[str, object, str]]) -> None:
    """Every tensor has the schema's shape; the required ones are present."""
    h = {k: v for k, v, _ in hp}
    L, D, F = h["vit.block_count"], h["vit.embedding_length"], h["vit.feed_forward_length"]
    p, S, C = h["vit.patch_size"], h["vit.image_size"], h["vit.num_channels"]
    prefix = int("v.class_embd" in t) + int("v.dist_embd" in t)
    T = prefix + (S // p) ** 2
    expect = {
        "v.patch_embd.weight": (D, C, p, p), "v.patch_embd.bias": (D,),
        "v.class_embd": (D,), "v.dist_embd": (D,), "v.position_embd.weight": (T, D),
        "v.post_ln.weight": (D,), "v.post_ln.bias": (D,),
        "v.fc_norm.weight": (D,), "v.fc_norm.bias": (D,),
        "v.pooler.weight": (D, D), "v.pooler.bias": (D,),
    }
    required = ["v.patch_embd.weight", "v.position_embd.weight"]
    for i in range(L):
        b = f"v.blk.{i}."
        expect.update({
            b + "ln1.weight": (D,), b + "ln1.bias": (D,),
            b + "attn_qkv.weight": (3 * D, D), b + "attn_qkv.bias": (3 * D,),
            b + "attn_out.weight": (D, D), b + "attn_out.bias": (D,),
            b + "ls1": (D,), b + "ls2": (D,),
            b + "ln2.weight": (D,), b + "ln2.bias": (D,),
            b + "ffn_up.weight": (F, D), b + "ffn_up.bias": (F,),
            b + "ffn_down.weight": (D, F), b + "ffn_down.bias": (D,),
        })
        required += [b + n for n in ("ln1.weight", "ln1.bias", "attn_qkv.weight", "attn_out.weight",
                                     "attn_out.bias", "ln2.weight", "ln2.bias", "ffn_up.weight",
                                     "ffn_up.bias", "ffn_down.weight", "ffn_down.bias")]
    if "v.head.weight" in t:
        nc = t["v.head.weight"].shape[0]
        expect.update({"v.head.weight": (nc, D), "v.head.bias": (nc,),
                       "v.head_dist.weight": (nc, D), "v.head_dist.bias": (nc,)})
    for name in required:
        if name not in t:
            raise ConversionError(f"internal: tensor {name} missing after conversion")
    for name, arr in t.items():
        if name not in expect:
            raise ConversionError(f"internal: unexpected tensor {name}")
        if tuple(arr.shape) != expect[name]:
            raise ConversionError(
                f"tensor {name} has shape {tuple(arr.shape)}, expected {expect[name]} "
                "(checkpoint does not match its configuration)")
    for a, b_ in (("v.head.weight", "v.head.bias"), ("v.head_dist.weight", "v.head_dist.bias"),
                  ("v.pooler.weight", "v.pooler.bias"), ("v.post_ln.weight", "v.post_ln.bias"),
                  ("v.fc_norm.weight", "v.fc_norm.bias")):
        if (a in t) != (b_ in t):
            raise ConversionError(f"{a} and {b_} must come together")
    if "v.head_dist.weight" in t and "v.dist_embd" not in t:
        raise ConversionError("a distillation head needs the distillation token")
    pooling = h["vit.pooling"]
    if pooling == "cls_dist_avg" and "v.dist_embd" not in t:
        raise ConversionError("pooling cls_dist_avg needs the distillation token")
    if pooling in ("cls", "cls_dist_avg") and "v.class_embd" not in t:
        raise ConversionError(f"pooling {pooling} needs the class token")


def fuse_qkv(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rows: all of q, then all of k, then all of v (the layout timm's fused qkv already has)."""
    return np.ascontiguousarray(np.concatenate([q, k, v], axis=0))
