// AVX-512 (F/BW/DQ/VL) kernels for the non-GEMM ops: layer norm, activations and fused multi-head
// attention. Specification: kernels/ref/ops_ref.cpp. Layer norm and the activations are the
// shared body kernels/norm_act_body.h over this level's vector traits (vec_avx512.h); attention
// is kernels/avx512/attention_avx512.h. Compiled with the avx512 flags only; everything except
// the registration hook and act_inplace has internal linkage.
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/avx512/attention_avx512.h"
#include "kernels/avx512/vec_avx512.h"
#include "kernels/kernels.h"
#include "kernels/simd_act.h"

namespace pyvitcpp {
namespace avx512 {
namespace {

#include "kernels/split_range.h"  // split(): this thread's share of n items
#include "kernels/norm_act_body.h"

}  // namespace

void act_inplace(float* y, int64_t n, Act act) {
  if (act != Act::None) act_apply(y, y, n, act);
}

}  // namespace avx512

void register_ops_avx512(KernelTable& t) {
  t.layernorm = avx512::layernorm;
  t.activation = avx512::activation;
  t.attention_workspace = avx512::attn::attention_workspace;
  t.attention = avx512::attn::attention;
}

}  // namespace pyvitcpp
