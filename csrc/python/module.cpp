#include "python/bindings.h"

namespace py = pybind11;

PYBIND11_MODULE(_core, m) {
  m.doc() = "pyvitcpp C++ engine";
  pyvitcpp::bind_gguf(m);
  pyvitcpp::bind_model(m);
  pyvitcpp::bind_quant(m);
  py::module_ perf = m.def_submodule("perf", "Measurement tools (public as pyvitcpp.perf)");
  pyvitcpp::bind_perf(perf);
}
