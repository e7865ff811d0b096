// AVX2+FMA kernels for the non-GEMM ops: layer norm, softmax rows, activations and fused
// multi-head attention. Specification: kernels/ref/ops_ref.cpp. Compiled with -mavx2 -mfma
// -mf16c only; everything except the registration hook and act_inplace has internal linkage.
#include <immintrin.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/avx2/attention_avx2.h"
#include "kernels/avx2/vecmath_avx2.h"
#include "kernels/kernels.h"
#include "kernels/simd_act.h"

namespace pyvitcpp {
namespace avx2 {
namespace {

#include "kernels/split_range.h"  // split(): this thread's share of n items

// Lanes [0, n) set, for the n = 1..7 leftover elements of a row.
inline __m256i tail_mask(int64_t n) {
  alignas(32) static const int32_t m[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(m + 8 - n));
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// ---------------------------------------------------------------------------------------------
// Activations

template <class F>
inline void map_act(const float* x, float* y, int64_t n, F f) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256 a = f(_mm256_loadu_ps(x + i));
    __m256 b = f(_mm256_loadu_ps(x + i + 8));
    _mm256_storeu_ps(y + i, a);
    _mm256_storeu_ps(y + i + 8, b);
  }
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, f(_mm256_loadu_ps(x + i)));
  if (i < n) {
    __m256i m = tail_mask(n - i);
    _mm256_maskstore_ps(y + i, m, f(_mm256_maskload_ps(x + i, m)));
  }
}

void act_apply(const float* x, float* y, int64_t n, Act act) {
  switch (act) {
    case Act::None:
      if (x != y && n > 0) std::memmove(y, x, static_cast<size_t>(n) * sizeof(float));
      return;
    case Act::GeluErf: map_act(x, y, n, [](__m256 v) { return vm::gelu_erf(v); }); return;
    case Act::GeluTanh: map_act(x, y, n, [](__m256 v) { return vm::gelu_tanh(v); }); return;
    case Act::QuickGelu: map_act(x, y, n, [](__m256 v) { return vm::quick_gelu(v); }); return;
    case Act::Tanh: map_act(x, y, n, [](__m256 v) { return vm::tanh(v); }); return;
    case Act::Relu:
      // max(0, x) rather than max(x, 0): NaN propagates (max returns its second operand on NaN).
      map_act(x, y, n, [](__m256 v) { return _mm256_max_ps(_mm256_setzero_ps(), v); });
      return;
    case Act::Relu6:
      map_act(x, y, n, [](__m256 v) { return _mm256_min_ps(_mm256_set1_ps(6.0f), _mm256_max_ps(_mm256_setzero_ps(), v)); });
      return;
    case Act::Silu: map_act(x, y, n, [](__m256 v) { return vm::silu(v); }); return;
    case Act::LeakyRelu:
      // max(0.01 x, x) is x for x >= 0 and 0.01 x below; NaN propagates (second operand).
      map_act(x, y, n, [](__m256 v) { return _mm256_max_ps(_mm256_mul_ps(_mm256_set1_ps(0.01f), v), v); });
      return;
    case Act::HardSwish: map_act(x, y, n, [](__m256 v) { return vm::hard_swish(v); }); return;
  }
}

void activation(const float* X, float* Y, int64_t n, Act act, int ith, int nth) {
  // Split on 16-element (cache-line) boundaries so threads never share a line of Y.
  const int64_t blocks = (n + 15) / 16;
  int64_t b, e;
  split(blocks, ith, nth, &b, &e);
  b *= 16;
  e = e * 16 < n ? e * 16 : n;
  if (b < e) act_apply(X + b, Y + b, e - b, act);
}

// ---------------------------------------------------------------------------------------------
// Layer norm: two passes in fp32 (mean, then sum of squared deviations), like the reference.

template <bool kGamma, bool kBeta>
void layernorm_rows(const LayerNormArgs& a, int64_t r0, int64_t r1) {
  const int64_t D = a.D;
  const int64_t Dv = D & ~int64_t{7};
  const __m256i tm = tail_mask(D - Dv < 8 ? (D - Dv) : 0);
  const float invD = 1.0f / static_cast<float>(D);
  for (int64_t r = r0; r < r1; ++r) {
    const float* x = a.X + r * a.ldx;
    float* y = a.Y + r * a.ldy;
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int64_t i = 0;
    for (; i + 32 <= D; i += 32) {
      s0 = _mm256_add_ps(s0, _mm256_loadu_ps(x + i));
      s1 = _mm256_add_ps(s1, _mm256_loadu_ps(x + i + 8));
      s2 = _mm256_add_ps(s2, _mm256_loadu_ps(x + i + 16));
      s3 = _mm256_add_ps(s3, _mm256_loadu_ps(x + i + 24));
    }
    for (; i < Dv; i += 8) s0 = _mm256_add_ps(s0, _mm256_loadu_ps(x + i));
    if (Dv < D) s1 = _mm256_add_ps(s1, _mm256_maskload_ps(x + Dv, tm));
    const float mean = hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3))) * invD;
    const __m256 vm = _mm256_set1_ps(mean);
    s0 = s1 = s2 = s3 = _mm256_setzero_ps();
    i = 0;
    for (; i + 32 <= D; i += 32) {
      __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(x + i), vm);
      __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 8), vm);
      __m256 d2 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 16), vm);
      __m256 d3 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 24), vm);
      s0 = _mm256_fmadd_ps(d0, d0, s0);
      s1 = _mm256_fmadd_ps(d1, d1, s1);
      s2 = _mm256_fmadd_ps(d2, d2, s2);
      s3 = _mm256_fmadd_ps(d3, d3, s3);
    }
    for (; i < Dv; i += 8) {
      __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + i), vm);
      s0 = _mm256_fmadd_ps(d, d, s0);
    }
    if (Dv < D) {
      __m256 d = _mm256_and_ps(_mm256_sub_ps(_mm256_maskload_ps(x + Dv, tm), vm), _mm256_castsi256_ps(tm));
      s1 = _mm256_fmadd_ps(d, d, s1);
    }
    const float var = hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3))) * invD;
    const __m256 rstd = _mm256_set1_ps(1.0f / std::sqrt(var + a.eps));
    auto out = [&](int64_t j, __m256 xv) {
      __m256 v = _mm256_mul_ps(_mm256_sub_ps(xv, vm), rstd);
      if constexpr (kGamma && kBeta)
        return _mm256_fmadd_ps(v, _mm256_loadu_ps(a.gamma + j), _mm256_loadu_ps(a.beta + j));
      else if constexpr (kGamma)
        return _mm256_mul_ps(v, _mm256_loadu_ps(a.gamma + j));
      else if constexpr (kBeta)
        return _mm256_add_ps(v, _mm256_loadu_ps(a.beta + j));
      else
        return v;
    };
    for (i = 0; i < Dv; i += 8) _mm256_storeu_ps(y + i, out(i, _mm256_loadu_ps(x + i)));
    if (Dv < D) {
      __m256 v = _mm256_mul_ps(_mm256_sub_ps(_mm256_maskload_ps(x + Dv, tm), vm), rstd);
      if constexpr (kGamma && kBeta)
        v = _mm256_fmadd_ps(v, _mm256_maskload_ps(a.gamma + Dv, tm), _mm256_maskload_ps(a.beta + Dv, tm));
      else if constexpr (kGamma)
        v = _mm256_mul_ps(v, _mm256_maskload_ps(a.gamma + Dv, tm));
      else if constexpr (kBeta)
        v = _mm256_add_ps(v, _mm256_maskload_ps(a.beta + Dv, tm));
      _mm256_maskstore_ps(y + Dv, tm, v);
    }
  }
}

void layernorm(const LayerNormArgs& a, int ith, int nth) {
  int64_t r0, r1;
  split(a.rows, ith, nth, &r0, &r1);
  if (r0 >= r1 || a.D <= 0) return;
  if (a.gamma && a.beta) layernorm_rows<true, true>(a, r0, r1);
  else if (a.gamma) layernorm_rows<true, false>(a, r0, r1);
  else if (a.beta) layernorm_rows<false, true>(a, r0, r1);
  else layernorm_rows<false, false>(a, r0, r1);
}

// ---------------------------------------------------------------------------------------------
// Softmax over rows, in place: max, exp(x - max) and its sum, scale.

void softmax_rows(float* X, int64_t rows, int64_t n, int64_t ld, int ith, int nth) {
  int64_t r0, r1;
  split(rows, ith, nth, &r0, &r1);
  if (n <= 0) return;
  const int64_t nv = n & ~int64_t{7};
  const __m256i tm = tail_mask(n - nv < 8 ? n - nv : 0);
  const __m256 ninf = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t r = r0; r < r1; ++r) {
    float* x = X + r * ld;
    __m256 m0 = ninf, m1 = ninf;
    int64_t i = 0;
    for (; i + 16 <= nv; i += 16) {
      m0 = _mm256_max_ps(m0, _mm256_loadu_ps(x + i));
      m1 = _mm256_max_ps(m1, _mm256_loadu_ps(x + i + 8));
    }
    for (; i < nv; i += 8) m0 = _mm256_max_ps(m0, _mm256_loadu_ps(x + i));
    if (nv < n) m1 = _mm256_max_ps(m1, _mm256_blendv_ps(ninf, _mm256_maskload_ps(x + nv, tm), _mm256_castsi256_ps(tm)));
    const __m256 mx = _mm256_set1_ps(hmax(_mm256_max_ps(m0, m1)));
    __m256 s0 = _mm256_setzero_ps(), s1 = s0;
    for (i = 0; i + 16 <= nv; i += 16) {
      __m256 e0 = vm::exp(_mm256_sub_ps(_mm256_loadu_ps(x + i), mx));
      __m256 e1 = vm::exp(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), mx));
      _mm256_storeu_ps(x + i, e0);
      _mm256_storeu_ps(x + i + 8, e1);
      s0 = _mm256_add_ps(s0, e0);
      s1 = _mm256_add_ps(s1, e1);
    }
    for (; i < nv; i += 8) {
      __m256 e = vm::exp(_mm256_sub_ps(_mm256_loadu_ps(x + i), mx));
      _mm256_storeu_ps(x + i, e);
      s0 = _mm256_add_ps(s0, e);
    }
    if (nv < n) {
      __m256 e = _mm256_and_ps(vm::exp(_mm256_sub_ps(_mm256_maskload_ps(x + nv, tm), mx)), _mm256_castsi256_ps(tm));
      _mm256_maskstore_ps(x + nv, tm, e);
      s1 = _mm256_add_ps(s1, e);
    }
    const __m256 inv = _mm256_set1_ps(1.0f / hsum(_mm256_add_ps(s0, s1)));
    for (i = 0; i < nv; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
    if (nv < n) _mm256_maskstore_ps(x + nv, tm, _mm256_mul_ps(_mm256_maskload_ps(x + nv, tm), inv));
  }
}

}  // namespace

void act_inplace(float* y, int64_t n, Act act) {
  if (act != Act::None) act_apply(y, y, n, act);
}

}  // namespace avx2

void register_ops_avx2(KernelTable& t) {
  t.layernorm = avx2::layernorm;
  t.softmax_rows = avx2::softmax_rows;
  t.activation = avx2::activation;
  t.attention_workspace = avx2::attn::attention_workspace;
  t.attention = avx2::attn::attention;
}

}  // namespace pyvitcpp
