// AVX-512 (F/BW/DQ/VL) kernels for the non-GEMM ops: layer norm, softmax rows, activations and
// fused multi-head attention. Specification: kernels/ref/ops_ref.cpp. Same structure as the
// AVX2 twin, 16 lanes, tails through mask registers. Everything except the registration hook and
// act_inplace has internal linkage.
#include <immintrin.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/avx512/attention_avx512.h"
#include "kernels/avx512/vecmath_avx512.h"
#include "kernels/kernels.h"
#include "kernels/simd_act.h"

namespace pyvitcpp {
namespace avx512 {
namespace {

#include "kernels/split_range.h"  // split(): this thread's share of n items

// Lanes [0, n) set, for the n = 0..15 leftover elements of a row.
inline __mmask16 tail_mask(int64_t n) { return static_cast<__mmask16>((1u << n) - 1u); }

inline float hsum(__m512 v) { return _mm512_reduce_add_ps(v); }
inline float hmax(__m512 v) { return _mm512_reduce_max_ps(v); }

// ---------------------------------------------------------------------------------------------
// Activations

template <class F>
inline void map_act(const float* x, float* y, int64_t n, F f) {
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m512 a = f(_mm512_loadu_ps(x + i));
    __m512 b = f(_mm512_loadu_ps(x + i + 16));
    _mm512_storeu_ps(y + i, a);
    _mm512_storeu_ps(y + i + 16, b);
  }
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, f(_mm512_loadu_ps(x + i)));
  if (i < n) {
    __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(y + i, m, f(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

void act_apply(const float* x, float* y, int64_t n, Act act) {
  switch (act) {
    case Act::None:
      if (x != y && n > 0) std::memmove(y, x, static_cast<size_t>(n) * sizeof(float));
      return;
    case Act::GeluErf: map_act(x, y, n, [](__m512 v) { return vm::gelu_erf(v); }); return;
    case Act::GeluTanh: map_act(x, y, n, [](__m512 v) { return vm::gelu_tanh(v); }); return;
    case Act::QuickGelu: map_act(x, y, n, [](__m512 v) { return vm::quick_gelu(v); }); return;
    case Act::Tanh: map_act(x, y, n, [](__m512 v) { return vm::tanh(v); }); return;
    case Act::Relu:
      // max(0, x) rather than max(x, 0): NaN propagates (max returns its second operand on NaN).
      map_act(x, y, n, [](__m512 v) { return _mm512_max_ps(_mm512_setzero_ps(), v); });
      return;
    case Act::Relu6:
      map_act(x, y, n, [](__m512 v) { return _mm512_min_ps(_mm512_set1_ps(6.0f), _mm512_max_ps(_mm512_setzero_ps(), v)); });
      return;
    case Act::Silu: map_act(x, y, n, [](__m512 v) { return vm::silu(v); }); return;
    case Act::LeakyRelu:
      // max(0.01 x, x) is x for x >= 0 and 0.01 x below; NaN propagates (second operand).
      map_act(x, y, n, [](__m512 v) { return _mm512_max_ps(_mm512_mul_ps(_mm512_set1_ps(0.01f), v), v); });
      return;
    case Act::HardSwish: map_act(x, y, n, [](__m512 v) { return vm::hard_swish(v); }); return;
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
  const int64_t Dv = D & ~int64_t{15};
  const __mmask16 tm = tail_mask(D - Dv);
  const float invD = 1.0f / static_cast<float>(D);
  for (int64_t r = r0; r < r1; ++r) {
    const float* x = a.X + r * a.ldx;
    float* y = a.Y + r * a.ldy;
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int64_t i = 0;
    for (; i + 64 <= D; i += 64) {
      s0 = _mm512_add_ps(s0, _mm512_loadu_ps(x + i));
      s1 = _mm512_add_ps(s1, _mm512_loadu_ps(x + i + 16));
      s2 = _mm512_add_ps(s2, _mm512_loadu_ps(x + i + 32));
      s3 = _mm512_add_ps(s3, _mm512_loadu_ps(x + i + 48));
    }
    for (; i < Dv; i += 16) s0 = _mm512_add_ps(s0, _mm512_loadu_ps(x + i));
    if (Dv < D) s1 = _mm512_add_ps(s1, _mm512_maskz_loadu_ps(tm, x + Dv));
    const float mean = hsum(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3))) * invD;
    const __m512 vm = _mm512_set1_ps(mean);
    s0 = s1 = s2 = s3 = _mm512_setzero_ps();
    i = 0;
    for (; i + 64 <= D; i += 64) {
      __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(x + i), vm);
      __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(x + i + 16), vm);
      __m512 d2 = _mm512_sub_ps(_mm512_loadu_ps(x + i + 32), vm);
      __m512 d3 = _mm512_sub_ps(_mm512_loadu_ps(x + i + 48), vm);
      s0 = _mm512_fmadd_ps(d0, d0, s0);
      s1 = _mm512_fmadd_ps(d1, d1, s1);
      s2 = _mm512_fmadd_ps(d2, d2, s2);
      s3 = _mm512_fmadd_ps(d3, d3, s3);
    }
    for (; i < Dv; i += 16) {
      __m512 d = _mm512_sub_ps(_mm512_loadu_ps(x + i), vm);
      s0 = _mm512_fmadd_ps(d, d, s0);
    }
    if (Dv < D) {
      __m512 d = _mm512_maskz_sub_ps(tm, _mm512_maskz_loadu_ps(tm, x + Dv), vm);
      s1 = _mm512_fmadd_ps(d, d, s1);
    }
    const float var = hsum(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3))) * invD;
    const __m512 rstd = _mm512_set1_ps(1.0f / std::sqrt(var + a.eps));
    auto out = [&](__m512 xv, __m512 g, __m512 b) {
      __m512 v = _mm512_mul_ps(_mm512_sub_ps(xv, vm), rstd);
      if constexpr (kGamma && kBeta)
        return _mm512_fmadd_ps(v, g, b);
      else if constexpr (kGamma)
        return _mm512_mul_ps(v, g);
      else if constexpr (kBeta)
        return _mm512_add_ps(v, b);
      else
        return v;
    };
    const __m512 zero = _mm512_setzero_ps();
    for (i = 0; i < Dv; i += 16)
      _mm512_storeu_ps(y + i, out(_mm512_loadu_ps(x + i), kGamma ? _mm512_loadu_ps(a.gamma + i) : zero,
                                  kBeta ? _mm512_loadu_ps(a.beta + i) : zero));
    if (Dv < D)
      _mm512_mask_storeu_ps(y + Dv, tm,
                            out(_mm512_maskz_loadu_ps(tm, x + Dv), kGamma ? _mm512_maskz_loadu_ps(tm, a.gamma + Dv) : zero,
                                kBeta ? _mm512_maskz_loadu_ps(tm, a.beta + Dv) : zero));
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
  const int64_t nv = n & ~int64_t{15};
  const __mmask16 tm = tail_mask(n - nv);
  const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t r = r0; r < r1; ++r) {
    float* x = X + r * ld;
    __m512 m0 = ninf, m1 = ninf;
    int64_t i = 0;
    for (; i + 32 <= nv; i += 32) {
      m0 = _mm512_max_ps(m0, _mm512_loadu_ps(x + i));
      m1 = _mm512_max_ps(m1, _mm512_loadu_ps(x + i + 16));
    }
    for (; i < nv; i += 16) m0 = _mm512_max_ps(m0, _mm512_loadu_ps(x + i));
    if (nv < n) m1 = _mm512_max_ps(m1, _mm512_mask_loadu_ps(ninf, tm, x + nv));
    const __m512 mx = _mm512_set1_ps(hmax(_mm512_max_ps(m0, m1)));
    __m512 s0 = _mm512_setzero_ps(), s1 = s0;
    for (i = 0; i + 32 <= nv; i += 32) {
      __m512 e0 = vm::exp(_mm512_sub_ps(_mm512_loadu_ps(x + i), mx));
      __m512 e1 = vm::exp(_mm512_sub_ps(_mm512_loadu_ps(x + i + 16), mx));
      _mm512_storeu_ps(x + i, e0);
      _mm512_storeu_ps(x + i + 16, e1);
      s0 = _mm512_add_ps(s0, e0);
      s1 = _mm512_add_ps(s1, e1);
    }
    for (; i < nv; i += 16) {
      __m512 e = vm::exp(_mm512_sub_ps(_mm512_loadu_ps(x + i), mx));
      _mm512_storeu_ps(x + i, e);
      s0 = _mm512_add_ps(s0, e);
    }
    if (nv < n) {
      __m512 e = _mm512_maskz_mov_ps(tm, vm::exp(_mm512_sub_ps(_mm512_maskz_loadu_ps(tm, x + nv), mx)));
      _mm512_mask_storeu_ps(x + nv, tm, e);
      s1 = _mm512_add_ps(s1, e);
    }
    const __m512 inv = _mm512_set1_ps(1.0f / hsum(_mm512_add_ps(s0, s1)));
    for (i = 0; i < nv; i += 16) _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), inv));
    if (nv < n) _mm512_mask_storeu_ps(x + nv, tm, _mm512_mul_ps(_mm512_maskz_loadu_ps(tm, x + nv), inv));
  }
}

}  // namespace

void act_inplace(float* y, int64_t n, Act act) {
  if (act != Act::None) act_apply(y, y, n, act);
}

}  // namespace avx512

void register_ops_avx512(KernelTable& t) {
  t.layernorm = avx512::layernorm;
  t.softmax_rows = avx512::softmax_rows;
  t.activation = avx512::activation;
  t.attention_workspace = avx512::attn::attention_workspace;
  t.attention = avx512::attn::attention;
}

}  // namespace pyvitcpp
