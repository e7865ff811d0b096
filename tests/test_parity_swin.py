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


# the SIMD levels at batch 2 and the non-square size; the scalar one at batch 1, native size
CASES = [("ref", 1, SIZES[0]), ("avx2", 2, SIZES[1]), ("avx512", 2, SIZES[1])]


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


def _default_level():
    return pyvitcpp.cpu_info()["level"]


def _hf_check_sizes(m, tmp_path, real_images, sizes, batch):
    """Save m as an HF folder, convert it (F32) and check every output at each size."""
    m.save_pretrained(tmp_path / "m")
    out = tmp_path / "m.gguf"
    convert(str(tmp_path / "m"), str(out), outtype="f32", verbose=False)
    enc = pyvitcpp.Encoder(out, threads=2)
    for hw in sizes:
        px = _pixels(real_images, batch, hw, seed=3)
        ref = hf_reference(m, px)
        check(enc.forward(px, list(ref)), ref)
    return out


def test_hf_v1_window_shrinks_to_grid(tmp_path, real_images):
    """80x80: grids 20, 10, 5 with window 5: the last stage's grid equals the window, so HF runs it
    as one unshifted window (per_input rule); 76x100 pads the pixels (not whole patches)."""
    _hf_check_sizes(hf_model(False, seed=5), tmp_path, real_images, [(80, 80), (78, 102)], batch=2)


def test_hf_absolute_embeddings_and_old_names(tmp_path, real_images):
    """use_absolute_embeddings (the table resized bicubic away from the native size, as HF's
    interpolate_pos_encoding), and a folder with the hub's tensor names (attention.self.query,
    attention.output.dense, intermediate.dense) gives the same file contents."""
    from safetensors.torch import load_file, save_file
    m = hf_model(False, seed=9, use_absolute_embeddings=True)
    out = _hf_check_sizes(m, tmp_path, real_images, SIZES, batch=1)
    sd = load_file(str(tmp_path / "m" / "model.safetensors"))
    old = {}
    for k, v in sd.items():
        for a, b in [(".attention.q_proj.", ".attention.self.query."), (".attention.k_proj.", ".attention.self.key."),
                     (".attention.v_proj.", ".attention.self.value."), (".attention.o_proj.", ".attention.output.dense."),
                     (".mlp.fc1.", ".intermediate.dense."), (".mlp.fc2.", ".output.dense."),
                     (".attention.relative_position_bias.relative_position_bias_table",
                      ".attention.self.relative_position_bias_table")]:
            k = k.replace(a, b)
        old[k] = v.contiguous()
    assert any(".attention.self.query." in k for k in old)
    save_file(old, str(tmp_path / "m" / "model.safetensors"))
    a = load_model(str(tmp_path / "m")).tensors
    b = load_model(str(out.parent / "m")).tensors
    assert set(a) == set(b)
    px = _pixels(real_images, 1, (96, 96), seed=8)
    convert(str(tmp_path / "m"), str(tmp_path / "old.gguf"), outtype="f32", verbose=False)
    ours = pyvitcpp.Encoder(tmp_path / "old.gguf", threads=2).forward(px, ["logits"])["logits"]
    assert cosine(ours, hf_reference(m, px)["logits"]) >= 0.99999


@pytest.mark.parametrize("v2", [False, True])
def test_timm_non_square_native(tmp_path, real_images, v2):
    """img_size (96, 64): grids 24x16 -> 12x8 -> 6x4 with window 5: timm shrinks the last stage's
    window per axis to (5, 4) and shifts only along the height (per-axis rule, non-square bias
    table), which the file records per stage."""
    m, name, kw = timm_model(v2, seed=31, img_size=(96, 64))
    torch.save(m.state_dict(), str(tmp_path / "s.pth"))
    kw = {k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items()}
    out = tmp_path / "s.gguf"
    convert(str(tmp_path / "s.pth"), str(out), outtype="f32", verbose=False, model_name=name, model_kwargs=kw)
    enc = pyvitcpp.Encoder(out, threads=2)
    assert enc.config["stage_windows"] == "5,5,5,5,5,4" and enc.config["stage_shifts"] == "2,2,2,2,2,0"
    px = _pixels(real_images, 2, (96, 64), seed=12)
    check(enc.forward(px, list(timm_reference(m, px))), timm_reference(m, px))


def test_rel_bias_and_mask_matter(timm_tiny, real_images):
    """Zeroing the bias tables (V1) or the CPB MLP's output layer (V2) changes our output
    clearly, so the parity tests would catch a dropped or mis-indexed bias."""
    m, path = timm_tiny
    px = _pixels(real_images, 1, SIZES[0], seed=2)
    ours = pyvitcpp.Encoder(path, threads=2).forward(px, ["features.0"])["features.0"]
    import copy
    m0 = copy.deepcopy(m)
    with torch.no_grad():
        for n, p in m0.named_parameters():
            if "relative_position_bias_table" in n or "cpb_mlp.2" in n:
                p.zero_()
    assert cosine(ours, timm_reference(m0, px)["features.0"]) < 0.999
    assert cosine(ours, timm_reference(m, px)["features.0"]) >= 0.99999


def test_errors(tmp_path, timm_tiny):
    m, path = timm_tiny
    enc = pyvitcpp.Encoder(path, threads=2)
    with pytest.raises(pyvitcpp.ModelError, match="multiples of its 4-pixel patch"):
        enc.forward(np.zeros((1, 3, 90, 96), np.float32), ["pooled"])
    with pytest.raises(pyvitcpp.ModelError, match="channels"):
        enc.forward(np.zeros((1, 4, 96, 96), np.float32), ["pooled"])
    sd = {k: v for k, v in m.state_dict().items()}
    torch.save(sd, str(tmp_path / "s.pth"))
    name = "swinv2_tiny_window8_256" if hasattr(m.layers[0].blocks[0].attn, "cpb_mlp") else \
        "swin_tiny_patch4_window7_224"
    with pytest.raises(ConversionError, match="does not match timm model"):
        load_model(str(tmp_path / "s.pth"), model_name=name)  # without the tiny model's kwargs
    with pytest.raises(ConversionError, match="model name"):
        from pyvitcpp.convert.swin import load_timm_swin
        load_timm_swin(str(tmp_path / "s.pth"))


def test_bad_keys_raise(tmp_path):
    """A file whose swin keys contradict each other fails at load with a ModelError naming the key."""
    from pyvitcpp.convert.writer import write_gguf
    m = hf_model(False, seed=1, num_labels=0)
    m.save_pretrained(tmp_path / "m")
    cm = load_model(str(tmp_path / "m"))
    for key, value, msg in [("swin.window_rule", "sometimes", "window_rule"),
                            ("swin.head_counts", [3, 5, 6], "head_counts"),
                            ("swin.shift_order", "x", "shift_order")]:
        cm.hparams = [(k, value if k == key else v, t) for k, v, t in load_model(str(tmp_path / "m")).hparams]
        out = tmp_path / "bad.gguf"
        write_gguf(cm, str(out), outtype="f32", verbose=False)
        with pytest.raises(pyvitcpp.ModelError, match=msg):
            pyvitcpp.Encoder(out, threads=1)


@pytest.mark.slow
@pytest.mark.parametrize("source", ["hf", "timm"])
def test_swin_tiny_200x232(tmp_path, real_images, source):
    """The real Swin-T config (96, depths 2-2-6-2, heads 3-6-12-24, window 7) re-randomised, at
    200x232: grids 50x58 -> 25x29 -> 13x15 -> 7x8, none a multiple of the window; the last stage
    differs between the two sources' rules (HF: min side 7 <= 7, one unshifted 7x7 window padded to
    7x14; timm: the native 7x7 windows, unshifted, padded the same way)."""
    if source == "hf":
        m = transformers.SwinForImageClassification(transformers.SwinConfig(num_labels=10)).eval()
        _randomize(m, 41)
        m.save_pretrained(tmp_path / "m")
        convert(str(tmp_path / "m"), str(tmp_path / "m.gguf"), outtype="f32", verbose=False)
        ref_fn = hf_reference
    else:
        m = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, num_classes=10,
                              dynamic_img_size=True).eval()
        _randomize(m, 43)
        torch.save(m.state_dict(), str(tmp_path / "m.pth"))
        convert(str(tmp_path / "m.pth"), str(tmp_path / "m.gguf"), outtype="f32", verbose=False,
                model_name="swin_tiny_patch4_window7_224", model_kwargs={"num_classes": 10})
        ref_fn = timm_reference
    enc = pyvitcpp.Encoder(tmp_path / "m.gguf", threads=2)
    px = _pixels(real_images, 2, (200, 232), seed=6)
    ref = ref_fn(m, px)
    ours = enc.forward(px, list(ref))
    figures = []
    global N_LAYERS, K_MAX
    saved = N_LAYERS, K_MAX
    N_LAYERS, K_MAX = 12 + 4, 4 * 768
    try:
        check(ours, ref, figures)
    finally:
        N_LAYERS, K_MAX = saved
    for key, c, err, bound in figures:
        print(f"{source} swin_tiny 200x232 {key}: cosine {c:.10f}, max abs {err:.3g} (bound {bound:.3g})")


def _format_rounded(m, qt):
    """A copy of m whose matrices went through the file's storage type as the writer picks it
    (block types for rows of whole blocks, else F16; the position-bias tensors stay F32)."""
    import copy

    import gguf
    mq = copy.deepcopy(m)
    keep = ("relative_position_bias_table", "continuous_position_bias_mlp", "cpb_mlp", "position_embeddings",
            "logit_scale")
    qtype = {"q8_0": gguf.GGMLQuantizationType.Q8_0, "q4_0": gguf.GGMLQuantizationType.Q4_0}.get(qt)
    with torch.no_grad():
        for name, p in mq.named_parameters():
            if p.ndim < 2 or any(k in name for k in keep):
                continue
            a = p.detach().numpy().astype(np.float32)
            if qtype is not None and a.shape[-1] % 32 == 0:
                a2 = a.reshape(-1, a.shape[-1])
                r = gguf.quants.dequantize(gguf.quants.quantize(a2, qtype), qtype).reshape(a.shape)
            else:
                r = a.astype(np.float16).astype(np.float32)
            p.copy_(torch.from_numpy(np.ascontiguousarray(r)))
    return mq


@pytest.mark.slow
@pytest.mark.parametrize("v2", [False, True])
def test_quantized_rows(tmp_path, real_images, v2):
    """README's accuracy rows: Swin-T / Swin-V2-T width (C0 96, heads 3-6-12-24) with depths
    2-2-2-2, seeded random weights (V2 logit scales up to the clamp, so sharp softmaxes), three
    real-photo crops at the native size. Cosine of `pooled` against PyTorch F32 (the figure), and
    against PyTorch running the same format-rounded weights (the engine's own error; block types
    also quantize the activations to 8 bits on the fly)."""
    kw = dict(embed_dim=96, depths=[2, 2, 2, 2], num_heads=[3, 6, 12, 24], num_labels=1000,
              window_size=8 if v2 else 7, image_size=256 if v2 else 224)
    cls = transformers.Swinv2ForImageClassification if v2 else transformers.SwinForImageClassification
    cfgc = transformers.Swinv2Config if v2 else transformers.SwinConfig
    m = cls(cfgc(**kw)).eval()
    _randomize(m, 51)
    m.save_pretrained(tmp_path / "m")
    px = _pixels(real_images, 3, (kw["image_size"],) * 2, seed=1)
    ref = hf_reference(m, px)["pooled"]
    # V2's cosine attention multiplies cosine errors by the logit scale (up to 100 here): the 8-bit
    # activations of the block types move its output by ~1e-2 (F16 weights alone: 1.4e-4 to F32)
    limits = [("f16", 0.99999), ("q8_0", 0.98), ("q4_0", 0.95)] if v2 else \
        [("f16", 0.99999), ("q8_0", 0.9999), ("q4_0", 0.999)]
    for qt, engine_min in limits:
        out = tmp_path / f"{qt}.gguf"
        convert(str(tmp_path / "m"), str(out), outtype=qt, verbose=False)
        ours = pyvitcpp.Encoder(out, threads=2).forward(px, ["pooled"])["pooled"]
        rounded = hf_reference(_format_rounded(m, qt), px)["pooled"]
        c, c_same, c_fmt = cosine(ours, ref), cosine(ours, rounded), cosine(rounded, ref)
        print(f"{'swinv2' if v2 else 'swin'} {qt} ({_default_level()}): pooled cosine to PyTorch F32 {c:.6f}; "
              f"PyTorch on the {qt}-rounded weights {c_fmt:.6f}; ours to that {c_same:.6f}")
        assert c_same >= engine_min, (qt, c_same)


def test_preprocessing_and_labels(tmp_path):
    """HF: the folder's preprocessor_config.json (Swin's hub file: ViTImageProcessor, size 224,
    bicubic, ImageNet mean/std) and id2label; timm: the model's pretrained config (swin_tiny:
    crop_pct 0.9, bicubic) and the ImageNet labels for a 1000-class head."""
    import json
    m = hf_model(False, seed=2, num_labels=3, id2label={0: "cat", 1: "dog", 2: "fox"}, label2id=None)
    m.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "preprocessor_config.json").write_text(json.dumps({
        "do_normalize": True, "do_resize": True, "image_mean": [0.485, 0.456, 0.406],
        "image_std": [0.229, 0.224, 0.225], "image_processor_type": "ViTImageProcessor", "resample": 3,
        "size": 224}))
    cm = load_model(str(tmp_path / "m"))
    assert cm.labels == ["cat", "dog", "fox"]
    assert cm.preprocess.resize_mode == "squash" and cm.preprocess.image_size == (224, 224)
    assert cm.preprocess.interpolation == "bicubic" and cm.preprocess.mean == (0.485, 0.456, 0.406)
    t, name, kw = timm_model(False, seed=2, num_classes=1000)
    torch.save(t.state_dict(), str(tmp_path / "t.pth"))
    kw = {k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items()}
    cm = load_model(str(tmp_path / "t.pth"), model_name=name, model_kwargs=kw)
    assert len(cm.labels) == 1000 and cm.labels[0].startswith("tench")
    assert cm.preprocess.resize_mode == "shortest_edge_crop" and cm.preprocess.crop_pct == pytest.approx(0.9)
    assert cm.preprocess.interpolation == "bicubic"


def test_timm_official_variants_spec():
    """timm's swin_* / swinv2_* architectures (a representative set, built on the meta device, no
    weights) give a spec the schema can hold: per-stage windows (7 or 12 and the shrunk last stages, swin_s3's
    per-stage windows), shifts below the windows, V2's pretrained window sizes."""
    from pyvitcpp.convert.swin import _timm_spec, swin_hparams
    from pyvitcpp.convert.timm_vit import _create_meta
    names = ["swin_tiny_patch4_window7_224", "swin_base_patch4_window12_384", "swin_large_patch4_window7_224",
             "swin_s3_tiny_224", "swinv2_tiny_window8_256", "swinv2_small_window16_256",
             "swinv2_base_window12to24_192to384", "swinv2_large_window12_192"]
    assert set(names) <= set(timm.list_models(["swin_*", "swinv2_*"]))
    for name in names:
        s = _timm_spec(_create_meta(timm, name, {}), name)
        hp = {k: v for k, v, _ in swin_hparams(window_rule="fixed", shift_order="roll_pad", pad_pixels=False, **s)}
        wins, shifts = hp["swin.stage_windows"], hp["swin.stage_shifts"]
        assert len(wins) == 2 * len(s["depths"]) and all(0 <= sh < w for sh, w in zip(shifts, wins)), name
        if name == "swin_base_patch4_window12_384":
            assert wins == [12] * 8 and shifts == [6] * 6 + [0, 0]
        if name == "swin_tiny_patch4_window7_224":
            assert wins == [7] * 8 and shifts == [3] * 6 + [0, 0]
