// pyvitcpp._core.Model and cpu_info: validate on the Python side of the boundary, then run
// with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "core/checked.h"
#include "core/cpu.h"
#include "core/threadpool.h"
#include "models/model.h"
#include "python/bindings.h"

namespace py = pybind11;

namespace pyvitcpp {

namespace {

py::dict run_model(Model& m, const py::array& pixels, const std::vector<std::string>& outputs) {
  if (!py::isinstance<py::array_t<float>>(pixels) || pixels.dtype().kind() != 'f' || pixels.itemsize() != 4)
    throw py::type_error("pixels must be a float32 array, got dtype " + std::string(py::str(pixels.dtype())));
  if (pixels.ndim() != 4)
    throw py::value_error("pixels must have shape [B, C, H, W], got " + std::to_string(pixels.ndim()) + " dimensions");
  if (!(pixels.flags() & py::array::c_style)) throw py::value_error("pixels must be C-contiguous");
  if (outputs.empty()) throw py::value_error("ask for at least one output");
  const int64_t B = pixels.shape(0), C = pixels.shape(1), H = pixels.shape(2), W = pixels.shape(3);
  std::map<std::string, float*> dst;
  py::dict result;
  if (B < 1) throw py::value_error("pixels hold no images (batch of 0)");
  m.family().check_input(C, H, W);  // ModelError naming a channel or size mismatch
  std::map<std::string, std::vector<int64_t>> shapes;
  {
    // Builds the graph on the first call per geometry (can take a while): other Python threads
    // run meanwhile.
    py::gil_scoped_release release;
    shapes = m.output_shapes(B, H, W, outputs);
  }
  for (const auto& kv : shapes) {
    const std::string& name = kv.first;
    const std::vector<int64_t>& shape = kv.second;
    // numpy's strides and byte size: a shape from file-supplied hyper-parameters must not wrap.
    checked_mul<ModelError>(checked_product<ModelError>(shape, "output '" + name + "' element count"),
                            static_cast<int64_t>(sizeof(float)), "output '" + name + "' byte size");
    py::array_t<float> arr(std::vector<py::ssize_t>(shape.begin(), shape.end()));
    dst[name] = arr.mutable_data();
    result[py::str(name)] = arr;
  }
  const float* data = static_cast<const float*>(pixels.data());
  {
    py::gil_scoped_release release;
    m.run(data, B, C, H, W, outputs, dst);
  }
  return result;
}

}  // namespace

void bind_model(py::module_& m) {
  py::register_exception<ModelError>(m, "ModelError", PyExc_ValueError);

  py::class_<Model>(m, "Model")
      .def(py::init([](const std::string& path, int threads, const std::string& isa, bool use_mmap, bool winograd) {
             try {
               py::gil_scoped_release release;
               return std::make_unique<Model>(path, threads, isa, use_mmap, winograd);
             } catch (const std::system_error& e) {  // cannot open / read the file
               raise_os_error(e, path);
             }
           }),
           py::arg("path"), py::arg("threads") = 0, py::arg("isa") = "", py::arg("mmap") = true,
           py::arg("winograd") = true)
      .def("run", &run_model, py::arg("pixels"), py::arg("outputs"))
      // Both build (and cache) the graph for the geometry: without the GIL, like run.
      .def("output_shape", &Model::output_shape, py::arg("name"), py::arg("batch"), py::arg("height"), py::arg("width"),
           py::call_guard<py::gil_scoped_release>())
      .def("arena_bytes", &Model::arena_bytes, py::arg("batch"), py::arg("height"), py::arg("width"),
           py::arg("outputs"), py::call_guard<py::gil_scoped_release>())
      .def("images_per_run", &Model::images_per_run, py::arg("batch"), py::arg("height"), py::arg("width"),
           py::arg("outputs"), py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("output_names", [](const Model& m) { return m.family().output_names(); })
      .def_property_readonly("hparams", [](const Model& m) { return m.family().hparams(); })
      .def_property_readonly("architecture", [](const Model& m) { return m.family().architecture(); })
      .def_property_readonly("threads", &Model::threads)
      .def_property_readonly("isa", [](const Model& m) { return std::string(isa_name(m.isa())); })
      .def_property_readonly("packed_weight_bytes", &Model::packed_weight_bytes)
      .def_property_readonly("owned_weight_bytes", &Model::owned_weight_bytes)
      .def_property_readonly("wino_weight_bytes", &Model::wino_weight_bytes,
                             "Bytes of the 3x3 convs' Winograd weights (0 with winograd=False).")
      .def_property_readonly("path", [](const Model& m) { return m.file().path(); })
      .def_property_readonly("file", &Model::file_ptr, "The model's GGUFFile (mapped or read into memory).");
  m.attr("MAX_THREADS") = kMaxThreads;

  m.def("cpu_info", [] {
    const CpuFeatures& c = cpu_features();
    py::dict d;
    d["vendor"] = c.vendor;
    d["brand"] = c.brand;
    py::dict f;
    f["sse4_2"] = c.sse42;
    f["avx"] = c.avx;
    f["avx2"] = c.avx2;
    f["fma"] = c.fma;
    f["f16c"] = c.f16c;
    f["avx512f"] = c.avx512f;
    f["avx512bw"] = c.avx512bw;
    f["avx512dq"] = c.avx512dq;
    f["avx512vl"] = c.avx512vl;
    f["avx512_vnni"] = c.avx512vnni;
    f["avx512_bf16"] = c.avx512bf16;
    f["avx512_vbmi"] = c.avx512vbmi;
    f["avx_vnni"] = c.avxvnni;
    f["os_ymm"] = c.os_ymm;
    f["os_zmm"] = c.os_zmm;
    d["features"] = f;
    py::list levels;
    for (Isa i : {Isa::Ref, Isa::Avx2, Isa::Avx512})
      if (isa_supported(i)) levels.append(isa_name(i));
    d["supported_levels"] = levels;
    d["best_level"] = isa_name(best_isa());
    try {
      d["level"] = isa_name(selected_isa());
    } catch (const std::exception& e) {
      d["level"] = py::none();
      d["level_error"] = e.what();
    }
    d["logical_cores"] = c.logical_cores;
    d["physical_cores"] = c.physical_cores;
    d["default_threads"] = default_thread_count();
    return d;
  });
  m.def("isa_supported", [](const std::string& name) {
    std::string why;
    bool ok = isa_supported(parse_isa(name), &why);
    return py::make_tuple(ok, why);
  });
}

}  // namespace pyvitcpp
