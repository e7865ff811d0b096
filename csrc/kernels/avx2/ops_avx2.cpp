// AVX2+FMA kernels for the non-GEMM ops: layer norm, activations and fused multi-head
// attention. Specification: kernels/ref/ops_ref.cpp. Layer norm and the activations are the
// shared body kernels/norm_act_body.h over this level's vector traits (vec_avx2.h); attention
// is kernels/avx2/attention_avx2.h. Compiled with -mavx2 -mfma -mf16c only; everything except
// the registration hook and act_inplace has internal linkage.
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/avx2/attention_avx2.h"
#include "kernels/avx2/vec_avx2.h"
#include "kernels/kernels.h"
#include "kernels/simd_act.h"

namespace pyvitcpp {
namespace avx2 {
namespace {

#include "kernels/split_range.h"  // split(): this thread's share of n items
#include "kernels/norm_act_body.h"

}  // namespace

void act_inplace(float* y, int64_t n, Act act) {
  if (act != Act::None) act_apply(y, y, n, act);
}

}  // namespace avx2

void register_ops_avx2(KernelTable& t) {
  t.layernorm = avx2::layernorm;
  t.activation = avx2::activation;
  t.attention_workspace = avx2::attn::attention_workspace;
  t.attention = avx2::attn::attention;
}

}  // namespace pyvitcpp
