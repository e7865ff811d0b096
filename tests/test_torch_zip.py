"""The torch-free checkpoint reader: same arrays as torch.load, and no code execution."""
from __future__ import annotations

import io
import os
import pickle
import zipfile

import numpy as np
import pytest
import torch

from pyvitcpp.convert import torch_zip


def sample_state_dict():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(6, 5, generator=g)
    return {
        "a.weight": torch.randn(4, 3, 3, 3, generator=g),
        "a.bias": torch.randn(4, generator=g),
        "half": torch.randn(7, generator=g).half(),
        "bf16": torch.randn(3, 2, generator=g).bfloat16(),
        "int": torch.arange(5),
        "transposed": base.t(),          # a non-contiguous view
        "slice": base[2:4],              # storage offset, shares base's storage
        "base": base,
        "scalar": torch.tensor(3.5),
        "bn.num_batches_tracked": torch.tensor(7),
    }


@pytest.mark.parametrize("legacy", [False, True])
def test_same_arrays_as_torch_load(tmp_path, legacy):
    sd = sample_state_dict()
    p = tmp_path / "sd.pth"
    torch.save(sd, p, _use_new_zipfile_serialization=not legacy)
    got = torch_zip.load_state_dict(p)
    want = torch.load(p, map_location="cpu", weights_only=True)
    assert list(got) == list(want)
    assert torch_zip.keys_and_shapes(p) == tuple((k, tuple(v.shape)) for k, v in want.items())
    for k, v in want.items():
        exp = v.float().numpy() if v.dtype == torch.bfloat16 else v.numpy()
        assert got[k].shape == exp.shape, k
        np.testing.assert_array_equal(got[k], exp, err_msg=k)


def test_wrapped_state_dict_and_parameters(tmp_path):
    m = torch.nn.Linear(3, 2)
    p = tmp_path / "ckpt.pth"
    torch.save({"epoch": 3, "state_dict": m.state_dict(), "param": m.weight, "acc": np.float64(0.75),
                "step": np.int32(-7)}, p)
    got = torch_zip.load_state_dict(p)
    np.testing.assert_array_equal(got["weight"], m.weight.detach().numpy())
    obj = torch_zip.load(p)
    assert obj["epoch"] == 3 and obj["acc"] == 0.75 and obj["step"] == -7


def test_refuses_object_numpy_scalar(tmp_path):
    p = tmp_path / "obj.pth"
    payload = pickle.dumps(np.array([{"a": 1}], dtype=object)[0:1], protocol=2)
    _zip_with_pickle(p, payload)
    with pytest.raises(torch_zip.UnsafeCheckpointError):
        torch_zip.load(p)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def _zip_with_pickle(path, payload: bytes):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", payload)
        z.writestr("archive/byteorder", "little")


def test_refuses_code_execution(tmp_path, monkeypatch):
    payload = pickle.dumps({"w": _Evil()}, protocol=2)  # references os.system (posix.system)
    called = []
    monkeypatch.setattr(os, "system", lambda cmd: called.append(cmd) or 0)
    p = tmp_path / "evil.pth"
    _zip_with_pickle(p, payload)
    with pytest.raises(torch_zip.UnsafeCheckpointError, match="os.system|posix.system"):
        torch_zip.load(p)
    # legacy layout too: magic, protocol, sys info, then the object pickle
    q = tmp_path / "evil_legacy.pth"
    with open(q, "wb") as f:
        for obj in (torch_zip._LEGACY_MAGIC, 1001, {}):
            pickle.dump(obj, f, protocol=2)
        f.write(payload)
    with pytest.raises(torch_zip.UnsafeCheckpointError):
        torch_zip.load(q)
    assert called == []


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        torch_zip.load(tmp_path / "nope.pth")
    p = tmp_path / "junk.pth"
    p.write_bytes(b"not a checkpoint at all")
    with pytest.raises((pickle.UnpicklingError, EOFError, ValueError)):
        torch_zip.load(p)
    # truncated storage data
    sd = {"w": torch.randn(100)}
    q = tmp_path / "trunc.pth"
    torch.save(sd, q, _use_new_zipfile_serialization=False)
    data = q.read_bytes()
    q.write_bytes(data[:-40])
    with pytest.raises(pickle.UnpicklingError, match="truncated"):
        torch_zip.load(q)


def test_converter_error_names_the_file(tmp_path):
    from pyvitcpp.convert import ConversionError
    from pyvitcpp.convert.cnn import read_state_dict

    p = tmp_path / "evil.pth"
    _zip_with_pickle(p, pickle.dumps(_Evil(), protocol=2))
    with pytest.raises(ConversionError, match="evil.pth"):
        read_state_dict(str(p))
