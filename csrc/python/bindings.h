// Each binding file adds its part of one of the two modules: `pyvitcpp._core` (module.cpp,
// what `import pyvitcpp` loads) or `pyvitcpp._testing` (testing_module.cpp, the test hooks).
#pragma once
#include <pybind11/pybind11.h>

#include <string>
#include <system_error>

namespace pyvitcpp {
// _core
void bind_gguf(pybind11::module_& m);   // bind_gguf.cpp: GGUFFile, GGUFError
void bind_model(pybind11::module_& m);  // bind_model.cpp: Model, cpu_info
void bind_quant(pybind11::module_& m);  // bind_quant.cpp: quantize, dequantize, requantize
void bind_perf(pybind11::module_& m);   // bind_perf.cpp: _core.perf: gemm_bench, fma_peak, int8_peak
// bind_gguf.cpp: raises OSError(errno, strerror, path) (FileNotFoundError, IsADirectoryError, ...)
// for a file that cannot be opened or read.
[[noreturn]] void raise_os_error(const std::system_error& e, const std::string& path);

// _testing
void bind_test_gemm(pybind11::module_& t);    // bind_test_gemm.cpp: GEMM kernel hooks
void bind_test_ops(pybind11::module_& t);     // bind_test_ops.cpp: other kernel hooks
void bind_test_towers(pybind11::module_& t);  // bind_test_towers.cpp: vision-tower op hooks
void bind_test_quant(pybind11::module_& t);   // bind_test_quant.cpp: quantized GEMM hooks
void bind_test_conv(pybind11::module_& t);    // bind_test_conv.cpp: conv / pooling hooks
void bind_test_graph(pybind11::module_& t);   // bind_test_graph.cpp: one-op graphs over numpy views
}  // namespace pyvitcpp
