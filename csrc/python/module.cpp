#include "python/bindings.h"

namespace py = pybind11;

PYBIND11_MODULE(_core, m) {
  m.doc() = "pyvitcpp C++ engine";
  pyvitcpp::bind_gguf(m);
  pyvitcpp::bind_model(m);
  pyvitcpp::bind_quant(m);
  py::module_ t = m.def_submodule("testing", "Kernel-level hooks for the test suite (not a public API)");
  pyvitcpp::bind_test_gemm(t);
  pyvitcpp::bind_test_ops(t);
  pyvitcpp::bind_test_towers(t);
  pyvitcpp::bind_test_quant(t);
  pyvitcpp::bind_test_conv(t);
  pyvitcpp::bind_test_graph(t);
}
