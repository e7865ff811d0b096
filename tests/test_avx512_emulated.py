"""The avx512 kernel level executed under emulation, on CPUs without AVX-512.

Where the CPU lacks AVX-512 the avx512 tests of test_kernels_{conv,ops,gemm,quant}.py skip, so
those kernels would never run before reaching a machine that has it. Here the avx512 conv, ops
(activations, layernorm, attention), GEMM and quantized-GEMM TUs are compiled against
SIMDe's portable AVX-512 intrinsics (header-only, `apt install libsimde-dev`) through the shim in
tests/avx512_emu/, linked into a small shared library with a C API that mirrors the
pyvitcpp._testing hooks (tests/avx512_emu/emu_capi.cpp), and loaded with ctypes. Then the
existing avx512 test cases themselves run against it: each of those test functions is called
with isa="avx512" while its module's `T` / `testing` is swapped for a wrapper that sends avx512
calls to the emulated library and everything else (the ref level, the spec) to the real
module. Same cases, same error models, same exactness checks as on real hardware.

The AVX-512 semantics are SIMDe's (plus the shim's few additions), built on the host's AVX2/FMA
so that a fused multiply-add rounds once, as vfmadd does: a test of the kernels' logic (tails,
masks, tiling, threading splits, padding, special values), not of the real encoding or speed.
Skips where the CPU runs avx512 natively (the real tests cover it), or lacks AVX2+FMA, a C++
compiler or SIMDe.
"""
from __future__ import annotations

import ctypes
import inspect
import itertools
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from pyvitcpp import _core
from pyvitcpp import _testing as T

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "csrc")
EMU = os.path.join(ROOT, "tests", "avx512_emu")
# avx512 TUs: compiled with SIMDe standing in for <immintrin.h>, on top of native AVX2/FMA.
KERNELS = ["kernels/avx512/conv_avx512.cpp", "kernels/avx512/ops_avx512.cpp", "kernels/avx512/gemm_avx512.cpp",
           "kernels/avx512/quant_avx512.cpp"]
# Plain TUs: the ref registrations (the GEMM fallback for an unpacked W) and the C API.
# PYVITCPP_EMU_ASAN=1 builds with AddressSanitizer, which then catches a kernel reading or writing
# past a buffer (an unmasked tail load or store): run pytest with
# LD_PRELOAD=$(g++ -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0.
SANITIZE = ["-fsanitize=address", "-fno-omit-frame-pointer"] if os.environ.get("PYVITCPP_EMU_ASAN") == "1" else []
PLAIN = ["kernels/ref/gemm_ref.cpp", "kernels/conv_gather.cpp", "kernels/ref/ops_ref.cpp", "kernels/ref/conv_ref.cpp", "kernels/ref/quant_ref.cpp",
         "quant/qpack.cpp", "quant/quantize.cpp", "core/dtype.cpp"]


def _toolchain_or_skip():
    if _core.isa_supported("avx512")[0]:
        pytest.skip("this CPU runs the avx512 level natively (the test_kernels_* avx512 cases cover it)")
    if not _core.isa_supported("avx2")[0]:
        pytest.skip("the emulation is built on AVX2+FMA (a fused multiply-add must round once)")
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None or not os.path.exists("/usr/include/simde/x86/avx512.h"):
        pytest.skip("needs a C++ compiler and SIMDe (libsimde-dev) to emulate AVX-512")
    return cxx


def build_library(cxx, out_dir, replace=None, reuse=None):
    """Compile and link the emulated avx512 library into out_dir; replace maps a KERNELS entry to
    another source file (a mutant), whose object is then the only one compiled when reuse names
    the out_dir of an earlier build. -O1: the build dominates the run time."""
    replace = replace or {}
    base = [cxx, "-O1", "-std=c++17", "-fPIC", "-I" + SRC, "-c"] + SANITIZE
    jobs = []
    for rel in KERNELS:
        src = replace.get(rel, os.path.join(SRC, rel))
        obj = os.path.join(out_dir, os.path.basename(rel) + ".o")
        # -I EMU first: its immintrin.h shadows the compiler's (and include_next's it).
        flags = ["-I" + EMU, "-mavx2", "-mfma", "-mf16c", "-Wno-psabi"]
        jobs.append((obj, base[:1] + flags + base[1:] + [src, "-o", obj]))
    for src in [os.path.join(SRC, p) for p in PLAIN] + [os.path.join(EMU, "emu_capi.cpp")]:
        obj = os.path.join(out_dir, os.path.basename(src) + ".o")
        jobs.append((obj, base + [src, "-o", obj]))
    if reuse:
        kept = {os.path.join(out_dir, os.path.basename(r) + ".o") for r in KERNELS if r not in replace}
        kept |= {o for o, _ in jobs[len(KERNELS):]}
        jobs = [(o if o not in kept else os.path.join(reuse, os.path.basename(o)), None if o in kept else c)
                for o, c in jobs]
    procs = [(cmd, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
             for _, cmd in jobs if cmd is not None]
    for cmd, p in procs:
        out, _ = p.communicate()
        if p.returncode != 0:
            raise RuntimeError(f"emulated build failed: {' '.join(cmd)}\n{out[-4000:]}")
    lib = os.path.join(out_dir, "libavx512emu.so")
    subprocess.run([cxx, "-shared", "-Wl,-Bsymbolic", *SANITIZE, "-o", lib] + [o for o, _ in jobs], check=True,
                   capture_output=True, text=True)
    return load(lib)


def load(path):
    lib = ctypes.CDLL(path)
    P, I64, I, F = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, ctypes.c_float
    sig = {
        "emu_axis": [I64, I64, I64, I64, I64, I, P],
        "emu_dwconv2d": [P, P, P, I64, I64, I64, I64, I64, I64, I64, I64, I, I, P, I],
        "emu_pool2d": [P, I64, I64, I64, I64, I64, I64, I64, I, I, I, P, I],
        "emu_layernorm": [P, I64, P, I64, I64, I64, P, P, F, I],
        "emu_activation": [P, P, I64, I, I],
        "emu_act_inplace": [P, I64, I],
        "emu_attention": [I64, I64, I64, I64, I64, P, P, P, P, P, F, I],
        "emu_attention_terms": [I64, I64, I64, I64, I64, P, P, P, P, P, F, I, P, P, P, P, P],
        "emu_gemm": [I64, I64, I64, P, I64, P, I, P, I, P, I64, P, I64, I, I, I, I],
        "emu_gemm_tile": [P],
        "emu_conv2d": [P, I64, I64, I64, I64, P, I64, I64, I64, I64, I64, I64, I, P, I, P, P, I, I, I, I, I, I],
        "emu_qgemm": [I64, I64, I64, P, P, I, P, I, P, P, I, I],
    }
    for name, args in sig.items():
        getattr(lib, name).argtypes = args
        getattr(lib, name).restype = None
    lib.emu_qgemm_act_qmax.argtypes = [I]
    lib.emu_qgemm_act_qmax.restype = I
    return lib


def _ptr(a):
    return None if a is None else a.ctypes.data


def _f32(a):
    return np.ascontiguousarray(a, dtype=np.float32)


def _elem_strides(a):
    return [s // 4 for s in a.strides]


class EmulatedTesting:
    """pyvitcpp._testing with the avx512 level served by the emulated library. The hooks'
    argument validation is not repeated: only the avx512 calls of kernel tests come here."""

    def __init__(self, lib):
        self.lib = lib

    def __getattr__(self, name):
        return getattr(T, name)

    # ---- levels
    def isa_supported(self, isa):
        return (True, "") if isa == "avx512" else T.isa_supported(isa)

    def ops_isa_supported(self, isa):
        return (True, "") if isa == "avx512" else T.ops_isa_supported(isa)

    def gemm_tile(self, isa):
        if isa != "avx512":
            return T.gemm_tile(isa)
        t = (ctypes.c_int * 2)()
        self.lib.emu_gemm_tile(ctypes.cast(t, ctypes.c_void_p))
        return (t[0], t[1])

    # ---- conv
    def _axis(self, n, k, s, d, pad, same):
        out = np.zeros(2, np.int64)
        self.lib.emu_axis(n, k, s, d, pad, int(same), out.ctypes.data)
        return int(out[0])

    def dwconv2d(self, isa, x, wt, bias, k, stride=1, dilation=1, pad=0, same=False, act=0, nth=1):
        if isa != "avx512":
            return T.dwconv2d(isa, x, wt, bias, k, stride=stride, dilation=dilation, pad=pad, same=same, act=act,
                              nth=nth)
        x, wt = _f32(x), _f32(wt)
        bias = None if bias is None else _f32(bias)
        B, H, W, C = x.shape
        oh, ow = self._axis(H, k, stride, dilation, pad, same), self._axis(W, k, stride, dilation, pad, same)
        y = np.full((B, oh, ow, C), np.nan, np.float32)
        self.lib.emu_dwconv2d(_ptr(x), _ptr(wt), _ptr(bias), B, H, W, C, k, stride, dilation, pad, int(same), act,
                              _ptr(y), nth)
        return y

    def conv2d(self, isa, x, w, bias, stride=1, dilation=1, pad=0, same=False, groups=1, act=0, residual=None,
               nchw=False, gather=True, nth=1, direct=True, f16=False, row=True, winograd=False, relu_out=False):
        """avx512: always the GEMM's gather, run directly where the level allows it and direct is set
        (NCHW pixels are transposed here first; the Im2col-buffer variant is that GEMM over a plain
        X, which the gemm cases cover); f16 stores the weight as F16, row=False keeps the direct
        conv off its row tiles, winograd=True gives a 3x3 conv Winograd weights, as the hook's
        arguments do."""
        if isa != "avx512":
            return T.conv2d(isa, x, w, bias, stride=stride, dilation=dilation, pad=pad, same=same, groups=groups,
                            act=act, residual=residual, nchw=nchw, gather=gather, nth=nth, direct=direct, f16=f16,
                            row=row, winograd=winograd, relu_out=relu_out)
        x = _f32(x.transpose(0, 2, 3, 1) if nchw else x)
        B, H, W, C = x.shape
        OC, Cg, k, _ = w.shape
        wk = _f32(np.asarray(w, np.float32).transpose(0, 2, 3, 1).reshape(OC, k * k * Cg))
        bias = None if bias is None else _f32(bias)
        residual = None if residual is None else _f32(residual)
        oh, ow = self._axis(H, k, stride, dilation, pad, same), self._axis(W, k, stride, dilation, pad, same)
        y = np.full((B, oh, ow, OC), np.nan, np.float32)
        self.lib.emu_conv2d(_ptr(x), B, H, W, C, _ptr(wk), OC, groups, k, stride, dilation, pad, int(same),
                            _ptr(bias), act, _ptr(residual), _ptr(y), nth, int(direct), int(f16), int(row),
                            int(winograd), int(relu_out))
        return y

    def pool2d(self, isa, x, k, stride, pad=0, same=False, is_max=True, count_include_pad=True, nth=1):
        if isa != "avx512":
            return T.pool2d(isa, x, k, stride, pad=pad, same=same, is_max=is_max,
                            count_include_pad=count_include_pad, nth=nth)
        x = _f32(x)
        B, H, W, C = x.shape
        oh, ow = self._axis(H, k, stride, 1, pad, same), self._axis(W, k, stride, 1, pad, same)
        y = np.full((B, oh, ow, C), np.nan, np.float32)
        self.lib.emu_pool2d(_ptr(x), B, H, W, C, k, stride, pad, int(same), int(is_max), int(count_include_pad),
                            _ptr(y), nth)
        return y

    # ---- ops
    def layernorm(self, isa, X, gamma, beta, eps, nth, inplace):
        if isa != "avx512":
            return T.layernorm(isa, X, gamma, beta, eps, nth, inplace)
        if X.strides[1] != 4:
            X = _f32(X)
        rows, D = X.shape
        g = None if gamma is None else _f32(gamma)
        b = None if beta is None else _f32(beta)
        Y = np.full((rows, D), np.nan, np.float32)
        if inplace:
            Y[...] = X
            self.lib.emu_layernorm(_ptr(Y), D, _ptr(Y), D, rows, D, _ptr(g), _ptr(b), eps, nth)
        else:
            self.lib.emu_layernorm(_ptr(X), X.strides[0] // 4, _ptr(Y), D, rows, D, _ptr(g), _ptr(b), eps, nth)
        return Y

    def activation(self, isa, X, act, nth):
        if isa != "avx512":
            return T.activation(isa, X, act, nth)
        X = _f32(X)
        Y = np.full(X.shape, np.nan, np.float32)
        self.lib.emu_activation(_ptr(X), _ptr(Y), X.shape[0], act, nth)
        return Y

    def act_inplace(self, isa, X, act):
        if isa != "avx512":
            return T.act_inplace(isa, X, act)
        Y = _f32(X).copy()
        self.lib.emu_act_inplace(_ptr(Y), Y.shape[0], act)
        return Y

    def _attention(self, Q, K, V, O, scale, nth):
        B, Tq, H, Dh = Q.shape
        Tk = K.shape[1]
        for a in (Q, K, V, O):
            assert a.dtype == np.float32 and (a.shape[3] == 1 or a.strides[3] == 4)
        s = np.array(sum((_elem_strides(a)[:3] for a in (Q, K, V, O)), []), np.int64)
        self.lib.emu_attention(B, H, Tq, Tk, Dh, _ptr(Q), _ptr(K), _ptr(V), _ptr(O), s.ctypes.data, scale, nth)

    def attention(self, isa, Q, K, V, scale, nth, bias=None, mask=None, rel_h=None, rel_w=None, grid=None):
        terms = dict(bias=bias, mask=mask, rel_h=rel_h, rel_w=rel_w, grid=grid)
        if isa != "avx512":
            return T.attention(isa, Q, K, V, scale, nth, **terms)
        O = np.full(Q.shape, np.nan, np.float32)
        if bias is None and mask is None and rel_h is None:
            self._attention(Q, K, V, O, scale, nth)
            return O
        B, Tq, H, Dh = Q.shape
        Tk = K.shape[1]
        s = np.array(sum((_elem_strides(a)[:3] for a in (Q, K, V, O)), []), np.int64)
        t = np.zeros(7, np.int64)
        if bias is not None:
            assert bias.dtype == np.float32 and (bias.shape[2] == 1 or bias.strides[2] == 4)
            t[0] = 0 if bias.shape[0] == 1 else bias.strides[0] // 4
            t[1] = bias.strides[1] // 4
        if mask is not None:
            assert mask.dtype == np.float32 and (mask.shape[2] == 1 or mask.strides[2] == 4)
            t[2], t[3], t[4] = mask.shape[0], mask.strides[0] // 4, mask.strides[1] // 4
        if rel_h is not None:
            rel_h, rel_w = _f32(rel_h), _f32(rel_w)
            t[5], t[6] = (rel_h.shape[0] + 1) // 2, (rel_w.shape[0] + 1) // 2
        self.lib.emu_attention_terms(B, H, Tq, Tk, Dh, _ptr(Q), _ptr(K), _ptr(V), _ptr(O), s.ctypes.data, scale, nth,
                                     _ptr(bias), _ptr(mask), _ptr(rel_h), _ptr(rel_w), t.ctypes.data)
        return O

    def attention_fused_qkv(self, isa, qkv, scale, nth):
        if isa != "avx512":
            return T.attention_fused_qkv(isa, qkv, scale, nth)
        B, Tn, _, H, Dh = qkv.shape
        O = np.full((B, Tn, H, Dh), np.nan, np.float32)
        self._attention(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2], O, scale, nth)
        return O.reshape(B, Tn, H * Dh)

    # ---- GEMM
    def gemm(self, isa, X, W, bias, act, residual, residual_inplace, nth, ldy=0, packed_w=True, relu_out=False,
             direct=True):
        if isa != "avx512":
            return T.gemm(isa, X, W, bias, act, residual, residual_inplace, nth, ldy=ldy, packed_w=packed_w,
                          relu_out=relu_out, direct=direct)
        M, K = X.shape
        N = W.shape[0]
        ldy = ldy or N
        if not (X.strides[1] == 4 and X.strides[0] % 4 == 0 and X.strides[0] // 4 >= K):
            X = _f32(X)
        W = np.ascontiguousarray(W)
        wtype = 1 if W.dtype == np.float16 else 0
        bias = None if bias is None else _f32(bias)
        ldr = 0
        if residual is not None:
            if not (residual.strides[1] == 4 and residual.strides[0] // 4 >= N):
                residual = _f32(residual)
            ldr = residual.strides[0] // 4
        full = np.full((M, ldy), np.nan, np.float32)
        if residual_inplace:
            full[:, :N] = residual
            res_p, ldr = _ptr(full), ldy
        else:
            res_p = _ptr(residual)
        self.lib.emu_gemm(M, N, K, _ptr(X), X.strides[0] // 4, _ptr(W), wtype, _ptr(bias), act, res_p, ldr,
                          _ptr(full), ldy, int(packed_w), nth, int(relu_out), int(direct))
        return full[:, :N]

    def qgemm_act_qmax(self, isa, type):
        if isa != "avx512":
            return T.qgemm_act_qmax(isa, type)
        return self.lib.emu_qgemm_act_qmax(["q8_0", "q4_0", "q4_1", "q5_0", "q5_1"].index(type))

    def qgemm(self, isa, X, W, type, bias=None, act=0, residual=None, residual_inplace=False, nth=1, act_qmax=0,
              relu_out=False):
        if isa != "avx512":
            return T.qgemm(isa, X, W, type, bias, act, residual, residual_inplace, nth, act_qmax, relu_out=relu_out)
        assert act_qmax == 0, "act_qmax is honoured by the ref level only"
        X, W = _f32(X), np.ascontiguousarray(W, dtype=np.uint8)
        M, K = X.shape
        N = W.shape[0]
        bias = None if bias is None else _f32(bias)
        residual = None if residual is None else _f32(residual)
        Y = np.full((M, N), np.nan, np.float32)
        if residual_inplace:
            Y[...] = residual
        code = ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1"].index(type)
        self.lib.emu_qgemm(M, N, K, _ptr(X), _ptr(W), code, _ptr(bias), act,
                           _ptr(Y) if residual_inplace else _ptr(residual), _ptr(Y), nth, int(relu_out))
        return Y


# ------------------------------------------------------------------------------ the cases
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_kernels_conv as conv_tests  # noqa: E402
import test_kernels_gemm as gemm_tests  # noqa: E402
import test_kernels_ops as ops_tests  # noqa: E402
import test_kernels_quant as quant_tests  # noqa: E402
import test_attention_bias as attn_terms_tests  # noqa: E402

MODULES = {"conv": conv_tests, "ops": ops_tests, "gemm": gemm_tests, "quant": quant_tests,
           "attn_terms": attn_terms_tests}
# Not kernel tests of the avx512 level: timing/FMA-peak probes and the hooks' own argument
# validation. (test_conv2d_vs_torch runs: the facade's conv2d is the avx512 GEMM's conv gather.)
EXCLUDE = {"test_measure_hooks", "test_invalid_arguments",
           "test_avx512_kernel_under_simde"}
# Tests without an ISA argument that loop over every supported level themselves.
LEVEL_LOOPS = {"conv": ["test_dwconv_special_values", "test_maxpool_nan_propagates"]}


def _param_sets(func):
    """The parametrize grid of a test function, with its ISA argument fixed to avx512; None when
    it takes no ISA argument or the avx512 level is not among its values."""
    params = list(inspect.signature(func).parameters)
    isa_arg = "isa" if "isa" in params else "level" if "level" in params else None
    if isa_arg is None:
        return None
    grids = []
    fixed = {isa_arg: "avx512"}
    for mark in getattr(func, "pytestmark", []):
        if mark.name != "parametrize":
            continue
        names, values = mark.args[0], mark.args[1]
        names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
        vals = [v.values if hasattr(v, "values") and not isinstance(v, (dict, np.ndarray)) and
                type(v).__name__ == "ParameterSet" else v for v in values]
        vals = [v if len(names) > 1 else (v,) for v in vals]
        if isa_arg in names:
            if len(names) != 1 or ("avx512",) not in vals:
                return None
            continue
        grids.append([dict(zip(names, v)) for v in vals])
    if isa_arg == "level" and "level" not in params:
        return None
    covered = set(fixed) | {n for g in grids for n in g[0]}
    if set(params) - covered:
        return None  # needs a fixture this harness does not provide
    out = []
    for combo in itertools.product(*grids):
        kw = dict(fixed)
        for d in combo:
            kw.update(d)
        out.append(kw)
    return out


def _cases():
    cases = []
    for short, mod in MODULES.items():
        for name, func in vars(mod).items():
            if not name.startswith("test_") or name in EXCLUDE or not callable(func):
                continue
            for kw in _param_sets(func) or []:
                label = ",".join(f"{k}={v}" for k, v in kw.items() if k not in ("isa", "level"))
                cases.append(pytest.param(short, name, kw, id=f"{short}.{name}[{label}]"[:150]))
        for name in LEVEL_LOOPS.get(short, []):
            cases.append(pytest.param(short, name, {}, id=f"{short}.{name}"))
    return cases


CASES = _cases()


@pytest.fixture(scope="module")
def emulated_lib(tmp_path_factory):
    cxx = _toolchain_or_skip()
    return build_library(cxx, str(tmp_path_factory.mktemp("avx512emu")))


@pytest.fixture
def emulated(emulated_lib, monkeypatch):
    emu = EmulatedTesting(emulated_lib)
    monkeypatch.setattr(conv_tests, "T", emu)
    monkeypatch.setattr(conv_tests, "isa_or_skip", lambda isa: isa)
    real_supported = conv_tests._supported
    monkeypatch.setattr(conv_tests, "_supported", lambda isa: isa == "avx512" or real_supported(isa))
    monkeypatch.setattr(ops_tests, "T", emu)
    monkeypatch.setattr(attn_terms_tests, "T", emu)
    monkeypatch.setattr(gemm_tests, "testing", emu)
    monkeypatch.setattr(quant_tests, "T", emu)
    monkeypatch.setattr(quant_tests, "isa_or_skip", lambda isa: isa)
    return emu


def test_harness_covers_every_family():
    """The grid above really holds the avx512 cases of each kernel family (a renamed parameter in
    the source tests must not silently empty it)."""
    names = {c.values[1] for c in CASES}
    for must in ("test_dwconv_vs_torch_and_ref", "test_pool2d_vs_torch",
                 "test_new_activations_vs_torch", "test_activation_vs_ref", "test_layernorm_vs_ref",
                 "test_attention_vs_ref", "test_attention_fused_qkv", "test_tile_edges",
                 "test_epilogue", "test_k_sizes", "test_special_values", "test_maxpool_nan_propagates",
                 "test_dwconv_special_values", "test_level_vs_ref", "test_epilogue_activation_and_inplace_residual",
                 "test_simd_vs_ref_and_torch", "test_each_term_is_needed", "test_masked_leading_keys"):
        assert must in names, must


def _hook_params(fn):
    """Parameter names of a pybind11 hook, from its signature line (`name(a: T, b: T = v) -> R`)."""
    head = fn.__doc__.split("\n", 1)[0]
    inner = head[head.index("(") + 1:head.rindex(")")]
    names, depth, cur = [], 0, ""
    for ch in inner + ",":
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            names.append(cur.split(":")[0].split("=")[0].strip())
            cur = ""
        else:
            cur += ch
    return [n for n in names if n]


def test_facade_takes_every_hook_argument():
    """Each hook the facade mirrors accepts every argument of the real _testing hook: a test that
    passes a new keyword (direct=, f16=, row=) to T.conv2d must reach the emulated level too, not
    raise TypeError there (which happens only on machines without AVX-512, where it runs).
    Needs no emulated build."""
    for name, meth in vars(EmulatedTesting).items():
        if name.startswith("_") or not callable(meth) or not hasattr(T, name):
            continue
        facade = set(inspect.signature(meth).parameters) - {"self"}
        missing = [p for p in _hook_params(getattr(T, name)) if p not in facade]
        assert not missing, f"EmulatedTesting.{name} lacks {missing}"


@pytest.mark.parametrize("module,name,kwargs", CASES)
def test_avx512_emulated(emulated, module, name, kwargs):
    getattr(MODULES[module], name)(**kwargs)


# ------------------------------------------------------------------------------ beyond those grids
# Cases the shared tests do not hold, in their error models: one query against many keys (the
# class-token / pooling-head shape), every activation fused into the depthwise conv, and pooling
# with TF SAME (asymmetric) padding.


@pytest.mark.parametrize("shape", [(1, 1, 7, 2, 16), (2, 1, 197, 3, 64), (1, 1, 300, 1, 65), (1, 1, 33, 2, 17),
                                   (1, 3, 1, 1, 24)], ids=lambda s: "x".join(map(str, s)))
def test_attention_single_query(emulated, shape):
    B, Tq, Tk, H, Dh = shape
    Q, K, V = ops_tests.qkv_case(B, Tq, Tk, H, Dh, 7, mag=1.5)
    scale = Dh**-0.5
    tol = ops_tests.attn_tol(Q, K, V, scale)
    want = ops_tests.sdpa64(Q, K, V, scale)
    for nth in (1, 3):
        got = emulated.attention("avx512", Q, K, V, scale, nth)
        ops_tests.assert_within(got, want, tol, f"avx512 vs sdpa {shape} nth={nth}")
        ops_tests.assert_within(got, T.attention("ref", Q, K, V, scale, 1), 2 * tol, f"avx512 vs ref {shape}")


@pytest.mark.parametrize("case", [(1, 9, 7, 8, 3, 2, 1, 0, True), (1, 11, 11, 31, 3, 1, 2, 2, False),
                                  (1, 4, 23, 40, 5, 2, 1, 0, True), (1, 3, 20, 65, 3, 1, 1, 1, False)],
                         ids=lambda c: "x".join(map(str, c)))
def test_dwconv_every_activation(emulated, case):
    B, H, W, C, k, s, d, pad, same = case
    g = np.random.default_rng(sum(case))
    x = (2 * g.standard_normal((B, H, W, C))).astype(np.float32)
    w = (g.standard_normal((C, 1, k, k)) / k).astype(np.float32)
    bias = (0.1 * g.standard_normal(C)).astype(np.float32)
    wt = np.ascontiguousarray(w.reshape(C, k * k).T)
    lin, mag = conv_tests.torch_conv64(x, w, bias, s, d, pad, same, groups=C)
    for name, act in conv_tests.ACT.items():
        got = emulated.dwconv2d("avx512", x, wt, bias, k, stride=s, dilation=d, pad=pad, same=same, act=act, nth=3)
        conv_tests.check_close(got, conv_tests.apply_act64(lin, name), mag, k * k, f"avx512 dwconv {case} {name}")
        ref = T.dwconv2d("ref", x, wt, bias, k, stride=s, dilation=d, pad=pad, same=same, act=act, nth=1)
        conv_tests.check_close(got, ref.astype(np.float64), mag, k * k, f"avx512 vs ref dwconv {case} {name}")


@pytest.mark.parametrize("case", [(1, 10, 11, 65, 3, 2), (2, 7, 9, 16, 2, 2), (1, 5, 6, 33, 3, 1), (1, 9, 9, 17, 5, 3)],
                         ids=lambda c: "x".join(map(str, c)))
def test_pool_same_padding_vs_ref(emulated, case):
    B, H, W, C, k, s = case
    x = np.random.default_rng(3).standard_normal((B, H, W, C)).astype(np.float32)
    for is_max in (True, False):
        for cip in (True, False):
            got = emulated.pool2d("avx512", x, k, s, same=True, is_max=is_max, count_include_pad=cip, nth=3)
            ref = T.pool2d("ref", x, k, s, same=True, is_max=is_max, count_include_pad=cip, nth=1)
            np.testing.assert_array_equal(got, ref)  # same additions in the same order, true division


def test_emulation_can_fail(emulated_lib, tmp_path):
    """A one-line bug in a copy of the avx512 conv TU (average pooling ignoring
    count_include_pad, in the shared body it includes) makes the pooling cases above fail: the
    harness really runs that code."""
    cxx = _toolchain_or_skip()
    rel = "kernels/avx512/conv_avx512.cpp"
    src = open(os.path.join(SRC, rel)).read()
    body = open(os.path.join(SRC, "kernels", "conv_body.h")).read()
    include = '#include "kernels/conv_body.h"'
    old = "const int64_t div = a.count_include_pad ? a.h.k * a.w.k : count;"
    assert src.count(include) == 1 and body.count(old) == 1, "the mutated line moved: update this test"
    mutant = tmp_path / "conv_avx512.cpp"
    # The TU with the body pasted in place of its #include, that line changed.
    mutant.write_text(src.replace(include, body.replace(old, "const int64_t div = count;")))
    good_dir = os.path.dirname(emulated_lib._name)
    bad = EmulatedTesting(build_library(cxx, str(tmp_path), replace={rel: str(mutant)}, reuse=good_dir))
    x = np.random.default_rng(3).standard_normal((1, 8, 8, 7)).astype(np.float32)
    want = T.pool2d("ref", x, 3, 2, pad=1, is_max=False, count_include_pad=True)
    np.testing.assert_array_equal(EmulatedTesting(emulated_lib).pool2d("avx512", x, 3, 2, pad=1, is_max=False), want)
    assert not np.array_equal(bad.pool2d("avx512", x, 3, 2, pad=1, is_max=False), want)
