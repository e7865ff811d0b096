// Vector traits of the AVX2+FMA level: what the ISA-neutral kernel bodies (kernels/norm_act_body.h,
// kernels/conv_body.h, and the attention driver kernels/attention_body.h + attention_terms.h)
// need from a vector of floats. The one traits header of this level.
//
// Only included by translation units compiled with -mavx2 -mfma -mf16c. VT sits in an unnamed
// namespace inside pyvitcpp::avx2: each TU has its own copy with internal linkage, under the
// level's name (tests/test_isa_isolation.py), like kernels/gemm_driver.h.
//
// The transcendental functions are this level's own vector math (vecmath_avx2.h), so a body that
// calls VT::gelu_erf gets the avx2 algorithm (here with its division-free path for |x| <= 3).
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "kernels/avx2/vecmath_avx2.h"

namespace pyvitcpp {
namespace avx2 {
namespace {  // NOLINT(google-build-namespaces): see the comment at the top

struct VT {
  using V = __m256;
  using M = __m256i;  // lane mask of a partial vector (all ones = lane on)
  static constexpr int W = 8;

  static V zero() { return _mm256_setzero_ps(); }
  static V set1(float x) { return _mm256_set1_ps(x); }
  static V loadu(const float* p) { return _mm256_loadu_ps(p); }
  static void storeu(float* p, V v) { _mm256_storeu_ps(p, v); }

  // Lanes [0, n) on, 0 <= n <= W.
  static M first(int64_t n) {
    alignas(32) static const int32_t src[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 8 - n));
  }
  // Masked load (lanes off read as 0, their memory is not touched) and store.
  static V load_m(const float* p, M m) { return _mm256_maskload_ps(p, m); }
  static void store_m(float* p, M m, V v) { _mm256_maskstore_ps(p, m, v); }
  static V load_n(const float* p, int64_t n) { return load_m(p, first(n)); }
  static void store_n(float* p, V v, int64_t n) { store_m(p, first(n), v); }
  // v with the lanes outside m set to 0.
  static V keep(M m, V v) { return _mm256_and_ps(v, _mm256_castsi256_ps(m)); }

  // Aligned load / store; lanes [0, n) from a, the rest from b.
  static V load(const float* p) { return _mm256_load_ps(p); }
  static void store(float* p, V v) { _mm256_store_ps(p, v); }
  static V blend_first(V a, V b, int64_t n) { return _mm256_blendv_ps(b, a, _mm256_castsi256_ps(first(n))); }

  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V div(V a, V b) { return _mm256_div_ps(a, b); }
  static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  // max / min return their SECOND operand when either is NaN (the x86 rule): write
  // max(const, x) to let a NaN in x through.
  static V max(V a, V b) { return _mm256_max_ps(a, b); }
  static V min(V a, V b) { return _mm256_min_ps(a, b); }
  // max(acc, v) where a NaN in either one wins (max pooling).
  static V max_nan(V acc, V v) {
    return _mm256_blendv_ps(_mm256_max_ps(v, acc), v, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  }

  static float reduce_add(V v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static float reduce_max(V v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }

  // exp, exp2_neg, tanh, sigmoid and the activations: this level's vecmath_avx2.h.
#include "kernels/vecmath_traits.h"
};

}  // namespace
}  // namespace avx2
}  // namespace pyvitcpp
