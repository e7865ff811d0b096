// PLACEHOLDER: filled in by the gguf work.
#include "python/bindings.h"
namespace pyvitcpp {
void bind_gguf(pybind11::module_&) {}
}  // namespace pyvitcpp
