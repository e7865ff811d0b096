// Vector traits of the AVX-512 (F/BW/DQ/VL) level: the twin of kernels/avx2/vec_avx2.h (same
// names, same meaning, 16 lanes, partial vectors through mask registers) for the ISA-neutral
// kernel bodies (kernels/norm_act_body.h, kernels/conv_body.h, the attention driver).
//
// Only included by translation units compiled with the avx512 flags; VT sits in an unnamed
// namespace inside pyvitcpp::avx512 (internal linkage, the level's name on every function).
// The transcendental functions are this level's own vector math (vecmath_avx512.h: vscalefps for
// the exponent scaling, no separate small-|x| GELU path).
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "kernels/avx512/vecmath_avx512.h"

namespace pyvitcpp {
namespace avx512 {
namespace {  // NOLINT(google-build-namespaces): see the comment at the top

struct VT {
  using V = __m512;
  using M = __mmask16;  // lane mask of a partial vector
  static constexpr int W = 16;

  static V zero() { return _mm512_setzero_ps(); }
  static V set1(float x) { return _mm512_set1_ps(x); }
  static V loadu(const float* p) { return _mm512_loadu_ps(p); }
  static void storeu(float* p, V v) { _mm512_storeu_ps(p, v); }

  // Lanes [0, n) on, 0 <= n <= W.
  static M first(int64_t n) { return static_cast<__mmask16>((1u << n) - 1u); }
  static V load_m(const float* p, M m) { return _mm512_maskz_loadu_ps(m, p); }
  static void store_m(float* p, M m, V v) { _mm512_mask_storeu_ps(p, m, v); }
  static V load_n(const float* p, int64_t n) { return load_m(p, first(n)); }
  static void store_n(float* p, V v, int64_t n) { store_m(p, first(n), v); }
  static V keep(M m, V v) { return _mm512_maskz_mov_ps(m, v); }

  // Aligned load / store; lanes [0, n) from a, the rest from b.
  static V load(const float* p) { return _mm512_load_ps(p); }
  static void store(float* p, V v) { _mm512_store_ps(p, v); }
  static V blend_first(V a, V b, int64_t n) { return _mm512_mask_blend_ps(first(n), b, a); }

  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V div(V a, V b) { return _mm512_div_ps(a, b); }
  static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V max(V a, V b) { return _mm512_max_ps(a, b); }
  static V min(V a, V b) { return _mm512_min_ps(a, b); }
  static V max_nan(V acc, V v) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), _mm512_max_ps(v, acc), v);
  }

  static float reduce_add(V v) { return _mm512_reduce_add_ps(v); }
  static float reduce_max(V v) { return _mm512_reduce_max_ps(v); }

  // exp, exp2_neg, tanh, sigmoid and the activations: this level's vecmath_avx512.h.
#include "kernels/vecmath_traits.h"
};

}  // namespace
}  // namespace avx512
}  // namespace pyvitcpp
