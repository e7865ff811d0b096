"""atheris target for the Python entry points (issue 19): an Encoder (a tiny ViT from the seed
corpus, or the GGUF given by PYVITCPP_FUZZ_MODEL) fed odd arrays and odd options through
forward / classify / encode / preprocess. Allowed outcomes: a result, or ValueError / TypeError
(GGUFError and ModelError are ValueErrors) naming the problem. Any other exception, a crash, a
hang (-timeout) or a blow-up (-rss_limit_mb) is a finding. Python coverage only (the engine is
covered by fuzz/gguf_model_fuzz.cpp).

    python fuzz/py_entry_fuzz.py -max_total_time=120 -rss_limit_mb=4096 -timeout=20
"""
import os
import sys
import warnings

import atheris
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
with atheris.instrument_imports():
    import pyvitcpp

MODEL = os.environ.get("PYVITCPP_FUZZ_MODEL", os.path.join(ROOT, "build", "fuzz", "seeds", "vit-f32.gguf"))
ENC = pyvitcpp.Encoder(MODEL, threads=1)
DTYPES = [np.float32, np.float64, np.float16, np.uint8, np.int8, np.int32, np.int64, np.bool_, np.complex64]
OUTPUTS = list(ENC.output_names) + ["nope", "", "hidden_states.99"]
MAX_ELEMS = 1 << 21  # 8 MB of float32 at most per input


def odd_array(fdp):
    ndim = fdp.ConsumeIntInRange(0, 5)
    shape = []
    n = 1
    for _ in range(ndim):
        d = fdp.PickValueInList([0, 1, 2, 3, 4, 16, 17, 64, 100000]) if fdp.ConsumeBool() else fdp.ConsumeIntInRange(0, 300)
        if n * max(d, 1) > MAX_ELEMS:
            d = 1
        shape.append(d)
        n *= max(d, 1)
    dtype = fdp.PickValueInList(DTYPES)
    raw = fdp.ConsumeBytes(min(n * np.dtype(dtype).itemsize, 4096))
    flat = np.zeros(int(np.prod(shape)) if shape else 1, dtype=dtype)
    if raw and flat.size:
        src = np.frombuffer(raw[: len(raw) // np.dtype(dtype).itemsize * np.dtype(dtype).itemsize], dtype=dtype)
        flat[: min(src.size, flat.size)] = src[: flat.size]
    a = flat.reshape(shape) if shape else flat.reshape(())
    if a.ndim >= 2 and fdp.ConsumeBool():
        a = np.swapaxes(a, -1, -2)  # not C-contiguous
    if a.ndim >= 1 and a.shape[-1] > 1 and fdp.ConsumeBool():
        a = a[..., ::2]
    return a


def TestOneInput(data):
    fdp = atheris.FuzzedDataProvider(data)
    what = fdp.ConsumeIntInRange(0, 4)
    arr = odd_array(fdp)
    if fdp.ConsumeBool():
        arr = [arr, odd_array(fdp)]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if what == 0:
                out = fdp.PickValueInList(OUTPUTS)
                ENC.forward(arr, out if fdp.ConsumeBool() else [out, ENC.output_names[0]])
            elif what == 1:
                ENC.classify(arr, top_k=fdp.PickValueInList([1, 3, 0, -1, 10**9, True, 2.5, None]))
            elif what == 2:
                ENC.encode(arr, batch_size=fdp.PickValueInList([1, 2, 0, -3, 10**6, True]),
                           normalize=fdp.ConsumeBool())
            elif what == 3:
                ENC.preprocess(arr)
            else:
                pyvitcpp.Encoder(MODEL, threads=fdp.PickValueInList([1, 2, 0, -1, 1025, True, 1.5, "2", None]),
                                 isa=fdp.PickValueInList([None, "ref", "avx2", "avx512", "", "bogus", 3]))
    except (ValueError, TypeError):
        pass


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
