// Each binding file adds its part of the `pyvitcpp._core` module.
#pragma once
#include <pybind11/pybind11.h>

namespace pyvitcpp {
void bind_gguf(pybind11::module_& m);       // bind_gguf.cpp: GGUFFile, GGUFError
void bind_model(pybind11::module_& m);      // bind_model.cpp: Model, cpu_info
void bind_test_gemm(pybind11::module_& t);  // bind_test_gemm.cpp: GEMM kernel hooks (_core.testing)
void bind_test_ops(pybind11::module_& t);   // bind_test_ops.cpp: other kernel hooks (_core.testing)
void bind_test_towers(pybind11::module_& t);  // bind_test_towers.cpp: vision-tower op hooks (_core.testing)
void bind_quant(pybind11::module_& m);       // bind_quant.cpp: quantize, dequantize, requantize
void bind_test_quant(pybind11::module_& t);  // bind_quant.cpp: quantized GEMM hook (_core.testing)
void bind_test_conv(pybind11::module_& t);  // bind_test_conv.cpp: conv / pooling hooks (_core.testing)
void bind_test_graph(pybind11::module_& t);  // bind_test_graph.cpp: one-op graphs over numpy views (_core.testing)
}  // namespace pyvitcpp
