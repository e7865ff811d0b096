"""Swin Transformer V1 and V2 (architecture ``swin``) end to end against transformers' Swin /
Swinv2 and timm's SwinTransformer / SwinTransformerV2: the same seeded weights (every parameter
re-randomised: LayerNorms, the relative position bias tables, V2's CPB MLP, its logit scales with
some above the log(100) clamp), the same pixels, every output (last_hidden_state, pooled, logits,
features.i), batch 1 and 2, every kernel level this CPU runs. Tiny configs whose grids are not
multiples of the window (every windowed block pads), head widths of 12, and a non-square input;
plus the converter's naming variants and errors."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import cosine, fp32_bound, image_batch, isa_or_skip, randomize_

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
timm = pytest.importorskip("timm")

import pyvitcpp  # noqa: E402
from pyvitcpp.convert import ConversionError, convert, load_model  # noqa: E402

LEVELS = ["ref", "avx2", "avx512"]
# grid 24 -> 12 -> 6 with window 5: every stage pads; the last stage's grid (6) is just above it
HF_CFG = dict(image_size=96, patch_size=4, embed_dim=36, depths=[2, 2, 2], num_heads=[3, 3, 6], window_size=5,
              mlp_ratio=2.0, num_labels=7)
TIMM_KW = dict(img_size=96, patch_size=4, embed_dim=36, depths=(2, 2, 2), num_heads=(3, 3, 6), window_size=5,
               mlp_ratio=2.0, num_classes=7)
K_MAX = 4 * 144  # the longest reduction: the last merging (4 * 72) and fc2 (2 * 144)
N_LAYERS = 6 + 3  # blocks + mergings / head
SIZES = [(96, 96), (88, 120)]  # native, and a non-square size whose grids pad differently


def _randomize(m, seed):
    randomize_(m, seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("logit_scale"):  # exp(clamp(., max=log 100)): some heads clamped
                p.copy_(1.0 + 5.0 * torch.rand(p.shape, generator=g))


def hf_model(v2: bool, seed: int, **over):
    cfg = dict(HF_CFG, **over)
    if v2:
        cfg.setdefault("pretrained_window_sizes", [0, 4, 6])
        m = transformers.Swinv2ForImageClassification(transformers.Swinv2Config(**cfg))
    else:
        m = transformers.SwinForImageClassification(transformers.SwinConfig(**cfg))
    m = m.eval()
    _randomize(m, seed)
    return m


def hf_reference(m, px):
    base = m.swinv2 if hasattr(m, "swinv2") else m.swin
    feats = []
    hooks = [st.blocks[-1].register_forward_hook(lambda mod, i, o: feats.append(o[0] if isinstance(o, tuple) else o))
             for st in base.encoder.layers]
    try:
        with torch.no_grad():
            out = base(torch.from_numpy(px), interpolate_pos_encoding=base.embeddings.position_embeddings is not None)
            logits = m.classifier(out.pooler_output)
    finally:
        for h in hooks:
            h.remove()
    ref = {"last_hidden_state": out.last_hidden_state.numpy(), "pooled": out.pooler_output.numpy(),
           "embedding": out.pooler_output.numpy(), "logits": logits.numpy()}
    for i, f in enumerate(feats):
        ref[f"features.{i}"] = f.numpy()  # [B, L, C]: reshaped against ours below
    return ref


def timm_model(v2: bool, seed: int, **over):
    name = "swinv2_tiny_window8_256" if v2 else "swin_tiny_patch4_window7_224"
    kw = dict(TIMM_KW, **over)
    if v2:
        kw.setdefault("pretrained_window_sizes", (0, 4, 6))
    m = timm.create_model(name, pretrained=False, dynamic_img_size=True, **kw).eval()
    _randomize(m, seed)
    return m, name, kw


def timm_reference(m, px):
    with torch.no_grad():
        x, inter = m.forward_intermediates(torch.from_numpy(px))
        pooled = m.forward_head(x, pre_logits=True)
        logits = m.forward_head(x)
    ref = {"last_hidden_state": x.reshape(x.shape[0], -1, x.shape[-1]).numpy(), "pooled": pooled.numpy(),
           "embedding": pooled.numpy(), "logits": logits.numpy()}
    for i, f in enumerate(inter):
        ref[f"features.{i}"] = f.numpy()
    return ref


def check(ours, ref, figures=None):
    for key, r in ref.items():
        o = ours[key]
        if key.startswith("features.") and r.ndim == 3:  # HF [B, L, C] -> NCHW as ours
            B, C, h, w = o.shape
            r = r.reshape(B, h, w, C).transpose(0, 3, 1, 2)
        assert o.shape == r.shape, (key, o.shape, r.shape)
        assert np.isfinite(o).all(), key
        c = cosine(o, r)
        err = float(np.abs(o - r).max())
        bound = fp32_bound(r, N_LAYERS, K_MAX)
        if figures is not None:
            figures.append((key, c, err, bound))
        assert c >= 0.99999, f"{key}: cosine {c:.8f} < 0.99999"
        assert err <= bound, f"{key}: max abs error {err:.3g} > fp32 bound {bound:.3g}"


def _pixels(real_images, batch, hw, seed):
    return image_batch(real_images, batch, max(hw), seed=seed)[:, :, :hw[0], :hw[1]].copy()


@pytest.fixture(scope="module", params=["v1", "v2"])
def hf_tiny(request, tmp_path_factory):
    v2 = request.param == "v2"
    m = hf_model(v2, seed=17 if v2 else 11)
    d = tmp_path_factory.mktemp("hf_swin")
    m.save_pretrained(d / "model")
    out = d / "swin-f32.gguf"
    convert(str(d / "model"), str(out), outtype="f32", verbose=False)
    return m, str(out)


@pytest.fixture(scope="module", params=["v1", "v2"])
def timm_tiny(request, tmp_path_factory):
    v2 = request.param == "v2"
    m, name, kw = timm_model(v2, seed=23 if v2 else 29)
    d = tmp_path_factory.mktemp("timm_swin")
    torch.save(m.state_dict(), str(d / "swin.pth"))
    out = d / "swin-f32.gguf"
    kw = {k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items()}
    convert(str(d / "swin.pth"), str(out), outtype="f32", verbose=False, model_name=name, model_kwargs=kw)
    return m, str(out)


# every level at batch 2 and the non-square size; batch 1 at the native size
CASES = [(lv, 2, SIZES[1]) for lv in LEVELS] + [("avx512", 1, SIZES[0])]


@pytest.mark.parametrize("level,batch,hw", CASES)
def test_hf_parity(hf_tiny, real_images, level, batch, hw):
    isa_or_skip(level)
    m, path = hf_tiny
    enc = pyvitcpp.Encoder(path, isa=level, threads=2)
    px = _pixels(real_images, batch, hw, seed=batch)
    ref = hf_reference(m, px)
    ours = enc.forward(px, list(ref))
    figures = []
    check(ours, ref, figures)
    for key, c, err, bound in figures:
        if key in ("last_hidden_state", "logits"):
            print(f"hf {level} B={batch} {hw} {key}: cosine {c:.10f}, max abs {err:.3g} (bound {bound:.3g})")


@pytest.mark.parametrize("level,batch,hw", CASES)
def test_timm_parity(timm_tiny, real_images, level, batch, hw):
    isa_or_skip(level)
    m, path = timm_tiny
    enc = pyvitcpp.Encoder(path, isa=level, threads=2)
    px = _pixels(real_images, batch, hw, seed=batch + 4)
    ref = timm_reference(m, px)
    ours = enc.forward(px, list(ref))
    check(ours, ref)
