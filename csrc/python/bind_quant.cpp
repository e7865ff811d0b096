// Block quantization for Python: pyvitcpp._core.quantize / dequantize / requantize (public,
// wrapped by pyvitcpp.quantize) and the quantized-GEMM hook for the tests (_core.testing.qgemm).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <limits>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "core/dtype.h"
#include "kernels/kernels.h"
#include "python/bindings.h"
#include "quant/blocks.h"
#include "quant/quantize.h"
#include "quant/requantize.h"

namespace py = pybind11;

namespace pyvitcpp {
namespace {

DType block_type_or_throw(const std::string& name) {
  DType t;
  try {
    t = parse_quant_type(name);
  } catch (const std::invalid_argument& e) {
    throw py::value_error(e.what());
  }
  if (!is_block_quant(t)) throw py::value_error("'" + name + "' is not a block-quantized type (q8_0, q4_0, q4_1, q5_0, q5_1)");
  return t;
}

py::array quantize_py(const py::array& x_in, const std::string& type, int threads) {
  const DType t = block_type_or_throw(type);
  py::array_t<float, py::array::c_style | py::array::forcecast> x(x_in);
  if (x.ndim() < 1) throw py::value_error("quantize needs an array with at least one dimension");
  const int64_t n = x.shape(x.ndim() - 1);
  if (n % kQK != 0)
    throw py::value_error("the last dimension (" + std::to_string(n) + ") is not a multiple of the block size 32");
  const int64_t rows = n == 0 ? 0 : x.size() / n;
  size_t rb = 0;
  row_bytes(static_cast<uint32_t>(t), n, &rb);
  std::vector<py::ssize_t> shape(x.shape(), x.shape() + x.ndim());
  shape.back() = static_cast<py::ssize_t>(rb);
  py::array_t<uint8_t> out(shape);
  if (rows > 0) {
    py::gil_scoped_release nogil;
    quantize_rows(t, x.data(), rows, n, out.mutable_data(), threads);
  }
  return out;
}

py::array dequantize_py(const py::array& q_in, const std::string& type, int threads) {
  const DType t = block_type_or_throw(type);
  if (!q_in.dtype().is(py::dtype::of<uint8_t>())) throw py::value_error("dequantize needs a uint8 array of blocks");
  py::array_t<uint8_t, py::array::c_style> q(q_in);
  if (q.ndim() < 1) throw py::value_error("dequantize needs an array with at least one dimension");
  const int64_t bytes = q.shape(q.ndim() - 1);
  const int64_t ts = static_cast<int64_t>(dtype_traits(t).type_size);
  if (bytes % ts != 0)
    throw py::value_error("the last dimension (" + std::to_string(bytes) + " bytes) is not a whole number of " + type +
                          " blocks of " + std::to_string(ts) + " bytes");
  const int64_t n = bytes / ts * kQK;
  const int64_t rows = bytes == 0 ? 0 : q.size() / bytes;
  std::vector<py::ssize_t> shape(q.shape(), q.shape() + q.ndim());
  shape.back() = static_cast<py::ssize_t>(n);
  py::array_t<float> out(shape);
  if (rows > 0) {
    py::gil_scoped_release nogil;
    dequantize_rows(t, q.data(), rows, n, out.mutable_data(), threads);
  }
  return out;
}

py::list requantize_py(const std::string& src, const std::string& dst, const std::string& type, int threads) {
  DType t;
  try {
    t = parse_quant_type(type);
  } catch (const std::invalid_argument& e) {
    throw py::value_error(e.what());
  }
  std::vector<RequantDecision> plan;
  {
    py::gil_scoped_release nogil;
    plan = requantize_file(src, dst, t, threads);
  }
  py::list out;
  for (const auto& d : plan) out.append(py::make_tuple(d.name, dtype_name(d.from), dtype_name(d.to), d.why));
  return out;
}

// Quantized GEMM of one level on numpy arrays: X [M, K] f32, W [N, row bytes] uint8 blocks.
Isa level_or_value_error(const std::string& isa) {
  try {
    return parse_isa(isa);
  } catch (const std::runtime_error& e) {
    throw py::value_error(e.what());
  }
}

py::array qgemm_hook(const std::string& isa, const py::array& X_in, const py::array& W_in, const std::string& type,
                     const py::object& bias_in, int act, const py::object& residual_in, bool residual_inplace,
                     int nth, int act_qmax) {
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
  {
    py::gil_scoped_release nogil;
    if (packed) kt.qgemm_pack(a.W_raw, t, N, K, packed);
    for (int ith = 0; ith < nth; ++ith) kt.qgemm(a, ith, nth);
  }
  if (packed) ::operator delete(packed, std::align_val_t(64));
  return Yarr;
}

}  // namespace

void bind_quant(py::module_& m) {
  m.def("quantize", &quantize_py, py::arg("x"), py::arg("type"), py::arg("threads") = 0,
        "Quantize float rows (last dim a multiple of 32) into ggml blocks: uint8 [..., row bytes],\n"
        "byte-identical to gguf.quants.quantize.");
  m.def("dequantize", &dequantize_py, py::arg("data"), py::arg("type"), py::arg("threads") = 0,
        "Inverse of quantize: uint8 [..., row bytes] -> float32 [..., n] (as gguf.quants.dequantize).");
  m.def("requantize", &requantize_py, py::arg("src"), py::arg("dst"), py::arg("type"), py::arg("threads") = 0,
        "Rewrite an F32/F16 GGUF with its matrices in `type`; returns (name, from, to, note) per tensor.");
}

void bind_test_quant(py::module_& t) {
  t.def("qgemm", &qgemm_hook, py::arg("isa"), py::arg("X"), py::arg("W"), py::arg("type"), py::arg("bias") = py::none(),
        py::arg("act") = 0, py::arg("residual") = py::none(), py::arg("residual_inplace") = false, py::arg("nth") = 1,
        py::arg("act_qmax") = 0);
  t.def(
      "qgemm_act_qmax",
      [](const std::string& isa, const std::string& type) {
        return kernel_table(level_or_value_error(isa)).qgemm_act_qmax(block_type_or_throw(type));
      },
      py::arg("isa"), py::arg("type"), "Largest activation code the level's quantized GEMM uses for that weight type.");
}

}  // namespace pyvitcpp
