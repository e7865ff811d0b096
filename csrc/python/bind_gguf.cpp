// Python view of the GGUF reader: GGUFFile (metadata as Python values, tensors as zero-copy
// read-only numpy views of the mapping) and GGUFError (a ValueError: the file content is bad).
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <system_error>

#include "core/dtype.h"
#include "io/gguf.h"
#include "python/bindings.h"

namespace py = pybind11;

namespace pyvitcpp {

namespace {

using FilePtr = std::shared_ptr<GGUFFile>;

// GGUF strings are meant to be UTF-8, but some real files (tokenizer vocabularies) hold byte
// pieces that are not; replacing those beats making the whole metadata unreadable.
py::str decode_utf8(const std::string& s) {
  PyObject* o = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace");
  if (!o) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(o);
}

py::object to_python(const GGUFValue& v) {
  switch (v.type) {
    case GGUFType::UINT8: case GGUFType::UINT16: case GGUFType::UINT32: case GGUFType::UINT64:
      return py::int_(v.u);
    case GGUFType::INT8: case GGUFType::INT16: case GGUFType::INT32: case GGUFType::INT64:
      return py::int_(v.i);
    case GGUFType::BOOL:
      return py::bool_(v.i != 0);
    case GGUFType::FLOAT32: case GGUFType::FLOAT64:
      return py::float_(v.f);
    case GGUFType::STRING:
      return decode_utf8(v.s);
    case GGUFType::ARRAY:
      break;
  }
  py::list out;
  switch (v.elem_type) {
    case GGUFType::STRING:
      for (const std::string& s : v.arr_s) out.append(decode_utf8(s));
      break;
    case GGUFType::ARRAY:
      for (const GGUFValue& sub : v.arr_arr) out.append(to_python(sub));
      break;
    case GGUFType::FLOAT32: case GGUFType::FLOAT64:
      for (double x : v.arr_f) out.append(py::float_(x));
      break;
    case GGUFType::BOOL:
      for (int64_t x : v.arr_i) out.append(py::bool_(x != 0));
      break;
    case GGUFType::UINT64:
      for (uint64_t x : v.arr_u) out.append(py::int_(x));
      break;
    default:
      for (int64_t x : v.arr_i) out.append(py::int_(x));
      break;
  }
  return std::move(out);
}

py::tuple torch_shape(const GGUFTensorInfo& t) {
  py::tuple shape(t.ne.size());
  for (size_t k = 0; k < t.ne.size(); ++k) shape[k] = py::int_(t.ne[t.ne.size() - 1 - k]);
  return shape;
}

py::dict tensor_dict(const GGUFFile& f, const GGUFTensorInfo& t) {
  py::dict d;
  d["name"] = decode_utf8(t.name);
  d["shape"] = torch_shape(t);
  d["ne"] = py::tuple(py::cast(t.ne));
  d["type"] = dtype_name(t.type);
  d["type_id"] = t.type;
  d["offset"] = t.offset;
  d["file_offset"] = f.data_offset() + t.offset;
  d["nbytes"] = t.nbytes;
  return d;
}

// F32/F16 come back typed in PyTorch order; other types (block-quantized, bf16) as their raw
// rows of bytes, shape (..., bytes per row), which is how gguf-py's GGUFReader shows them.
py::array tensor_view(const FilePtr& f, const std::string& name) {
  const GGUFTensorInfo* t = f->find_tensor(name);
  if (!t) throw py::key_error("no tensor named '" + name + "' in " + f->path());
  std::vector<py::ssize_t> shape;
  for (size_t k = t->ne.size(); k-- > 0;) shape.push_back(static_cast<py::ssize_t>(t->ne[k]));
  py::dtype dt;
  if (t->type == static_cast<uint32_t>(DType::F32)) {
    dt = py::dtype::of<float>();
  } else if (t->type == static_cast<uint32_t>(DType::F16)) {
    dt = py::dtype("float16");
  } else {
    size_t row = 0;
    row_bytes(t->type, t->ne[0], &row);  // validated at open
    shape.back() = static_cast<py::ssize_t>(row);
    dt = py::dtype::of<uint8_t>();
  }
  // The capsule owns a reference to the file, so the mapping outlives the GGUFFile object for
  // as long as any view (or view of a view) exists.
  py::capsule owner(new FilePtr(f), [](void* p) { delete static_cast<FilePtr*>(p); });
  py::array a(dt, shape, {}, t->data, owner);
  // The mapping is PROT_READ: a write through the view would be a segfault, not an error.
  a.attr("setflags")(py::arg("write") = false);
  return a;
}

// Paths travel as the bytes the OS sees (os.fsencode) and come back through os.fsdecode.
py::object fs_path(const std::string& path) {
  return py::module_::import("os").attr("fsdecode")(py::bytes(path));
}

}  // namespace

[[noreturn]] void raise_os_error(const std::system_error& e, const std::string& path) {
  const std::error_condition cond = e.code().default_error_condition();
  py::object exc;
  if (cond.category() == std::generic_category()) {
    // OSError(errno, strerror, filename) picks the subclass (FileNotFoundError, ...) itself.
    // what() ("cannot write X: not a regular file: Invalid argument") says more than strerror.
    exc = py::reinterpret_borrow<py::object>(PyExc_OSError)(cond.value(), e.what(), fs_path(path));
  } else {
    exc = py::reinterpret_borrow<py::object>(PyExc_OSError)(e.what());
  }
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
  throw py::error_already_set();
}

namespace {

FilePtr open_file(const py::object& path_like, bool use_mmap) {
  // os.fsencode accepts str, bytes and os.PathLike and yields the bytes the OS will see.
  const std::string path = py::module_::import("os").attr("fsencode")(path_like).cast<std::string>();
  try {
    py::gil_scoped_release nogil;
    return GGUFFile::open(path, use_mmap);
  } catch (const std::system_error& e) {
    raise_os_error(e, path);
  }
}

}  // namespace

void bind_gguf(py::module_& m) {
  py::register_exception<GGUFError>(m, "GGUFError", PyExc_ValueError);

  py::class_<GGUFFile, FilePtr>(m, "GGUFFile",
                                "A GGUF v2/v3 file, memory-mapped read-only and fully validated on open.\n\n"
                                "Raises GGUFError (a ValueError) for malformed content and OSError\n"
                                "(FileNotFoundError, IsADirectoryError, ...) when the file cannot be read.")
      .def(py::init(&open_file), py::arg("path"), py::arg("mmap") = true)
      .def_property_readonly("mapped", &GGUFFile::mapped,
                             "True when the data is memory-mapped (mmap=True), False when read into memory.")
      .def_property_readonly("path",
                             [](const GGUFFile& f) { return fs_path(f.path()); })
      .def_property_readonly("version", &GGUFFile::version)
      .def_property_readonly("alignment", &GGUFFile::alignment)
      .def_property_readonly("file_size", &GGUFFile::file_size)
      .def_property_readonly("data_offset", &GGUFFile::data_offset,
                             "Absolute file offset where the tensor data section starts.")
      .def_property_readonly(
          "metadata",
          [](const GGUFFile& f) {
            py::dict d;
            for (const auto& kv : f.metadata()) d[decode_utf8(kv.first)] = to_python(kv.second);
            return d;
          },
          "dict key -> value (int, float, bool, str, or list for arrays), in file order. Built on "
          "each access; use f[key] for a single value.")
      .def_property_readonly(
          "metadata_types",
          [](const GGUFFile& f) {
            py::dict d;
            for (const auto& kv : f.metadata()) d[decode_utf8(kv.first)] = gguf_value_type_desc(kv.second);
            return d;
          },
          "dict key -> GGUF type, e.g. 'uint32', 'string', 'array[float32]'.")
      .def_property_readonly(
          "tensors",
          [](const GGUFFile& f) {
            py::list out;
            for (const GGUFTensorInfo& t : f.tensors()) out.append(tensor_dict(f, t));
            return out;
          },
          "List of dicts: name, shape (PyTorch order), ne (ggml order), type ('f32', 'q8_0', ...), "
          "type_id, offset (in the data section), file_offset, nbytes.")
      .def("tensor", &tensor_view, py::arg("name"),
           "Read-only numpy view of a tensor's data (no copy; keeps the file mapped). float32 / "
           "float16 in PyTorch order for F32 / F16, else uint8 rows of raw blocks.")
      .def("tensor_names",
           [](const GGUFFile& f) {
             py::list out;
             for (const GGUFTensorInfo& t : f.tensors()) out.append(decode_utf8(t.name));
             return out;
           })
      .def("keys",
           [](const GGUFFile& f) {
             py::list out;
             for (const auto& kv : f.metadata()) out.append(decode_utf8(kv.first));
             return out;
           })
      .def("__contains__", [](const GGUFFile& f, const std::string& key) { return f.has(key); })
      .def("__getitem__",
           [](const GGUFFile& f, const std::string& key) {
             const GGUFValue* v = f.find(key);
             if (!v) throw py::key_error(key);
             return to_python(*v);
           })
      .def(
          "get",
          [](const GGUFFile& f, const std::string& key, py::object def) {
            const GGUFValue* v = f.find(key);
            return v ? to_python(*v) : def;
          },
          py::arg("key"), py::arg("default") = py::none())
      // Exposes the C++ typed getters (what the engine uses) to the test suite; not public API.
      .def(
          "_get",
          [](const GGUFFile& f, const std::string& kind, const std::string& key, py::object def) -> py::object {
            const bool has_def = !def.is_none();
            if (kind == "str") return py::str(has_def ? f.get_str_or(key, def.cast<std::string>()) : f.get_str(key));
            if (kind == "int") return py::int_(has_def ? f.get_int_or(key, def.cast<int64_t>()) : f.get_int(key));
            if (kind == "float")
              return py::float_(has_def ? f.get_float_or(key, def.cast<double>()) : f.get_float(key));
            if (kind == "bool") return py::bool_(f.get_bool_or(key, has_def && def.cast<bool>()));
            if (kind == "float_array") return py::cast(f.get_float_array(key));
            if (kind == "int_array") return py::cast(f.get_int_array(key));
            if (kind == "str_array") return py::cast(f.get_str_array(key));
            throw py::value_error("unknown getter kind '" + kind + "'");
          },
          py::arg("kind"), py::arg("key"), py::arg("default") = py::none())
      .def("__repr__", [](const GGUFFile& f) {
        return "<GGUFFile " + py::repr(fs_path(f.path()))
                                  .cast<std::string>() +
               " v" + std::to_string(f.version()) + ", " + std::to_string(f.metadata().size()) + " keys, " +
               std::to_string(f.tensors().size()) + " tensors>";
      });
}

}  // namespace pyvitcpp
