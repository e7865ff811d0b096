// PLACEHOLDER: filled in by the test_gemm work.
#include "python/bindings.h"
namespace pyvitcpp {
void bind_test_gemm(pybind11::module_&) {}
}  // namespace pyvitcpp
