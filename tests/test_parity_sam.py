"""SAM image encoder (architecture ``sam``) end to end against segment_anything's ImageEncoderViT
and transformers' SamVisionModel: same seeded weights (every parameter re-randomised, the rel-pos
tables and the position table included), same pixels, every output, every kernel level this CPU
runs. Tiny configs whose patch grid is not a multiple of the window (so windowed blocks pad), with
a head width (24) and widths (72, 288) that are not multiples of 32; plus the converter's variant
recognition, its overrides, the decoder tensors it keeps, preprocessing and errors."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import cosine, fp32_bound, image_batch, isa_or_skip, randomize_

torch = pytest.importorskip("torch")
image_encoder = pytest.importorskip("segment_anything.modeling.image_encoder")

import pyvitcpp  # noqa: E402
from pyvitcpp.convert import ConversionError, convert, load_model  # noqa: E402
from pyvitcpp.convert.writer import write_gguf  # noqa: E402

LEVELS = ["ref", "avx2", "avx512"]

# grid 8 with window 3: windowed blocks pad 8 -> 9 (3x3 windows of 3x3); blocks 1 and 3 global
TINY = dict(img_size=128, patch_size=16, embed_dim=72, depth=4, num_heads=3, out_chans=32, qkv_bias=True,
            use_rel_pos=True, window_size=3, global_attn_indexes=(1, 3))
K_MAX = max(4 * 72, 9 * 32)  # the longest reduction: fc2 (288) and the 3x3 neck conv (288)


def sa_encoder(seed: int, **overrides):
    cfg = dict(TINY, **overrides)
    m = image_encoder.ImageEncoderViT(**cfg).eval()
    randomize_(m, seed)  # "pos" in the name: pos_embed and the rel_pos tables ~ N(0, 0.5)
    return m, cfg


def sa_reference(m, px: np.ndarray) -> dict:
    """image_embeddings and every block's output ([B, gh, gw, D], as HF's hidden_states). Away
    from the native size the position table is resized as timm's SAM ViT does
    (resample_abs_pos_embed_nhwc: bicubic, antialias); segment_anything's get_rel_pos then
    interpolates the global blocks' rel-pos tables itself."""
    native = px.shape[2] == px.shape[3] == m.img_size
    with torch.no_grad():
        x = m.patch_embed(torch.from_numpy(px))
        if m.pos_embed is not None:
            pos = m.pos_embed
            if not native:
                pos = torch.nn.functional.interpolate(pos.permute(0, 3, 1, 2), size=tuple(x.shape[1:3]),
                                                      mode="bicubic", antialias=True).permute(0, 2, 3, 1)
            x = x + pos
        out = {"hidden_states.0": x}
        for i, blk in enumerate(m.blocks):
            x = blk(x)
            out[f"hidden_states.{i + 1}"] = x
        emb = m.neck(x.permute(0, 3, 1, 2))
        if native:
            assert torch.equal(emb, m(torch.from_numpy(px)))
    out.update(image_embeddings=emb, last_hidden_state=emb, embedding=emb)
    return {k: v.numpy() for k, v in out.items()}


def save_sam_checkpoint(m, path, extra=None):
    sd = {"image_encoder." + k: v for k, v in m.state_dict().items()}
    sd.update(extra or {})
    torch.save(sd, str(path))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    m, cfg = sa_encoder(seed=16)
    d = tmp_path_factory.mktemp("sam")
    save_sam_checkpoint(m, d / "sam_tiny.pth")
    out = d / "sam_tiny-f32.gguf"
    convert(str(d / "sam_tiny.pth"), str(out), outtype="f32", verbose=False)
    return m, cfg, str(out), d


def check(ours: dict, ref: dict, n_layers: int, k_max: int, figures: list | None = None):
    for key, r in ref.items():
        o = ours[key]
        assert o.shape == r.shape, (key, o.shape, r.shape)
        assert np.isfinite(o).all(), key
        c = cosine(o, r)
        err = float(np.abs(o - r).max())
        bound = fp32_bound(r, n_layers, k_max)
        if figures is not None:
            figures.append((key, c, err, bound))
        assert c >= 0.99999, f"{key}: cosine {c:.8f} < 0.99999"
        assert err <= bound, f"{key}: max abs error {err:.3g} > fp32 bound {bound:.3g}"


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("batch", [1, 2])
def test_segment_anything_parity_f32(tiny, real_images, level, batch):
    isa_or_skip(level)
    m, cfg, path, _ = tiny
    enc = pyvitcpp.Encoder(path, isa=level, threads=2)
    px = image_batch(real_images, batch, cfg["img_size"], seed=batch)
    ref = sa_reference(m, px)
    ours = enc.forward(px, list(ref))
    assert ours["image_embeddings"].shape == (batch, 32, 8, 8)
    assert ours["hidden_states.4"].shape == (batch, 8, 8, 72)
    figures = []
    check(ours, ref, cfg["depth"] + 1, K_MAX, figures)  # + 1: the neck
    for key, c, err, bound in figures:
        if key in ("image_embeddings", "hidden_states.4"):
            print(f"{level} B={batch} {key}: cosine {c:.10f}, max abs {err:.3g} (bound {bound:.3g})")


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("hw", [(160, 128), (96, 96), (64, 208)])
def test_segment_anything_other_sizes(tiny, real_images, level, hw):
    """Grids 10x8 (windows pad both ways), 6x6 (smaller than native) and 4x13 (non-square, the
    height below the native grid and the width above): resized position table, global rel-pos
    tables interpolated."""
    isa_or_skip(level)
    m, cfg, path, _ = tiny
    enc = pyvitcpp.Encoder(path, isa=level, threads=2)
    px = image_batch(real_images, 2, max(hw), seed=21)[:, :, :hw[0], :hw[1]].copy()
    ref = sa_reference(m, px)
    ours = enc.forward(px, list(ref))
    assert ours["image_embeddings"].shape == (2, 32, hw[0] // 16, hw[1] // 16)
    check(ours, ref, cfg["depth"] + 1, K_MAX)


def test_rel_pos_matters(tiny, real_images):
    """The same weights with the rel-pos tables zeroed give a clearly different output, so the
    parity above fails if the engine dropped (or mis-indexed) the decomposed rel-pos."""
    m, cfg, path, _ = tiny
    px = image_batch(real_images, 1, cfg["img_size"], seed=5)
    ours = pyvitcpp.Encoder(path, threads=2).forward(px, ["image_embeddings"])["image_embeddings"]
    m0, _ = sa_encoder(seed=16)
    with torch.no_grad():
        for blk in m0.blocks:
            blk.attn.rel_pos_h.zero_()
            blk.attn.rel_pos_w.zero_()
    without = sa_reference(m0, px)["image_embeddings"]
    assert cosine(ours, without) < 0.999
    assert cosine(ours, sa_reference(m, px)["image_embeddings"]) >= 0.99999


def test_no_rel_pos_needs_overrides(tmp_path, real_images):
    """Without rel-pos tables the shapes cannot tell heads, window or global blocks: an error naming
    the override, then parity with the overrides given."""
    m, cfg = sa_encoder(seed=3, use_rel_pos=False, window_size=5, global_attn_indexes=(2,))
    src = tmp_path / "norel.pth"
    save_sam_checkpoint(m, src)
    with pytest.raises(ConversionError, match="num_heads"):
        load_model(str(src))
    out = tmp_path / "norel.gguf"
    convert(str(src), str(out), outtype="f32", verbose=False,
            model_kwargs={"num_heads": 3, "window_size": 5, "global_attn_indexes": [2]})
    enc = pyvitcpp.Encoder(out, threads=2)
    assert enc.config["use_rel_pos"] in (False, "false")
    px = image_batch(real_images, 2, cfg["img_size"], seed=9)
    ref = sa_reference(m, px)
    check(enc.forward(px, list(ref)), ref, cfg["depth"] + 1, K_MAX)


def test_override_contradicting_shapes(tiny):
    _, _, _, d = tiny
    with pytest.raises(ConversionError, match="window_size=4"):
        load_model(str(d / "sam_tiny.pth"), model_kwargs={"window_size": 4})
    with pytest.raises(ConversionError, match="unknown SAM model argument"):
        load_model(str(d / "sam_tiny.pth"), model_kwargs={"depth": 4})


def _shapes_only(D, depth, heads, window, glob, grid=64, patch=16, out=256, rel=True):
    """A Sam state dict of the real shapes without the memory (zero-stride arrays)."""
    z = lambda *s: np.broadcast_to(np.float32(0), s)  # noqa: E731
    p = "image_encoder."
    sd = {p + "patch_embed.proj.weight": z(D, 3, patch, patch), p + "patch_embed.proj.bias": z(D),
          p + "pos_embed": z(1, grid, grid, D), p + "neck.0.weight": z(out, D, 1, 1),
          p + "neck.1.weight": z(out), p + "neck.1.bias": z(out), p + "neck.2.weight": z(out, out, 3, 3),
          p + "neck.3.weight": z(out), p + "neck.3.bias": z(out)}
    for i in range(depth):
        b = f"{p}blocks.{i}."
        g = grid if i in glob else window
        sd.update({b + "norm1.weight": z(D), b + "norm1.bias": z(D), b + "norm2.weight": z(D),
                   b + "norm2.bias": z(D), b + "attn.qkv.weight": z(3 * D, D), b + "attn.qkv.bias": z(3 * D),
                   b + "attn.proj.weight": z(D, D), b + "attn.proj.bias": z(D),
                   b + "mlp.lin1.weight": z(4 * D, D), b + "mlp.lin1.bias": z(4 * D),
                   b + "mlp.lin2.weight": z(D, 4 * D), b + "mlp.lin2.bias": z(D)})
        if rel:
            sd[b + "attn.rel_pos_h"] = z(2 * g - 1, D // heads)
            sd[b + "attn.rel_pos_w"] = z(2 * g - 1, D // heads)
    return sd


@pytest.mark.parametrize("variant", ["vit_b", "vit_l", "vit_h"])
@pytest.mark.parametrize("rel", [True, False])
def test_official_variants_from_shapes(variant, rel):
    from pyvitcpp.convert.sam import OFFICIAL, map_state_dict, SA_RULES, sam_hparams
    D = {"vit_b": 768, "vit_l": 1024, "vit_h": 1280}[variant]
    depth, heads, glob = OFFICIAL[D]
    sd = _shapes_only(D, depth, heads, 14, glob, rel=rel)
    enc = {k[len("image_encoder."):]: v for k, v in sd.items()}
    pos = enc.pop("pos_embed")
    t = map_state_dict(enc, SA_RULES)
    t["v.position_embd.weight"] = pos
    hp = {k: v for k, v, _ in sam_hparams(t, num_heads=None, window_size=None, global_attn_indexes=None,
                                          layer_norm_eps=1e-6, what=variant)}
    assert hp["sam.block_count"] == depth and hp["sam.attention.head_count"] == heads
    assert hp["sam.window_size"] == 14 and hp["sam.global_attn_indexes"] == list(glob)
    assert hp["sam.image_size"] == 1024 and hp["sam.output_channels"] == 256
    assert hp["sam.feed_forward_length"] == 4 * D and hp["sam.use_rel_pos"] == rel


def test_decoder_tensors_kept(tmp_path):
    """prompt_encoder.* / mask_decoder.* of a Sam checkpoint are written (names under 64 bytes,
    never block-quantized, rel-pos tables F32) and do not disturb the encoder."""
    import gguf
    from segment_anything.modeling.mask_decoder import MaskDecoder
    from segment_anything.modeling.prompt_encoder import PromptEncoder
    from segment_anything.modeling.transformer import TwoWayTransformer
    m, _ = sa_encoder(seed=4, embed_dim=96, num_heads=3)  # D 96: its matrices can be Q8_0
    pe = PromptEncoder(embed_dim=32, image_embedding_size=(8, 8), input_image_size=(128, 128), mask_in_chans=16)
    md = MaskDecoder(transformer_dim=32, transformer=TwoWayTransformer(depth=2, embedding_dim=32, mlp_dim=64,
                                                                       num_heads=2))
    extra = {"prompt_encoder." + k: v for k, v in pe.state_dict().items()}
    extra.update({"mask_decoder." + k: v for k, v in md.state_dict().items()})
    src = tmp_path / "sam_full.pth"
    save_sam_checkpoint(m, src, extra)
    out = tmp_path / "sam_full-q8_0.gguf"
    convert(str(src), str(out), outtype="q8_0", verbose=False)
    r = gguf.GGUFReader(str(out))
    types = {t.name: t.tensor_type.name for t in r.tensors}
    dec = [n for n in types if n.startswith(("sam.pe.", "sam.md."))]
    assert len(dec) == len(extra)
    assert all(len(n) < 64 for n in types)
    assert all(types[n] in ("F32", "F16") for n in dec)
    assert types["v.blk.0.attn_rel_h"] == "F32" and types["v.blk.0.attn_qkv.weight"] == "Q8_0"
    assert r.fields["sam.decoder_layout"].contents() == "segment_anything"
    enc = pyvitcpp.Encoder(out, threads=2)
    px = np.random.default_rng(0).standard_normal((1, 3, 128, 128)).astype(np.float32)
    ref = sa_reference(m, px)["image_embeddings"]
    c = cosine(enc.forward(px, ["image_embeddings"])["image_embeddings"], ref)
    print(f"Q8_0 (D 96, tiny): cosine to the F32 reference {c:.6f}")
    assert c >= 0.999
    # the C++ re-quantizer (pyvitcpp quantize) applies the same type rules as the converter
    f32 = tmp_path / "sam_full-f32.gguf"
    convert(str(src), str(f32), outtype="f32", verbose=False)
    req = tmp_path / "sam_full-req-q8_0.gguf"
    pyvitcpp.quantize(str(f32), str(req), "q8_0")
    assert {t.name: t.tensor_type.name for t in gguf.GGUFReader(str(req)).tensors} == types


def test_input_size_and_hparam_errors(tiny, tmp_path):
    m, cfg, path, d = tiny
    enc = pyvitcpp.Encoder(path, threads=2)
    with pytest.raises(pyvitcpp.ModelError, match="native 128x128.*multiples of its 16-pixel patch"):
        enc.forward(np.zeros((1, 3, 136, 128), np.float32), ["image_embeddings"])
    model = load_model(str(d / "sam_tiny.pth"))
    for key, value, match in [("sam.window_size", 9, "sam.window_size"),
                              ("sam.global_attn_indexes", [1, 7], "sam.global_attn_indexes"),
                              ("sam.attention.head_count", 5, "head_count")]:
        bad = load_model(str(d / "sam_tiny.pth"))
        bad.hparams = [(k, value if k == key else v, kind) for k, v, kind in model.hparams]
        out = tmp_path / f"bad_{key}.gguf"
        write_gguf(bad, str(out), outtype="f32", verbose=False)
        with pytest.raises(pyvitcpp.ModelError, match=match):
            pyvitcpp.Encoder(out, threads=1)
    bad = load_model(str(d / "sam_tiny.pth"))
    del bad.tensors["v.blk.2.attn_rel_w"]
    write_gguf(bad, str(tmp_path / "missing.gguf"), outtype="f32", verbose=False)
    with pytest.raises(pyvitcpp.ModelError, match="v.blk.2.attn_rel_w"):
        pyvitcpp.Encoder(tmp_path / "missing.gguf", threads=1)


def test_preprocess_matches_sam(real_images):
    """longest_edge_pad vs segment_anything's own path (ResizeLongestSide.apply_image: PIL bilinear
    through torchvision; Sam.preprocess: normalise, zero-pad bottom/right) and transformers'
    SamImageProcessor, on real photos of both orientations."""
    transformers = pytest.importorskip("transformers")
    from segment_anything.utils.transforms import ResizeLongestSide
    from pyvitcpp.convert.sam import SAM_MEAN, SAM_STD, sam_preprocess
    from pyvitcpp.preprocess import Preprocessor
    proc = transformers.SamImageProcessor()
    ours = Preprocessor.from_metadata(dict((k, v) for k, v, _ in sam_preprocess(1024).metadata()))
    mean = torch.tensor(SAM_MEAN).view(3, 1, 1) * 255
    std = torch.tensor(SAM_STD).view(3, 1, 1) * 255
    for img in (real_images[0], real_images[2][:, :300], np.ascontiguousarray(real_images[1].transpose(1, 0, 2))):
        got = ours.one(img)
        x = torch.as_tensor(ResizeLongestSide(1024).apply_image(img)).permute(2, 0, 1).float()
        x = (x - mean) / std
        sa = torch.nn.functional.pad(x, (0, 1024 - x.shape[2], 0, 1024 - x.shape[1])).numpy()
        assert got.shape == sa.shape == (3, 1024, 1024)
        np.testing.assert_allclose(got, sa, atol=1e-5, rtol=0)
        # transformers 5's processor resizes through torchvision: a few pixels round to the next level
        hf = proc(images=img, return_tensors="np")["pixel_values"][0]
        err = np.abs(got - hf)
        assert err.max() <= (1 / 255) / min(SAM_STD) * 1.001, err.max()
        assert (err > 1e-5).mean() <= 0.001, (err > 1e-5).mean()


# ----------------------------------------------------------------------------- Hugging Face
@pytest.fixture(scope="module")
def hf_tiny(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.SamVisionConfig(hidden_size=72, num_hidden_layers=4, num_attention_heads=3, image_size=128,
                                       patch_size=16, window_size=3, global_attn_indexes=[1, 3], output_channels=32,
                                       mlp_dim=288)
    m = transformers.SamVisionModel(cfg).eval()
    randomize_(m, seed=61)  # HF initialises the rel-pos tables to zero; these are N(0, 0.5)
    assert float(m.vision_encoder.layers[0].attn.rel_pos_h.detach().abs().max()) > 0.1
    d = tmp_path_factory.mktemp("hf_sam")
    m.save_pretrained(d)
    out = d / "hf-sam-f32.gguf"
    convert(str(d), str(out), outtype="f32", verbose=False)
    return m, cfg, str(out)


@pytest.mark.parametrize("level", LEVELS)
def test_hf_sam_vision_parity_f32(hf_tiny, real_images, level):
    isa_or_skip(level)
    m, cfg, path = hf_tiny
    enc = pyvitcpp.Encoder(path, isa=level, threads=2)
    assert enc.config["architecture"] == "sam" and enc.config["window_size"] == 3
    px = image_batch(real_images, 2, cfg.image_size, seed=11)
    with torch.no_grad():
        o = m(pixel_values=torch.from_numpy(px), output_hidden_states=True)
    ref = {"last_hidden_state": o.last_hidden_state.numpy(), "image_embeddings": o.last_hidden_state.numpy()}
    ref.update({f"hidden_states.{i}": h.numpy() for i, h in enumerate(o.hidden_states)})
    check(enc.forward(px, list(ref)), ref, cfg.num_hidden_layers + 1, K_MAX)


def test_hf_sam_model_folder(tmp_path, real_images):
    """A full SamModel folder: the vision encoder runs (= get_image_embeddings), the prompt
    encoder, mask decoder and shared positional embedding are kept (sam.pe.*, sam.md.*,
    sam.shared_pe.*, decoder layout 'hf')."""
    import gguf
    transformers = pytest.importorskip("transformers")
    vc = dict(hidden_size=72, num_hidden_layers=2, num_attention_heads=3, image_size=64, patch_size=16,
              window_size=3, global_attn_indexes=[1], output_channels=32, mlp_dim=144)
    cfg = transformers.SamConfig(
        vision_config=vc, prompt_encoder_config=dict(hidden_size=32, image_size=64, patch_size=16, mask_input_channels=8),
        mask_decoder_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_dim=64,
                                 iou_head_hidden_dim=32))
    m = transformers.SamModel(cfg).eval()
    randomize_(m, seed=62)
    m.save_pretrained(tmp_path)
    out = tmp_path / "sam-f32.gguf"
    convert(str(tmp_path), str(out), outtype="f32", verbose=False)
    r = gguf.GGUFReader(str(out))
    names = [t.name for t in r.tensors]
    assert any(n.startswith("sam.md.") for n in names) and any(n.startswith("sam.pe.") for n in names)
    assert "sam.shared_pe.positional_embedding" in names
    assert r.fields["sam.decoder_layout"].contents() == "hf"
    px = image_batch(real_images, 2, 64, seed=13)
    with torch.no_grad():
        ref = m.get_image_embeddings(torch.from_numpy(px)).numpy()
    got = pyvitcpp.Encoder(out, threads=2).forward(px, ["image_embeddings"])["image_embeddings"]
    check({"image_embeddings": got}, {"image_embeddings": ref}, 3, K_MAX)


def test_cli_embed_image_embeddings(tiny, real_images, tmp_path, capsys):
    """`pyvitcpp embed photo.png -m sam.gguf --output image_embeddings -o e.npy`: SAM preprocessing
    (longest side, pad) from the file, the same numbers as Encoder.encode."""
    from PIL import Image
    from pyvitcpp.cli import main
    _, _, path, _ = tiny
    imgs = []
    for i, img in enumerate(real_images[:2]):
        p = tmp_path / f"{i}.png"
        Image.fromarray(img).save(p)
        imgs.append(str(p))
    npy = tmp_path / "e.npy"
    assert main(["embed", *imgs, "-m", path, "--output", "image_embeddings", "-o", str(npy)]) == 0
    assert "2 x 32 x 8 x 8" in capsys.readouterr().err
    got = np.load(npy)
    want = pyvitcpp.Encoder(path, threads=2).encode(imgs, output="image_embeddings")
    assert got.shape == (2, 32, 8, 8)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_bench_spec_runs():
    """The bench's SAM spec (sam_vit_b_encoder; here its hidden tiny twin) builds, converts and
    agrees with segment_anything in the bench's own accuracy column."""
    from pyvitcpp import bench
    args = bench.build_arg_parser().parse_args(
        ["--models", "sam_test_tiny", "--batch", "1", "--reps", "1", "--warmup", "0", "--peak-seconds", "0.02",
         "--runtimes", "ours", "torch", "--types", "f32", "--no-fresh-process"])
    args.argv = []
    table = bench.run(args, log=lambda s: None)
    rows = [r.split("|")[1:-1] for r in table.splitlines() if r.startswith("| sam_test_tiny |")]
    assert [r[2].strip() for r in rows] == ["ours-f32", "torch"]
    err, cos = (float(v) for v in rows[0][11].split("/"))
    assert err < 1e-4 and cos > 0.99999


@pytest.mark.parametrize("outtype,min_cos", [("f32", 0.9999), ("q8_0", 0.999)])
def test_masks_from_our_embeddings(tmp_path, real_images, outtype, min_cos):
    """The real use: our image embeddings fed to segment_anything's own prompt encoder and mask
    decoder (PyTorch) with a point prompt give the low-res mask logits of the all-PyTorch
    pipeline. Every parameter of the whole Sam re-randomised."""
    from segment_anything.modeling.mask_decoder import MaskDecoder
    from segment_anything.modeling.prompt_encoder import PromptEncoder
    from segment_anything.modeling.transformer import TwoWayTransformer

    m, cfg = sa_encoder(seed=31, embed_dim=96, num_heads=3)
    pe = PromptEncoder(embed_dim=32, image_embedding_size=(8, 8), input_image_size=(128, 128), mask_in_chans=16)
    md = MaskDecoder(transformer_dim=32, transformer=TwoWayTransformer(depth=2, embedding_dim=32, mlp_dim=64,
                                                                       num_heads=2), iou_head_hidden_dim=64)
    pe.eval(), md.eval()
    randomize_(pe, 32)
    randomize_(md, 33)
    extra = {"prompt_encoder." + k: v for k, v in pe.state_dict().items()}
    extra.update({"mask_decoder." + k: v for k, v in md.state_dict().items()})
    src = tmp_path / "sam_full.pth"
    save_sam_checkpoint(m, src, extra)
    out = tmp_path / f"sam_full-{outtype}.gguf"
    convert(str(src), str(out), outtype=outtype, verbose=False)
    px = image_batch(real_images, 2, 128, seed=5)
    points = torch.tensor([[[40.0, 70.0], [90.0, 20.0]], [[64.0, 64.0], [10.0, 100.0]]])
    labels = torch.tensor([[1, 0], [1, 1]])

    def masks(emb, b):
        with torch.no_grad():
            sparse, dense = pe(points=(points[b:b + 1], labels[b:b + 1]), boxes=None, masks=None)
            lo, iou = md(image_embeddings=emb, image_pe=pe.get_dense_pe(), sparse_prompt_embeddings=sparse,
                         dense_prompt_embeddings=dense, multimask_output=True)
        return lo.numpy(), iou.numpy()

    with torch.no_grad():
        ref_emb = m(torch.from_numpy(px))
    ours_emb = pyvitcpp.Encoder(str(out), threads=2).forward(px, ["image_embeddings"])["image_embeddings"]
    for b in range(2):  # the decoder takes one image at a time
        ref_lo, ref_iou = masks(ref_emb[b:b + 1], b)
        lo, iou = masks(torch.from_numpy(ours_emb[b:b + 1]), b)
        c = cosine(lo, ref_lo)
        print(f"{outtype} image {b}: low-res mask logits cosine {c:.7f}, IoU preds max diff "
              f"{np.abs(iou - ref_iou).max():.2g}")
        assert c >= min_cos
        assert np.mean((lo > 0) != (ref_lo > 0)) <= (1e-3 if outtype == "f32" else 1e-2)  # the masks


@pytest.mark.slow
def test_full_vit_b_1024(tmp_path, real_images):
    """The real geometry: segment_anything's sam_model_registry["vit_b"] (12 blocks, D 768,
    window 14 on a 64 x 64 grid padded to 70, global blocks 2/5/8/11) with every parameter
    re-randomised, one real photo through our SAM preprocessing at 1024 x 1024; then a point
    prompt through its own mask decoder."""
    from segment_anything import sam_model_registry

    torch.manual_seed(0)
    sam = sam_model_registry["vit_b"]().eval()
    randomize_(sam, 7)
    src = tmp_path / "sam_vit_b_random.pth"
    torch.save(sam.state_dict(), str(src))
    out = tmp_path / "sam_b.gguf"
    convert(str(src), str(out), outtype="f32", verbose=False)
    enc = pyvitcpp.Encoder(str(out), threads=2)
    assert enc.config["window_size"] == 14 and enc.config["global_attn_indexes"] == "2,5,8,11"
    px = enc.preprocess([real_images[2]])
    assert px.shape == (1, 3, 1024, 1024)
    ours = enc.forward(px, ["image_embeddings"])["image_embeddings"]
    with torch.no_grad():
        ref = sam.image_encoder(torch.from_numpy(px))
        c = cosine(ours, ref.numpy())
        err = float(np.abs(ours - ref.numpy()).max())
        print(f"vit_b 1024: image_embeddings cosine {c:.8f}, max abs {err:.3g}")
        assert c >= 0.99999
        assert err <= fp32_bound(ref.numpy(), 13, 3072)
        pts, lab = torch.tensor([[[500.0, 300.0], [200.0, 700.0]]]), torch.tensor([[1, 0]])
        sp, de = sam.prompt_encoder(points=(pts, lab), boxes=None, masks=None)
        pe = sam.prompt_encoder.get_dense_pe()
        a, _ = sam.mask_decoder(ref, pe, sp, de, multimask_output=True)
        b, _ = sam.mask_decoder(torch.from_numpy(ours), pe, sp, de, multimask_output=True)
    print(f"vit_b 1024: low-res mask logits cosine {cosine(a.numpy(), b.numpy()):.8f}")
    assert cosine(a.numpy(), b.numpy()) >= 0.9999
