// Reference GEMM: the specification. Reads the weight as stored (no packing), accumulates
// each output in fp32 in increasing k order, then bias, activation, residual.
#include <cstring>
#include <vector>

#include "core/fp16.h"
#include "kernels/kernels.h"
#include "kernels/ref/act_ref.h"

namespace pyvitcpp {
namespace ref {

namespace {

size_t gemm_pack_size(DType, int64_t, int64_t) { return 0; }
void gemm_pack(const void*, DType, int64_t, int64_t, void*) {}

inline float weight_at(const GemmArgs& a, int64_t n, int64_t k) {
  if (a.wtype == DType::F16)
    return fp16_to_fp32(static_cast<const uint16_t*>(a.W_raw)[n * a.K + k]);
  return static_cast<const float*>(a.W_raw)[n * a.K + k];
}

void gemm(const GemmArgs& a, int ith, int nth) {
  const int64_t m0 = a.M * ith / nth, m1 = a.M * (ith + 1) / nth;
  const bool gathered = a.conv || a.cat;
  std::vector<float> row(gathered ? static_cast<size_t>(a.K) : 0);  // a gathered row of X
  for (int64_t m = m0; m < m1; ++m) {
    const float* x = row.data();
    if (gathered) gemm_gather_row(a, m, 0, a.K, row.data());
    else x = a.X + m * a.ldx;
    float* y = a.Y + m * a.ldy;
    for (int64_t n = 0; n < a.N; ++n) {
      float acc = 0.0f;
      for (int64_t k = 0; k < a.K; ++k) acc += x[k] * weight_at(a, n, k);
      if (a.bias) acc += a.bias[n];
      acc = act_scalar(acc, a.act);
      if (a.residual) acc += a.residual[m * a.ldr + n];
      y[n] = a.relu_out ? act_scalar(acc, Act::Relu) : acc;
    }
  }
}

}  // namespace
}  // namespace ref

void register_gemm_ref(KernelTable& t) {
  t.gemm_pack_size = ref::gemm_pack_size;
  t.gemm_pack = ref::gemm_pack;
  t.gemm = ref::gemm;
  t.gemm_pack_nr = 0;
}

}  // namespace pyvitcpp
