// pyvitcpp._testing: kernel-level hooks for the test suite, in a module of their own so that
// `import pyvitcpp` never loads them. Not a public API. It links the same engine objects as
// _core (CMakeLists.txt: pyvitcpp_engine).
#include "python/bindings.h"

PYBIND11_MODULE(_testing, t) {
  t.doc() = "Kernel-level hooks for the pyvitcpp test suite (not a public API)";
  pyvitcpp::bind_test_gemm(t);
  pyvitcpp::bind_test_ops(t);
  pyvitcpp::bind_test_towers(t);
  pyvitcpp::bind_test_quant(t);
  pyvitcpp::bind_test_conv(t);
  pyvitcpp::bind_test_graph(t);
}
