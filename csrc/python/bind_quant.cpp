// Block quantization for Python: pyvitcpp._core.quantize / dequantize / requantize (public,
// wrapped by pyvitcpp.quantize). The quantized-GEMM test hook is in bind_test_quant.cpp.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "core/blocks.h"
#include "core/dtype.h"
#include "python/bind_util.h"
#include "python/bindings.h"
#include "quant/quantize.h"
#include "quant/requantize.h"

#include <system_error>

namespace py = pybind11;

namespace pyvitcpp {
namespace {

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
  try {
    py::gil_scoped_release nogil;
    plan = requantize_file(src, dst, t, threads);
  } catch (const std::system_error& e) {  // cannot read src / write dst
    std::string what = e.what();
    raise_os_error(e, what.find(dst) != std::string::npos ? dst : src);
  }
  py::list out;
  for (const auto& d : plan) out.append(py::make_tuple(d.name, dtype_name(d.from), dtype_name(d.to), d.why));
  return out;
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

}  // namespace pyvitcpp
