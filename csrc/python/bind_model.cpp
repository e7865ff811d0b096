// PLACEHOLDER: model bindings come with the engine.
#include "python/bindings.h"
namespace pyvitcpp {
void bind_model(pybind11::module_&) {}
}  // namespace pyvitcpp
