// In-place activation over a contiguous row, per ISA level. The GEMM epilogue calls these on
// each finished output tile (while it is in L1); implemented in kernels/<isa>/ops_<isa>.cpp.
#pragma once
#include <cstdint>

#include "kernels/kernels.h"

namespace pyvitcpp {
namespace ref { void act_inplace(float* y, int64_t n, Act act); }
namespace avx2 { void act_inplace(float* y, int64_t n, Act act); }
namespace avx512 { void act_inplace(float* y, int64_t n, Act act); }
}  // namespace pyvitcpp
