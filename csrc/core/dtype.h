// Element types, numbered exactly as ggml numbers them (so GGUF tensor infos map 1:1).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace pyvitcpp {

enum class DType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  BF16 = 30,
};

struct DTypeTraits {
  const char* name;
  int64_t block_size;   // elements per block (1 for plain types)
  size_t type_size;     // bytes per block
  bool known;           // false: a ggml type id we cannot compute with (or size)
};

// Traits for any ggml type id; unknown ids return known=false and name "unknown".
DTypeTraits dtype_traits(uint32_t ggml_type);
inline DTypeTraits dtype_traits(DType t) { return dtype_traits(static_cast<uint32_t>(t)); }
std::string dtype_name(uint32_t ggml_type);

// Bytes of one row of n elements; returns false if n is not a multiple of the block size
// or the type is unknown. Overflow-safe (returns false on overflow).
bool row_bytes(uint32_t ggml_type, int64_t n, size_t* out);

}  // namespace pyvitcpp
