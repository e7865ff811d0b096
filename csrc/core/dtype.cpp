#include "core/dtype.h"

#include <limits>

namespace pyvitcpp {

DTypeTraits dtype_traits(uint32_t t) {
  switch (t) {
    case 0: return {"f32", 1, 4, true};
    case 1: return {"f16", 1, 2, true};
    case 2: return {"q4_0", 32, 18, true};
    case 3: return {"q4_1", 32, 20, true};
    case 6: return {"q5_0", 32, 22, true};
    case 7: return {"q5_1", 32, 24, true};
    case 8: return {"q8_0", 32, 34, true};
    case 30: return {"bf16", 1, 2, true};
    default: return {"unknown", 0, 0, false};
  }
}

std::string dtype_name(uint32_t t) {
  DTypeTraits tr = dtype_traits(t);
  if (tr.known) return tr.name;
  return "ggml_type_" + std::to_string(t);
}

bool row_bytes(uint32_t t, int64_t n, size_t* out) {
  DTypeTraits tr = dtype_traits(t);
  if (!tr.known || n < 0 || n % tr.block_size != 0) return false;
  uint64_t blocks = static_cast<uint64_t>(n / tr.block_size);
  if (blocks > std::numeric_limits<size_t>::max() / tr.type_size) return false;
  *out = static_cast<size_t>(blocks * tr.type_size);
  return true;
}

}  // namespace pyvitcpp
