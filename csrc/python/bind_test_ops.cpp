// PLACEHOLDER: filled in by the test_ops work.
#include "python/bindings.h"
namespace pyvitcpp {
void bind_test_ops(pybind11::module_&) {}
}  // namespace pyvitcpp
