// PLACEHOLDER: the avx2 non-GEMM kernels are not written yet; the table keeps the level below's.
#include "kernels/kernels.h"
#include "kernels/simd_act.h"

namespace pyvitcpp {
namespace avx2 {
void act_inplace(float* y, int64_t n, Act act) { ref::act_inplace(y, n, act); }
}  // namespace avx2
void register_ops_avx2(KernelTable&) {}
}  // namespace pyvitcpp
