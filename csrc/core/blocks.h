// ggml's block-quantized layouts, byte for byte (ggml-common.h): 32 weights per block, an F16
// scale d (and for the _1 types an F16 offset m), packed little-endian, no padding.
//   Q8_0: x = d * q,            q int8 in qs[i]
//   Q4_0: x = d * (q - 8),      q = qs[i] & 15 for i < 16, qs[i - 16] >> 4 for i >= 16
//   Q4_1: x = d * q + m,        q as Q4_0
//   Q5_0: x = d * (q - 16),     q = low nibble as Q4_0 | bit i of qh (little-endian u32) << 4
//   Q5_1: x = d * q + m,        q as Q5_0
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace pyvitcpp {

constexpr int64_t kQK = 32;  // weights per block, every type here

#pragma pack(push, 1)
struct block_q8_0 { uint16_t d; int8_t qs[32]; };
struct block_q4_0 { uint16_t d; uint8_t qs[16]; };
struct block_q4_1 { uint16_t d, m; uint8_t qs[16]; };
struct block_q5_0 { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; };
struct block_q5_1 { uint16_t d, m; uint8_t qh[4]; uint8_t qs[16]; };
#pragma pack(pop)
static_assert(sizeof(block_q8_0) == 34, "ggml layout");
static_assert(sizeof(block_q4_0) == 18, "ggml layout");
static_assert(sizeof(block_q4_1) == 20, "ggml layout");
static_assert(sizeof(block_q5_0) == 22, "ggml layout");
static_assert(sizeof(block_q5_1) == 24, "ggml layout");

inline bool is_block_quant(DType t) {
  return t == DType::Q8_0 || t == DType::Q4_0 || t == DType::Q4_1 || t == DType::Q5_0 || t == DType::Q5_1;
}

}  // namespace pyvitcpp
