// PLACEHOLDER: the avx512 non-GEMM kernels are not written yet; the table keeps the level below's.
#include "kernels/kernels.h"
#include "kernels/simd_act.h"

namespace pyvitcpp {
namespace avx512 {
void act_inplace(float* y, int64_t n, Act act) { ref::act_inplace(y, n, act); }
}  // namespace avx512
void register_ops_avx512(KernelTable&) {}
}  // namespace pyvitcpp
