"""The converter on its own: what it writes (read back with gguf-py, compared with the source
model's own tensors and config) and what it refuses (each refusal names the cause)."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import gguf
import torch
import transformers

import pyvitcpp
from pyvitcpp.convert import ConversionError, convert

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _fields(path):
    r = gguf.GGUFReader(path)
    meta = {k: f.contents() for k, f in r.fields.items() if not k.startswith("GGUF.")}
    tensors = {t.name: t for t in r.tensors}
    return meta, tensors


def _tensor_np(t):
    """A tensor as numpy in PyTorch dim order (gguf-py gives ggml's reversed ne)."""
    return np.asarray(t.data).reshape(tuple(int(x) for x in reversed(t.shape)))


@pytest.fixture(scope="module")
def hf_vit(tmp_path_factory):
    """A tiny HF ViTForImageClassification with labels and a non-default processor."""
    torch.manual_seed(0)
    cfg = transformers.ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=40, image_size=32, patch_size=16, num_labels=3,
                                 id2label={0: "tabby", 1: "coffee mug", 2: "astronaut"},
                                 label2id={"tabby": 0, "coffee mug": 1, "astronaut": 2},
                                 layer_norm_eps=1e-6, hidden_act="gelu")
    model = transformers.ViTForImageClassification(cfg).eval()
    folder = tmp_path_factory.mktemp("hf_vit")
    model.save_pretrained(folder)
    transformers.ViTImageProcessor(image_mean=[0.4, 0.5, 0.6], image_std=[0.2, 0.3, 0.25],
                                   size={"height": 32, "width": 32}).save_pretrained(folder)
    return model, folder


def _state(model):
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("outtype", ["f32", "f16"])
def test_hf_layout_metadata_and_values(hf_vit, tmp_path, outtype):
    model, folder = hf_vit
    out = convert(str(folder), str(tmp_path / "m.gguf"), outtype=outtype, verbose=False)
    meta, tensors = _fields(out)
    cfg = model.config
    assert meta["general.architecture"] == "vit"
    assert meta["vit.block_count"] == cfg.num_hidden_layers
    assert meta["vit.embedding_length"] == cfg.hidden_size
    assert meta["vit.feed_forward_length"] == cfg.intermediate_size
    assert meta["vit.attention.head_count"] == cfg.num_attention_heads
    assert meta["vit.patch_size"] == cfg.patch_size
    assert meta["vit.image_size"] == cfg.image_size
    assert meta["vit.attention.layer_norm_epsilon"] == pytest.approx(cfg.layer_norm_eps, rel=1e-6)
    # preprocessing comes from the saved processor, labels from id2label in logit order
    assert meta["preprocess.resize_mode"] == "squash"
    assert meta["preprocess.interpolation"] == "bilinear"
    np.testing.assert_allclose(meta["preprocess.mean"], [0.4, 0.5, 0.6], rtol=1e-6)
    np.testing.assert_allclose(meta["preprocess.std"], [0.2, 0.3, 0.25], rtol=1e-6)
    assert meta["classifier.labels"] == [cfg.id2label[i] for i in range(cfg.num_labels)]

    sd = _state(model)
    wtype = gguf.GGMLQuantizationType.F32 if outtype == "f32" else gguf.GGMLQuantizationType.F16
    wdtype = np.float32 if outtype == "f32" else np.float16
    for name, t in tensors.items():
        arr = _tensor_np(t)
        # 1-D tensors and the token/position tables stay F32; everything else takes the outtype
        if arr.ndim == 1 or name in ("v.class_embd", "v.position_embd.weight"):
            assert t.tensor_type == gguf.GGMLQuantizationType.F32, name
        else:
            assert t.tensor_type == wtype, name

    def check(gguf_name, ref):
        got = _tensor_np(tensors[gguf_name]).astype(np.float32)
        want = np.asarray(ref, np.float32)
        if tensors[gguf_name].tensor_type == gguf.GGMLQuantizationType.F16:
            want = want.astype(np.float16).astype(np.float32)
        np.testing.assert_array_equal(got.reshape(want.shape), want, err_msg=gguf_name)

    def pick(i, *names):
        """Layer i's tensor under either transformers naming (4.x encoder.layer.N.*, 5.x layers.N.*)."""
        for pre in (f"vit.encoder.layer.{i}.", f"vit.layers.{i}."):
            for n in names:
                if pre + n in sd:
                    return sd[pre + n]
        raise KeyError(f"layer {i}: none of {names} in the reference state dict")

    for i in range(cfg.num_hidden_layers):
        # q, k, v fused in this order along the output dimension (the engine splits it so)
        for kind in ("weight", "bias"):
            qkv = np.concatenate([pick(i, f"attention.attention.{n}.{kind}", f"attention.{p}_proj.{kind}")
                                  for n, p in (("query", "q"), ("key", "k"), ("value", "v"))])
            check(f"v.blk.{i}.attn_qkv.{kind}", qkv)
        check(f"v.blk.{i}.attn_out.weight", pick(i, "attention.output.dense.weight", "attention.o_proj.weight"))
        check(f"v.blk.{i}.ln1.weight", pick(i, "layernorm_before.weight"))
        check(f"v.blk.{i}.ln2.bias", pick(i, "layernorm_after.bias"))
        check(f"v.blk.{i}.ffn_up.weight", pick(i, "intermediate.dense.weight", "mlp.fc1.weight"))
        check(f"v.blk.{i}.ffn_down.weight", pick(i, "output.dense.weight", "mlp.fc2.weight"))
    check("v.patch_embd.weight", sd["vit.embeddings.patch_embeddings.projection.weight"])
    check("v.class_embd", sd["vit.embeddings.cls_token"].reshape(-1))
    check("v.position_embd.weight", sd["vit.embeddings.position_embeddings"][0])
    check("v.post_ln.weight", sd["vit.layernorm.weight"])
    check("v.head.weight", sd["classifier.weight"])
    check("v.head.bias", sd["classifier.bias"])


def test_script_and_cli_write_the_same_file(hf_vit, tmp_path):
    """scripts/convert_to_gguf.py, `pyvitcpp convert` and convert() are one code path."""
    _, folder = hf_vit
    api = convert(str(folder), str(tmp_path / "api.gguf"), outtype="f16", verbose=False)
    script = tmp_path / "script.gguf"
    r = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "convert_to_gguf.py"), str(folder),
                        "-o", str(script), "--outtype", "f16", "-q"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    cli = tmp_path / "cli.gguf"
    r = subprocess.run([sys.executable, "-m", "pyvitcpp", "convert", str(folder), "-o", str(cli),
                        "--outtype", "f16", "-q"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    ref = open(api, "rb").read()
    assert open(script, "rb").read() == ref
    assert open(cli, "rb").read() == ref
    # and the engine opens it
    enc = pyvitcpp.Encoder(str(cli), threads=1)
    assert enc.labels == ["tabby", "coffee mug", "astronaut"]


def test_labels_file_overrides_and_is_checked(hf_vit, tmp_path):
    _, folder = hf_vit
    lab = tmp_path / "labels.txt"
    lab.write_text("cat\ncup\nperson\n")
    out = convert(str(folder), str(tmp_path / "m.gguf"), outtype="f32", labels=str(lab), verbose=False)
    meta, _ = _fields(out)
    assert meta["classifier.labels"] == ["cat", "cup", "person"]
    lab.write_text("cat\ncup\n")
    with pytest.raises(ConversionError, match="label"):
        convert(str(folder), str(tmp_path / "m2.gguf"), outtype="f32", labels=str(lab), verbose=False)
    assert not (tmp_path / "m2.gguf").exists()


# --------------------------------------------------------------------------------- refusals

def test_missing_source(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        convert(str(tmp_path / "nope"), str(tmp_path / "o.gguf"), verbose=False)


def test_unknown_outtype(hf_vit, tmp_path):
    _, folder = hf_vit
    with pytest.raises(ConversionError, match="outtype"):
        convert(str(folder), str(tmp_path / "o.gguf"), outtype="q3_k", verbose=False)


def test_folder_without_config(tmp_path):
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "readme.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="config.json"):
        convert(str(tmp_path / "weights"), str(tmp_path / "o.gguf"), verbose=False)


def test_hf_unsupported_model_type(tmp_path):
    cfg = transformers.BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=40, vocab_size=50)
    transformers.BertModel(cfg).save_pretrained(tmp_path / "bert")
    with pytest.raises(ConversionError, match="bert"):
        convert(str(tmp_path / "bert"), str(tmp_path / "o.gguf"), verbose=False)


def test_hf_folder_without_weights(hf_vit, tmp_path):
    _, folder = hf_vit
    dst = tmp_path / "noweights"
    dst.mkdir()
    for f in os.listdir(folder):
        if f.endswith(".json"):
            (dst / f).write_bytes((folder / f).read_bytes())
    with pytest.raises((ConversionError, FileNotFoundError), match="safetensors|pytorch_model|weights"):
        convert(str(dst), str(tmp_path / "o.gguf"), verbose=False)


def test_hf_missing_tensor_is_named(hf_vit, tmp_path):
    from safetensors.numpy import load_file, save_file
    _, folder = hf_vit
    dst = tmp_path / "broken"
    dst.mkdir()
    for f in os.listdir(folder):
        if f.endswith(".json"):
            (dst / f).write_bytes((folder / f).read_bytes())
    sd = load_file(str(folder / "model.safetensors"))
    victim = next(k for k in sd if (".1." in k) and ("key.weight" in k or "k_proj.weight" in k))
    del sd[victim]
    save_file(sd, str(dst / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ConversionError, match=r"layer 1|key"):
        convert(str(dst), str(tmp_path / "o.gguf"), verbose=False)
    assert not (tmp_path / "o.gguf").exists()


def test_hf_unsupported_activation(tmp_path):
    cfg = transformers.ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                 intermediate_size=40, image_size=32, patch_size=16, hidden_act="relu")
    transformers.ViTModel(cfg).save_pretrained(tmp_path / "relu")
    with pytest.raises(ConversionError, match="relu"):
        convert(str(tmp_path / "relu"), str(tmp_path / "o.gguf"), verbose=False)


def test_corrupt_safetensors(hf_vit, tmp_path):
    _, folder = hf_vit
    dst = tmp_path / "corrupt"
    dst.mkdir()
    for f in os.listdir(folder):
        data = (folder / f).read_bytes()
        (dst / f).write_bytes(data[: len(data) // 3] if f.endswith(".safetensors") else data)
    with pytest.raises(ConversionError, match="model.safetensors"):
        convert(str(dst), str(tmp_path / "o.gguf"), verbose=False)


# timm: a bare state dict must say which model it is, and must be that model

@pytest.fixture(scope="module")
def timm_deit_sd(tmp_path_factory):
    import timm
    from safetensors.torch import save_file
    m = timm.create_model("deit_tiny_patch16_224", pretrained=False, img_size=32, num_classes=4)
    path = tmp_path_factory.mktemp("timm") / "deit.safetensors"
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(path))
    return path


def test_timm_needs_model_name(timm_deit_sd, tmp_path):
    with pytest.raises(ConversionError, match="model.name|--model-name"):
        convert(str(timm_deit_sd), str(tmp_path / "o.gguf"), verbose=False)


def test_timm_unknown_model_name(timm_deit_sd, tmp_path):
    with pytest.raises(ConversionError, match="no_such_vit"):
        convert(str(timm_deit_sd), str(tmp_path / "o.gguf"), model_name="no_such_vit_tiny", verbose=False)


def test_timm_state_dict_of_another_model(timm_deit_sd, tmp_path):
    with pytest.raises(ConversionError, match="vit_small_patch16_224"):
        convert(str(timm_deit_sd), str(tmp_path / "o.gguf"), model_name="vit_small_patch16_224",
                model_kwargs={"img_size": 32, "num_classes": 4}, verbose=False)


def test_timm_not_a_vit(tmp_path):
    import timm
    from safetensors.torch import save_file
    m = timm.create_model("convnext_atto", pretrained=False, num_classes=3)
    path = tmp_path / "convnext.safetensors"
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(path))
    with pytest.raises(ConversionError, match="convnext_atto"):
        convert(str(path), str(tmp_path / "o.gguf"), model_name="convnext_atto", verbose=False)


def test_timm_qk_norm_refused(tmp_path):
    import timm
    from safetensors.torch import save_file
    kw = {"img_size": 32, "num_classes": 2, "qk_norm": True}
    m = timm.create_model("vit_tiny_patch16_224", pretrained=False, **kw)
    path = tmp_path / "qknorm.safetensors"
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(path))
    with pytest.raises(ConversionError, match="norm"):
        convert(str(path), str(tmp_path / "o.gguf"), model_name="vit_tiny_patch16_224",
                model_kwargs=kw, verbose=False)


def test_malicious_pickle_is_not_executed(tmp_path):
    """A .pth whose pickle calls a function must be refused without running it."""
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pth"
    torch.save({"weight": Evil()}, str(path))
    with pytest.raises(ConversionError):
        convert(str(path), str(tmp_path / "o.gguf"), model_name="deit_tiny_patch16_224", verbose=False)
    assert not marker.exists()


def test_cli_error_exit_code_and_message(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pyvitcpp", "convert", str(tmp_path / "missing"),
                        "-o", str(tmp_path / "o.gguf")], capture_output=True, text=True)
    assert r.returncode != 0
    assert "not found" in r.stderr and "Traceback" not in r.stderr
