// Test hooks for the vision-tower ops (pyvitcpp._testing). Not a public API.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "ops/pos_resize.h"
#include "python/bindings.h"

namespace py = pybind11;

namespace pyvitcpp {

void bind_test_towers(py::module_& t) {
  t.def(
      "resize_pos_table",
      [](py::array_t<float, py::array::c_style | py::array::forcecast> src, int64_t gh, int64_t gw,
         const std::string& mode) {
        if (src.ndim() != 3) throw py::value_error("src must be [gh0, gw0, D]");
        if (gh < 1 || gw < 1 || gh > 4096 || gw > 4096) throw py::value_error("target grid out of range");
        PosResize m;
        try {
          m = parse_pos_resize(mode);
        } catch (const std::invalid_argument& e) {
          throw py::value_error(e.what());
        }
        const int64_t gh0 = src.shape(0), gw0 = src.shape(1), D = src.shape(2);
        py::array_t<float> out({gh, gw, D});
        try {
          resize_pos_table(src.data(), gh0, gw0, D, gh, gw, m, out.mutable_data());
        } catch (const std::invalid_argument& e) {
          throw py::value_error(e.what());
        }
        return out;
      },
      py::arg("src"), py::arg("gh"), py::arg("gw"), py::arg("mode"),
      "Resize a [gh0, gw0, D] position grid to [gh, gw, D] (modes: none, bicubic, bicubic_antialias).");
}

}  // namespace pyvitcpp
