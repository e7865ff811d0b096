"""ViT / DeiT end to end vs the reference implementations (transformers, timm): same seeded
weights, same pixels; every output, F32 and F16 weights, every kernel level this CPU runs."""
from __future__ import annotations

import zlib

import numpy as np
import pytest

from conftest import cosine, fp32_bound, image_batch, isa_or_skip, randomize_

import torch
import transformers

import pyvitcpp  # noqa: E402
from pyvitcpp.convert import convert  # noqa: E402

LEVELS = ["ref", "avx2", "avx512"]


# ---------------------------------------------------------------------------------------------
# Reference models. Each returns (model, reference_fn(pixels) -> dict of numpy outputs, meta).

def _hf_outputs(model, px, kind):
    with torch.no_grad():
        x = torch.from_numpy(px)
        if kind == "vit_model":
            o = model(pixel_values=x)
            lhs, pooled = o.last_hidden_state, o.pooler_output
            return {"last_hidden_state": lhs, "cls": lhs[:, 0], "pooled": pooled, "embedding": pooled}
        if kind == "vit_cls":
            lhs = model.vit(pixel_values=x).last_hidden_state
            logits = model(pixel_values=x).logits
            return {"last_hidden_state": lhs, "cls": lhs[:, 0], "pooled": lhs[:, 0], "embedding": lhs[:, 0],
                    "logits": logits}
        if kind == "deit_teacher":
            lhs = model.deit(pixel_values=x).last_hidden_state
            logits = model(pixel_values=x).logits
            pooled = (lhs[:, 0] + lhs[:, 1]) / 2
            return {"last_hidden_state": lhs, "cls": lhs[:, 0], "pooled": pooled, "embedding": pooled,
                    "logits": logits}
    raise AssertionError(kind)


HF_CASES = {
    # hidden 48 (not a multiple of 32), 3 heads, patch 14, 5 classes
    "vit_cls_h48_p14": dict(kind="vit_cls", cls="ViTForImageClassification",
                            cfg=dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=3,
                                     intermediate_size=100, image_size=28, patch_size=14, num_labels=5)),
    # 1 head, patch 16, with the HF pooler
    "vit_model_h64_1head": dict(kind="vit_model", cls="ViTModel",
                                cfg=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=1,
                                         intermediate_size=128, image_size=32, patch_size=16)),
    # DeiT distilled (cls + dist tokens, averaged heads)
    "deit_teacher_h96": dict(kind="deit_teacher", cls="DeiTForImageClassificationWithTeacher",
                             cfg=dict(hidden_size=96, num_hidden_layers=2, num_attention_heads=3,
                                      intermediate_size=192, image_size=32, patch_size=16, num_labels=7,
                                      model_type="deit")),
}


def _build_hf(name, tmp_path_factory):
    case = HF_CASES[name]
    cfg_kwargs = dict(case["cfg"])
    model_type = cfg_kwargs.pop("model_type", "vit")
    Config = transformers.DeiTConfig if model_type == "deit" else transformers.ViTConfig
    config = Config(**cfg_kwargs)
    model = getattr(transformers, case["cls"])(config).eval()
    randomize_(model, seed=zlib.crc32(name.encode()))
    folder = tmp_path_factory.mktemp(name)
    model.save_pretrained(folder)
    return model, case, folder, config


@pytest.fixture(scope="module")
def hf_models(tmp_path_factory):
    built = {}
    for name in HF_CASES:
        model, case, folder, config = _build_hf(name, tmp_path_factory)
        paths = {}
        for outtype in ("f32", "f16"):
            out = folder / f"model-{outtype}.gguf"
            convert(str(folder), str(out), outtype=outtype, verbose=False)
            paths[outtype] = str(out)
        built[name] = (model, case, config, paths)
    return built


def _check(ours: dict, ref: dict, n_layers: int, k_max: int, min_cos: float, exact_bound: bool):
    assert set(ours) <= set(ref)
    for key, r in ref.items():
        if key not in ours:
            continue
        r = r.detach().numpy() if hasattr(r, "detach") else np.asarray(r)
        o = ours[key]
        assert o.shape == r.shape, (key, o.shape, r.shape)
        assert np.isfinite(o).all(), key
        c = cosine(o, r)
        assert c >= min_cos, f"{key}: cosine {c:.8f} < {min_cos}"
        if exact_bound:
            err = float(np.abs(o - r).max())
            bound = fp32_bound(r, n_layers, k_max)
            assert err <= bound, f"{key}: max abs error {err:.3g} > fp32 bound {bound:.3g}"


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("name", list(HF_CASES))
@pytest.mark.parametrize("batch", [1, 8])
def test_hf_parity_f32(hf_models, real_images, name, level, batch):
    isa_or_skip(level)
    model, case, config, paths = hf_models[name]
    enc = pyvitcpp.Encoder(paths["f32"], isa=level, threads=2)
    px = image_batch(real_images, batch, config.image_size, seed=batch)
    ref = _hf_outputs(model, px, case["kind"])
    ours = enc.forward(px, [k for k in ref if k in enc.output_names])
    assert set(ours) == set(ref)
    _check(ours, ref, config.num_hidden_layers, max(config.intermediate_size, config.hidden_size), 0.99999, True)


@pytest.mark.parametrize("name", list(HF_CASES))
def test_hf_parity_f16_weights(hf_models, real_images, name):
    model, case, config, paths = hf_models[name]
    enc = pyvitcpp.Encoder(paths["f16"], threads=2)
    px = image_batch(real_images, 3, config.image_size, seed=7)
    ref = _hf_outputs(model, px, case["kind"])
    ours = enc.forward(px, [k for k in ref if k in enc.output_names])
    _check(ours, ref, config.num_hidden_layers, config.intermediate_size, 0.9999, False)


def test_base_sized_layer(real_images, tmp_path):
    """One ViT-B/16-sized block (D=768, 12 heads, MLP 3072) at 224x224: real GEMM sizes."""
    config = transformers.ViTConfig(hidden_size=768, num_hidden_layers=1, num_attention_heads=12,
                                    intermediate_size=3072, image_size=224, patch_size=16, num_labels=10)
    model = transformers.ViTForImageClassification(config).eval()
    randomize_(model, seed=11)
    model.save_pretrained(tmp_path)
    out = tmp_path / "vitb1.gguf"
    convert(str(tmp_path), str(out), outtype="f32", verbose=False)
    enc = pyvitcpp.Encoder(out, threads=2)
    px = image_batch(real_images, 2, 224, seed=3)
    ref = _hf_outputs(model, px, "vit_cls")
    ours = enc.forward(px, list(ref))
    _check(ours, ref, 1, 3072, 0.99999, True)


def test_weights_packed_by_several_threads(real_images, tmp_path):
    """Weights of 1 MiB and more are packed at open by the model's threads, split by output
    panels: N = 4100 (a partial last panel) as F32, F16 and Q8_0, opened with 3 threads, must
    match PyTorch as closely as the same file opened with one thread does."""
    config = transformers.ViTConfig(hidden_size=256, num_hidden_layers=1, num_attention_heads=4,
                                    intermediate_size=4100, image_size=32, patch_size=16, num_labels=7)
    model = transformers.ViTForImageClassification(config).eval()
    randomize_(model, seed=12)
    model.save_pretrained(tmp_path)
    px = image_batch(real_images, 2, 32, seed=4)
    want = _hf_outputs(model, px, "vit_cls")["last_hidden_state"]
    for outtype, min_cos in (("f32", 0.99999), ("f16", 0.9999), ("q8_0", 0.999)):
        out = tmp_path / f"m-{outtype}.gguf"
        convert(str(tmp_path), str(out), outtype=outtype, verbose=False)
        one = pyvitcpp.Encoder(out, threads=1).forward(px, "last_hidden_state")
        three = pyvitcpp.Encoder(out, threads=3).forward(px, "last_hidden_state")
        assert cosine(three, want) >= min_cos, outtype
        np.testing.assert_allclose(three, one, rtol=0, atol=1e-5 * float(np.abs(one).max()), err_msg=outtype)


# ---------------------------------------------------------------------------------------------
# timm

timm = None


@pytest.fixture(scope="module")
def timm_mod():
    global timm
    import timm as timm_module

    timm = timm_module
    return timm


def _timm_ref(model, px):
    with torch.no_grad():
        x = torch.from_numpy(px)
        feats = model.forward_features(x)
        pooled = model.forward_head(feats, pre_logits=True)
        logits = model.forward_head(feats)
        out = {"last_hidden_state": feats, "pooled": pooled, "embedding": pooled, "logits": logits}
        if getattr(model, "cls_token", None) is not None:
            out["cls"] = feats[:, 0]
        return out


TIMM_CASES = {
    "deit_tiny_patch16_224": dict(num_classes=10),
    "deit_tiny_distilled_patch16_224": dict(num_classes=10),
    "vit_tiny_patch16_224": dict(num_classes=0, global_pool="avg", fc_norm=True),
}


@pytest.mark.parametrize("name", list(TIMM_CASES))
def test_timm_parity(timm_mod, real_images, tmp_path, name):
    kwargs = TIMM_CASES[name]
    model = timm_mod.create_model(name, pretrained=False, **kwargs).eval()
    randomize_(model, seed=5)
    sd_path = tmp_path / "model.pth"
    torch.save(model.state_dict(), sd_path)
    out = tmp_path / "model.gguf"
    extra = {k: v for k, v in kwargs.items() if k != "num_classes"}
    convert(str(sd_path), str(out), outtype="f32", model_name=name, verbose=False, model_kwargs=extra or None)
    enc = pyvitcpp.Encoder(out, threads=2)
    px = image_batch(real_images, 2, 224, seed=1)
    ref = _timm_ref(model, px)
    if kwargs.get("num_classes") == 0:
        ref.pop("logits")
    ours = enc.forward(px, [k for k in ref if k in enc.output_names])
    assert set(ours) == set(ref)
    depth = len(model.blocks)
    _check(ours, ref, depth, model.blocks[0].mlp.fc1.out_features, 0.99999, True)


# ---------------------------------------------------------------------------------------------
# Engine behaviour on one small model

@pytest.fixture(scope="module")
def small_gguf(hf_models):
    return hf_models["vit_cls_h48_p14"]


def test_threads_agree(small_gguf, real_images):
    model, case, config, paths = small_gguf
    px = image_batch(real_images, 5, config.image_size, seed=2)
    a = pyvitcpp.Encoder(paths["f32"], threads=1).forward(px, "last_hidden_state")
    b = pyvitcpp.Encoder(paths["f32"], threads=2).forward(px, "last_hidden_state")
    c = pyvitcpp.Encoder(paths["f32"], threads=3).forward(px, "last_hidden_state")
    np.testing.assert_allclose(a, b, rtol=0, atol=fp32_bound(a, 2, 100))
    np.testing.assert_allclose(a, c, rtol=0, atol=fp32_bound(a, 2, 100))


def test_batch_rows_independent(small_gguf, real_images):
    """Image i of a batch gives what it gives alone."""
    model, case, config, paths = small_gguf
    enc = pyvitcpp.Encoder(paths["f32"], threads=2)
    px = image_batch(real_images, 4, config.image_size, seed=4)
    full = enc.forward(px, "logits")
    for i in range(4):
        one = enc.forward(px[i:i + 1], "logits")
        np.testing.assert_allclose(one[0], full[i], rtol=0, atol=fp32_bound(full, 2, 100))


def test_concurrent_python_threads(small_gguf, real_images):
    import threading

    model, case, config, paths = small_gguf
    enc = pyvitcpp.Encoder(paths["f32"], threads=2)
    inputs = [image_batch(real_images, b, config.image_size, seed=10 + b) for b in (1, 2, 3, 4)]
    expected = [enc.forward(px, "pooled") for px in inputs]
    results = {}
    errors = []

    def work(i):
        try:
            for _ in range(5):
                results[i] = enc.forward(inputs[i], "pooled")
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i in range(4):
        np.testing.assert_array_equal(results[i], expected[i])


def test_encode_classify_api(small_gguf, real_images):
    model, case, config, paths = small_gguf
    enc = pyvitcpp.Encoder(paths["f32"], threads=2)
    px = image_batch(real_images, 3, config.image_size, seed=9)
    emb = enc.encode(px, batch_size=2)
    assert emb.shape == (3, config.hidden_size) and emb.dtype == np.float32
    ref = _hf_outputs(model, px, "vit_cls")
    np.testing.assert_allclose(emb, ref["embedding"].numpy(), atol=fp32_bound(emb, 2, 100))
    embn = enc.encode(px, normalize=True)
    np.testing.assert_allclose(np.linalg.norm(embn, axis=1), 1.0, atol=1e-6)
    top = enc.classify(px, top_k=3)
    assert len(top) == 3 and len(top[0]) == 3
    ref_top = torch.softmax(ref["logits"], -1).numpy()
    for i in range(3):
        order = np.argsort(-ref_top[i])[:3]
        assert [t["index"] for t in top[i]] == list(order)
        np.testing.assert_allclose([t["score"] for t in top[i]], ref_top[i][order], atol=1e-5)
        assert top[i][0]["label"] == config.id2label[int(order[0])]
