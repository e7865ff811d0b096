"""DINOv2 (HF Dinov2Model with MLP and SwiGLU, Dinov2WithRegistersModel; timm vit_*_dinov2 with and
without registers) vs the reference: seeded weights, every output, native and other resolutions
(one non-square), batch 1 and 3."""
from __future__ import annotations

import zlib

import pytest
import torch
import transformers

import pyvitcpp
from conftest import randomize_
from pyvitcpp.convert import convert
from test_tower_util import GRIDS, check_outputs, pixels, token_outputs

P = 14
HF_CASES = {
    # hidden 48 (not a multiple of 32), 3 heads, GELU MLP 96
    "mlp_h48": (transformers.Dinov2Config, transformers.Dinov2Model,
                dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=3, mlp_ratio=2, image_size=28,
                     patch_size=P)),
    # SwiGLU (the giant variant's MLP), 1 head, hidden 40
    "swiglu_h40_1head": (transformers.Dinov2Config, transformers.Dinov2Model,
                         dict(hidden_size=40, num_hidden_layers=2, num_attention_heads=1, mlp_ratio=4,
                              use_swiglu_ffn=True, image_size=28, patch_size=P)),
    # 3 register tokens (no position), antialiased position resize
    "registers_h36": (transformers.Dinov2WithRegistersConfig, transformers.Dinov2WithRegistersModel,
                      dict(hidden_size=36, num_hidden_layers=2, num_attention_heads=3, mlp_ratio=3,
                           num_register_tokens=3, image_size=28, patch_size=P)),
}


@pytest.fixture(scope="module")
def hf_models(tmp_path_factory):
    out = {}
    for name, (Cfg, Model, kw) in HF_CASES.items():
        model = Model(Cfg(**kw)).eval()
        randomize_(model, seed=zlib.crc32(name.encode()))
        folder = tmp_path_factory.mktemp(name)
        model.save_pretrained(folder)
        convert(str(folder), str(folder / "m.gguf"), outtype="f32", verbose=False)
        out[name] = (model, pyvitcpp.Encoder(folder / "m.gguf", threads=2))
    return out


def hf_ref(model, px, n_reg):
    with torch.no_grad():
        o = model(pixel_values=torch.from_numpy(px), output_hidden_states=True)
    lhs = o.last_hidden_state
    gh, gw = px.shape[2] // P, px.shape[3] // P
    ref = {"last_hidden_state": lhs, "pooled": o.pooler_output, "embedding": o.pooler_output, "cls": lhs[:, 0],
           **token_outputs(lhs, 1 + n_reg, gh, gw)}
    for i, h in enumerate(o.hidden_states):
        ref[f"hidden_states.{i}"] = h
    return ref


@pytest.mark.parametrize("grid", GRIDS, ids=lambda g: f"{g[0]}x{g[1]}")
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("name", list(HF_CASES))
def test_hf_dinov2(hf_models, real_images, name, batch, grid):
    model, enc = hf_models[name]
    px = pixels(real_images, batch, grid[0] * P, grid[1] * P, seed=batch)
    n_reg = getattr(model.config, "num_register_tokens", 0)
    ref = hf_ref(model, px, n_reg)
    ours = enc.forward(px, list(ref))
    check_outputs(ours, ref, model.config.num_hidden_layers, 4 * model.config.hidden_size)
    assert enc.config["num_register_tokens"] == n_reg
