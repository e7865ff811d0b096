// Reference quantizers and dequantizers for the block types of core/blocks.h.
//
// quantize_row produces exactly the bytes of gguf-py's gguf.quants.quantize (which for Q8_0 is
// bit-exact with ggml's quantize_row_q8_0_ref; for the 4/5-bit types gguf-py and ggml share the
// formulas: trunc(v + 8.5) etc., and d rounded to F16 to nearest-even). dequantize_row matches
// gguf.quants.dequantize (float32 arithmetic, d * q then + m, no fused multiply-add).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/blocks.h"
#include "core/dtype.h"

namespace pyvitcpp {

// n must be a multiple of 32; dst holds n / 32 blocks of the type.
void quantize_row(DType t, const float* x, int64_t n, void* dst);
void dequantize_row(DType t, const void* src, int64_t n, float* y);

// Rows of n elements: threads split the rows (nthreads <= 0: hardware concurrency).
void quantize_rows(DType t, const float* x, int64_t rows, int64_t n, void* dst, int nthreads);
void dequantize_rows(DType t, const void* src, int64_t rows, int64_t n, float* y, int nthreads);

// "q8_0" -> DType::Q8_0 etc. (also accepts f32/f16); throws std::invalid_argument naming the choices.
DType parse_quant_type(const std::string& name);

}  // namespace pyvitcpp
