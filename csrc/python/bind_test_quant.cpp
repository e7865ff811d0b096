// The quantized-GEMM hooks for the test suite (pyvitcpp._testing.qgemm, qgemm_act_qmax).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <new>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "core/dtype.h"
#include "kernels/kernels.h"
#include "python/bind_util.h"
#include "python/bindings.h"

namespace py = pybind11;

namespace pyvitcpp {
namespace {

// Quantized GEMM of one level on numpy arrays: X [M, K] f32, W [N, row bytes] uint8 blocks.
py::array qgemm_hook(const std::string& isa, const py::array& X_in, const py::array& W_in, const std::string& type,
                     const py::object& bias_in, int act, const py::object& residual_in, bool residual_inplace,
                     int nth, int act_qmax, bool relu_out) {
  const Isa lvl = level_or_value_error(isa);
  const KernelTable& kt = kernel_table(lvl);
  const DType t = block_type_or_throw(type);
  py::array_t<float, py::array::c_style | py::array::forcecast> X(X_in);
  py::array_t<uint8_t, py::array::c_style> W(W_in);
  if (X.ndim() != 2 || W.ndim() != 2) throw py::value_error("X must be [M, K] float32 and W [N, row bytes] uint8");
  const int64_t M = X.shape(0), K = X.shape(1), N = W.shape(0);
  size_t rb = 0;
  if (K % 32 != 0 || !row_bytes(static_cast<uint32_t>(t), K, &rb) || W.shape(1) != static_cast<py::ssize_t>(rb))
    throw py::value_error("K must be a multiple of 32 and W rows must hold K / 32 " + type + " blocks");
  if (M < 1 || N < 1) throw py::value_error("M and N must be >= 1");
  if (act < 0 || act > static_cast<int>(Act::Relu)) throw py::value_error("act must be in 0..5");
  if (nth < 1 || nth > 4096) throw py::value_error("nth must be in 1..4096");
  if (act_qmax < 0 || act_qmax > 127) throw py::value_error("act_qmax must be in 0..127 (0: the level's own)");
  if (act_qmax != 0 && lvl != Isa::Ref) throw py::value_error("act_qmax is honoured by the ref level only");
  py::array_t<float, py::array::c_style | py::array::forcecast> bias, res;
  const float* bias_p = nullptr;
  const float* res_p = nullptr;
  if (!bias_in.is_none()) {
    bias = py::array_t<float, py::array::c_style | py::array::forcecast>(bias_in);
    if (bias.ndim() != 1 || bias.shape(0) != N) throw py::value_error("bias must be [N]");
    bias_p = bias.data();
  }
  if (!residual_in.is_none()) {
    res = py::array_t<float, py::array::c_style | py::array::forcecast>(residual_in);
    if (res.ndim() != 2 || res.shape(0) != M || res.shape(1) != N) throw py::value_error("residual must be [M, N]");
    res_p = res.data();
  }
  if (residual_inplace && !res_p) throw py::value_error("residual_inplace needs a residual");
  py::array_t<float> Yarr({M, N});
  float* Y = Yarr.mutable_data();
  std::fill(Y, Y + M * N, std::numeric_limits<float>::quiet_NaN());
  if (residual_inplace) std::memcpy(Y, res_p, sizeof(float) * M * N);
  std::vector<unsigned char> packed_store;
  const size_t pbytes = kt.qgemm_pack_size(t, N, K);
  void* packed = nullptr;
  if (pbytes) packed = ::operator new(pbytes, std::align_val_t(64));
  GemmArgs a;
  a.M = M; a.N = N; a.K = K;
  a.X = X.data(); a.ldx = K;
  a.W_raw = W.data(); a.wtype = t; a.W_packed = packed;
  a.bias = bias_p;
  a.act = static_cast<Act>(act);
  a.residual = residual_inplace ? Y : res_p;
  a.ldr = N;
  a.Y = Y; a.ldy = N;
  a.act_qmax = act_qmax;
  a.relu_out = relu_out;
  {
    py::gil_scoped_release nogil;
    if (packed) kt.qgemm_pack(a.W_raw, t, N, K, packed);
    for (int ith = 0; ith < nth; ++ith) kt.qgemm(a, ith, nth);
  }
  if (packed) ::operator delete(packed, std::align_val_t(64));
  return Yarr;
}

}  // namespace

void bind_test_quant(py::module_& t) {
  t.def("qgemm", &qgemm_hook, py::arg("isa"), py::arg("X"), py::arg("W"), py::arg("type"), py::arg("bias") = py::none(),
        py::arg("act") = 0, py::arg("residual") = py::none(), py::arg("residual_inplace") = false, py::arg("nth") = 1,
        py::arg("act_qmax") = 0, py::arg("relu_out") = false);
  t.def(
      "qgemm_act_qmax",
      [](const std::string& isa, const std::string& type) {
        return kernel_table(level_or_value_error(isa)).qgemm_act_qmax(block_type_or_throw(type));
      },
      py::arg("isa"), py::arg("type"), "Largest activation code the level's quantized GEMM uses for that weight type.");
}

}  // namespace pyvitcpp
