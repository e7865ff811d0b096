// PLACEHOLDER: the avx512 GEMM is not written yet; the table keeps the level below's GEMM.
#include "kernels/kernels.h"

namespace pyvitcpp {
void register_gemm_avx512(KernelTable&) {}
}  // namespace pyvitcpp
