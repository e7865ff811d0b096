// GEMM hooks for the test suite (pyvitcpp._testing): run one level's GEMM on numpy arrays,
// every share (ith) in turn on this thread. The timing tools are in bind_perf.cpp (_core.perf).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>

#include "core/cpu.h"
#include "kernels/avx2/gemm_avx2.h"
#include "kernels/avx512/gemm_avx512.h"
#include "kernels/kernels.h"
#include "python/bind_util.h"
#include "python/bindings.h"

namespace py = pybind11;

namespace pyvitcpp {
namespace {

bool is_f32(const py::array& a) { return a.dtype().is(py::dtype::of<float>()); }
bool is_f16(const py::array& a) { return a.dtype().is(py::dtype("float16")); }

// A 2-D float32 array whose rows are contiguous (any row stride >= cols): returned as is,
// with its row stride in elements; anything else (negative/odd strides) is copied.
py::array rows_contiguous(const py::array& a, int64_t* ld) {
  const int64_t cols = a.shape(1);
  if (a.strides(1) == static_cast<py::ssize_t>(sizeof(float)) && a.strides(0) > 0 &&
      a.strides(0) % static_cast<py::ssize_t>(sizeof(float)) == 0 &&
      a.strides(0) / static_cast<py::ssize_t>(sizeof(float)) >= cols) {
    *ld = a.strides(0) / static_cast<py::ssize_t>(sizeof(float));
    return a;
  }
  py::array c = py::module_::import("numpy").attr("ascontiguousarray")(a);
  *ld = cols;
  return c;
}

py::array gemm_hook(const std::string& isa, const py::array& X_in, const py::array& W_in,
                    const py::object& bias_in, int act, const py::object& residual_in,
                    bool residual_inplace, int nth, int64_t ldy, bool packed_w, bool relu_out, bool direct) {
  const KernelTable& t = kernel_table(level_or_throw(isa));
  if (!is_f32(X_in) || X_in.ndim() != 2) throw py::value_error("X must be a 2-D float32 array");
  if ((!is_f32(W_in) && !is_f16(W_in)) || W_in.ndim() != 2)
    throw py::value_error("W must be a 2-D float32 or float16 array [N, K]");
  const int64_t M = X_in.shape(0), K = X_in.shape(1), N = W_in.shape(0);
  if (W_in.shape(1) != K) throw py::value_error("W must have shape [N, K] with K = X.shape[1]");
  if (M < 1 || N < 1 || K < 1) throw py::value_error("M, N and K must be >= 1");
  if (act < 0 || act > kActLast) throw py::value_error("act must be in 0.." + std::to_string(kActLast));
  if (nth < 1 || nth > 4096) throw py::value_error("nth must be in 1..4096");
  if (ldy == 0) ldy = N;
  if (ldy < N) throw py::value_error("ldy must be >= N");

  int64_t ldx = 0;
  py::array X = rows_contiguous(X_in, &ldx);
  py::array W = py::module_::import("numpy").attr("ascontiguousarray")(W_in);
  const DType wtype = is_f32(W) ? DType::F32 : DType::F16;

  // (a default py::array is a 0-size array, not "none": keep explicit pointers)
  py::array bias, residual;
  const float* bias_p = nullptr;
  const float* res_p = nullptr;
  if (!bias_in.is_none()) {
    if (!py::isinstance<py::array>(bias_in)) throw py::value_error("bias must be None or a numpy array");
    bias = py::module_::import("numpy").attr("ascontiguousarray")(bias_in);
    if (!is_f32(bias) || bias.ndim() != 1 || bias.shape(0) != N)
      throw py::value_error("bias must be None or a float32 array of shape [N]");
    bias_p = static_cast<const float*>(bias.data());
  }
  int64_t ldr = 0;
  if (!residual_in.is_none()) {
    if (!py::isinstance<py::array>(residual_in)) throw py::value_error("residual must be None or a numpy array");
    residual = py::reinterpret_borrow<py::array>(residual_in);
    if (!is_f32(residual) || residual.ndim() != 2 || residual.shape(0) != M || residual.shape(1) != N)
      throw py::value_error("residual must be None or a float32 array of shape [M, N]");
    residual = rows_contiguous(residual, &ldr);
    res_p = static_cast<const float*>(residual.data());
  }
  if (residual_inplace && residual_in.is_none())
    throw py::value_error("residual_inplace needs a residual");

  // Y lives in an [M, ldy] buffer; unwritten elements stay NaN so a kernel that skips an
  // output (or writes past N) is caught by the caller looking at y.base.
  py::array_t<float> full({M, ldy});
  float* Y = full.mutable_data();
  std::fill(Y, Y + M * ldy, std::numeric_limits<float>::quiet_NaN());
  if (residual_inplace) {
    const float* r = res_p;
    for (int64_t m = 0; m < M; ++m) std::memcpy(Y + m * ldy, r + m * ldr, N * sizeof(float));
  }

  AlignedBuf packed = packed_w ? aligned_bytes(t.gemm_pack_size(wtype, N, K)) : AlignedBuf(nullptr);
  GemmArgs a;
  a.M = M;
  a.N = N;
  a.K = K;
  a.X = static_cast<const float*>(X.data());
  a.ldx = ldx;
  a.W_raw = W.data();
  a.wtype = wtype;
  a.W_packed = packed.get();
  a.bias = bias_p;
  a.act = static_cast<Act>(act);
  a.residual = residual_inplace ? Y : res_p;
  a.ldr = residual_inplace ? ldy : ldr;
  a.relu_out = relu_out;
  a.allow_direct = direct;
  a.Y = Y;
  a.ldy = ldy;
  {
    py::gil_scoped_release nogil;
    if (packed) t.gemm_pack(a.W_raw, wtype, N, K, packed.get());
    for (int ith = 0; ith < nth; ++ith) t.gemm(a, ith, nth);
  }
  return py::array(py::dtype::of<float>(), {M, N},
                   {static_cast<py::ssize_t>(ldy * sizeof(float)), static_cast<py::ssize_t>(sizeof(float))},
                   Y, full);
}

}  // namespace

void bind_test_gemm(py::module_& t) {
  t.def("gemm", &gemm_hook, py::arg("isa"), py::arg("X"), py::arg("W"), py::arg("bias"), py::arg("act"),
        py::arg("residual"), py::arg("residual_inplace"), py::arg("nth"), py::arg("ldy") = 0, py::arg("packed_w") = true,
        py::arg("relu_out") = false, py::arg("direct") = true,
        "Y = act(X @ W.T + bias) + residual (then max(Y, 0) when relu_out) with one level's packed GEMM,\n"
        "calling the kernel for every\n"
        "ith in 0..nth-1 in turn. W float32 or float16 [N, K]; X may have a row stride (ldx);\n"
        "ldy > N returns a view into an [M, ldy] buffer whose other elements are NaN.\n"
        "packed_w=False passes W_packed = null (the kernel must then fall back to W_raw).\n"
        "direct=False keeps the packed GEMM where the level would run a narrow GEMM as a 1x1\n"
        "direct conv (GemmArgs::allow_direct).");
  t.def(
      "gemm_tile",
      [](const std::string& isa) -> py::tuple {
        const Isa lvl = level_or_throw(isa);
        if (lvl == Isa::Avx2) return py::make_tuple(int(avx2::kGemmMR), int(avx2::kGemmNR));
        if (lvl == Isa::Avx512) return py::make_tuple(int(avx512::kGemmMR), int(avx512::kGemmNR));
        return py::make_tuple(1, 1);
      },
      py::arg("isa"), "(MR, NR): the level's GEMM register tile (rows of X, outputs per W panel).");
  t.def(
      "isa_supported",
      [](const std::string& isa) {
        std::string why;
        const bool ok = isa_supported(level_or_value_error(isa), &why);
        return py::make_tuple(ok, ok ? std::string() : why);
      },
      py::arg("isa"), "(supported, missing_feature) for ref, avx2 or avx512.");
}

}  // namespace pyvitcpp
