// Vector math for the AVX-512 (F/DQ) level: exp, exp2 (softmax), tanh, sigmoid and the activations.
// Only included by translation units compiled with the AVX-512 flags. Everything here has
// internal linkage (static inline) so no AVX-512 code can be picked by the linker for another TU.
//
// NaN handling: _mm512_min_ps / _mm512_max_ps return their *second* operand when either is NaN,
// so clamps are written clamp(const, x) to let NaN through; blends that replace results for large
// |x| test with ordered compares, which are false for NaN.
//
// Accuracy, measured against float64 evaluations of the same formulas (same float32 constants)
// on 7.5M floats (every 97th float of magnitude 1e-30..1e4, both signs), max relative error
// where |result| >= FLT_MIN (below it: gradual denormals, abs err < 1.5e-43):
//   GELU erf   4.4e-7 (erfc-based: no 1 + erf cancellation; the ref has ~100% there, x < -5)
//   GELU tanh  2.2e-7 (x * sigmoid(2u) form with a compensated argument)
//   quick-GELU 2.2e-7 (x * sigmoid(1.702 x), compensated 1.702 x)
//   tanh       1.3e-7
//   exp        softmax([0, t]) for t in [-87, 0] is within 1.9e-7 (the ref's std::exp: 1.9e-7)
// exp overflows to +inf above 88.72 and underflows gradually to 0 below -87.3; GELUs of -inf
// are -0, of +inf are +inf; NaN propagates through every function.
// tests/test_kernels_ops.py::test_vecmath_accuracy and test_exp_accuracy_via_softmax re-check.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace pyvitcpp {
namespace avx512 {
namespace vm {

static inline __m512 set1(float v) { return _mm512_set1_ps(v); }

// e^r for r in [-ln2/2, ln2/2]: 1 + r + r^2 P(r), degree 6 minimax (rel err 4.4e-9 in exact
// arithmetic, coefficients fitted by Lawson's algorithm).
static inline __m512 exp_reduced(__m512 r) {
  __m512 p = set1(0.0013950478751212358f);
  p = _mm512_fmadd_ps(p, r, set1(0.008368882350623608f));
  p = _mm512_fmadd_ps(p, r, set1(0.04166620597243309f));
  p = _mm512_fmadd_ps(p, r, set1(0.1666651964187622f));
  p = _mm512_fmadd_ps(p, r, set1(0.5f));
  __m512 r2 = _mm512_mul_ps(r, r);
  return _mm512_add_ps(_mm512_fmadd_ps(r2, p, r), set1(1.0f));
}

// e^(hi + lo), |lo| << |hi|: the argument carries more than float precision, which the GELU
// tails need (there e^-z^2 has z^2 ~ 80 and one rounding of z^2 is a 5e-6 relative error).
// Full range: +inf above ~88.72, gradual underflow to 0 below ~-87.3, NaN propagates.
// Returns m * e^(hi + lo); m is applied before the final scaling so that a result in the
// denormal range is rounded once (x * e^-90 keeps its accuracy where e^-90 alone would not).
static inline __m512 exp2part_mul(__m512 hi, __m512 lo, __m512 m) {
  hi = _mm512_min_ps(set1(89.0f), hi);
  hi = _mm512_max_ps(set1(-104.0f), hi);
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(hi, set1(1.44269504088896341f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  // Cody-Waite: ln2_hi has 9 significant bits so n * ln2_hi is exact for |n| < 2^15.
  __m512 r = _mm512_fnmadd_ps(n, set1(0.693359375f), hi);
  r = _mm512_fnmadd_ps(n, set1(-2.12194440e-4f), r);
  r = _mm512_add_ps(r, lo);
  __m512 y = exp_reduced(r);
  // vscalefps: y * 2^n with correct overflow to inf and gradual underflow.
  return _mm512_scalef_ps(_mm512_mul_ps(y, m), n);
}

static inline __m512 exp2part(__m512 hi, __m512 lo) { return exp2part_mul(hi, lo, set1(1.0f)); }

// Both e^(hi + lo) and m * e^(hi + lo) (m applied before the scaling, see exp2part_mul) from one
// argument reduction.
static inline void exp2part_pair(__m512 hi, __m512 lo, __m512 m, __m512* e, __m512* em) {
  hi = _mm512_min_ps(set1(89.0f), hi);
  hi = _mm512_max_ps(set1(-104.0f), hi);
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(hi, set1(1.44269504088896341f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, set1(0.693359375f), hi);
  r = _mm512_fnmadd_ps(n, set1(-2.12194440e-4f), r);
  __m512 y = exp_reduced(_mm512_add_ps(r, lo));
  *e = _mm512_scalef_ps(y, n);
  *em = _mm512_scalef_ps(_mm512_mul_ps(y, m), n);
}

static inline __m512 exp(__m512 x) { return exp2part(x, _mm512_setzero_ps()); }

// 2^x for x <= 0 (softmax after max subtraction): degree-5 minimax for 2^f on [-1/2, 1/2]
// (rel err 1.3e-7). Arguments below -126 (-inf too) give exactly 0, never a denormal: a
// denormal P (Swin's -100 window mask puts scores ~144 below the row's maximum) makes every FMA
// of P.V that reads or writes one take a microcode assist (the masked blocks ran 1.5x slower).
// The reference gives < 2^-126 there, nothing next to the row's maximum term 1. NaN propagates.
static inline __m512 exp2_neg(__m512 x) {
  const __mmask16 tiny = _mm512_cmp_ps_mask(x, set1(-126.0f), _CMP_LT_OQ);
  x = _mm512_max_ps(set1(-126.0f), x);
  __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 f = _mm512_sub_ps(x, n);
  __m512 p = set1(0.0013407259248197079f);
  p = _mm512_fmadd_ps(p, f, set1(0.009671875275671482f));
  p = _mm512_fmadd_ps(p, f, set1(0.055503085255622864f));
  p = _mm512_fmadd_ps(p, f, set1(0.24022234976291656f));
  p = _mm512_fmadd_ps(p, f, set1(0.6931472420692444f));
  p = _mm512_fmadd_ps(p, f, set1(1.0f));
  return _mm512_maskz_scalef_ps(static_cast<__mmask16>(~tiny), p, n);
}

static inline __m512 abs(__m512 x) { return _mm512_andnot_ps(set1(-0.0f), x); }

// tanh: odd minimax polynomial (degree 11) for |x| < 0.625, else 1 - 2 / (e^{2|x|} + 1).
static inline __m512 tanh(__m512 x) {
  const __m512 sign = set1(-0.0f);
  __m512 ax = _mm512_andnot_ps(sign, x);
  __m512 x2 = _mm512_mul_ps(x, x);
  __m512 p = set1(-0.005577906500548124f);
  p = _mm512_fmadd_ps(p, x2, set1(0.020510196685791016f));
  p = _mm512_fmadd_ps(p, x2, set1(-0.053693659603595734f));
  p = _mm512_fmadd_ps(p, x2, set1(0.13330769538879395f));
  p = _mm512_fmadd_ps(p, x2, set1(-0.33333247900009155f));
  __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(x, x2), p, x);
  __m512 e = exp(_mm512_add_ps(ax, ax));
  __m512 big = _mm512_sub_ps(set1(1.0f), _mm512_div_ps(set1(2.0f), _mm512_add_ps(e, set1(1.0f))));
  big = _mm512_or_ps(big, _mm512_and_ps(sign, x));
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(ax, set1(0.625f), _CMP_LT_OQ), big, small);
}

// x / (1 + e^(hi + lo)) without overflow: with E = e^-|arg| (<= 1) this is x E / (1 + E) for
// arg > 0 and x / (1 + E) otherwise, so the negative tails underflow gradually instead of
// hitting e^arg = inf early.
static inline __m512 x_over_1_plus_exp(__m512 x, __m512 hi, __m512 lo) {
  const __m512 sign = set1(-0.0f);
  __m512 flip = _mm512_andnot_ps(hi, sign);  // sign bit set where hi >= 0
  __m512 nh = _mm512_xor_ps(hi, flip), nl = _mm512_xor_ps(lo, flip);
  __m512 e, xe;
  exp2part_pair(nh, nl, x, &e, &xe);
  __m512 num = _mm512_mask_blend_ps(_mm512_movepi32_mask(_mm512_castps_si512(flip)), x, xe);
  return _mm512_div_ps(num, _mm512_add_ps(set1(1.0f), e));
}

static inline __m512 sigmoid(__m512 x) {
  return x_over_1_plus_exp(set1(1.0f), _mm512_sub_ps(_mm512_setzero_ps(), x), _mm512_setzero_ps());
}

// x * sigmoid(1.702 x) = x / (1 + e^{-1.702x}); the product 1.702x is carried as hi+lo.
static inline __m512 quick_gelu(__m512 x) {
  const __m512 c = set1(-1.702f);
  __m512 hi = _mm512_mul_ps(c, x);
  __m512 lo = _mm512_fmsub_ps(c, x, hi);
  __m512 y = x_over_1_plus_exp(x, hi, lo);
  // Beyond these the float result is exactly x resp. -0 (and +-inf would make lo NaN).
  y = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, set1(100.0f), _CMP_GT_OQ), y, x);
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, set1(-200.0f), _CMP_LT_OQ), y, set1(-0.0f));
}

// x * sigmoid(x) = x / (1 + E) for x >= 0 and x E / (1 + E) for x < 0, E = e^-|x| (<= 1, no
// overflow): x_over_1_plus_exp's formula with its argument known to be -|x| (exact, no low
// part), so one reduction of -|x| and no sign flips; x E is scaled once, as exp2part_mul does
// (the negative tail keeps its accuracy into the denormal range). x > 100 needs no special
// case: E is then below 2^-144 and 1 + E rounds to 1. SiLU is the epilogue of every YOLOv8 /
// YOLO11 conv, where it cost as much as the FMAs of a 1x1 conv over 32 channels.
static inline __m512 silu(__m512 x) {
  // -|x| clamped at -104 (constant first: a NaN x stays NaN).
  const __m512 a = _mm512_max_ps(set1(-104.0f), _mm512_or_ps(x, set1(-0.0f)));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(a, set1(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, set1(0.693359375f), a);
  r = _mm512_fnmadd_ps(n, set1(-2.12194440e-4f), r);
  const __m512 p = exp_reduced(r);
  const __m512 e = _mm512_scalef_ps(p, n);
  const __mmask16 neg = _mm512_movepi32_mask(_mm512_castps_si512(x));
  const __m512 num = _mm512_mask_blend_ps(neg, x, _mm512_scalef_ps(_mm512_mul_ps(p, x), n));
  const __m512 y = _mm512_div_ps(num, _mm512_add_ps(set1(1.0f), e));
  // Finite x below -200 gives -0, -inf gives NaN (x * 0), as PyTorch's x * sigmoid(x) does.
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, set1(-200.0f), _CMP_LT_OQ), y, _mm512_mul_ps(x, _mm512_setzero_ps()));
}

// x * clamp(x + 3, 0, 6) / 6 in PyTorch's operation order (a true division, not * (1/6)).
static inline __m512 hard_swish(__m512 x) {
  __m512 c = _mm512_min_ps(set1(6.0f), _mm512_max_ps(_mm512_setzero_ps(), _mm512_add_ps(x, set1(3.0f))));
  return _mm512_div_ps(_mm512_mul_ps(x, c), set1(6.0f));
}

// 0.5 x (1 + erf(x / sqrt2)) = x * (1 - E) for x >= 0, x * E for x < 0, with
// E = erfc(|x| / sqrt2) / 2 from the Numerical Recipes erfcc fit (relative error < 1.2e-7):
//   erfc(z) = t exp(-z^2 + P(t)),  t = 1 / (1 + z/2).
// -z^2 = -x^2/2 is formed exactly (hi + lo via FMA), so the tails keep full relative accuracy.
static inline __m512 gelu_erf_full(__m512 x) {
  const __m512 one = set1(1.0f);
  __m512 z = _mm512_mul_ps(abs(x), set1(0.70710678118654752f));
  __m512 t = _mm512_div_ps(one, _mm512_fmadd_ps(set1(0.5f), z, one));
  __m512 p = set1(0.17087277f);
  p = _mm512_fmadd_ps(p, t, set1(-0.82215223f));
  p = _mm512_fmadd_ps(p, t, set1(1.48851587f));
  p = _mm512_fmadd_ps(p, t, set1(-1.13520398f));
  p = _mm512_fmadd_ps(p, t, set1(0.27886807f));
  p = _mm512_fmadd_ps(p, t, set1(-0.18628806f));
  p = _mm512_fmadd_ps(p, t, set1(0.09678418f));
  p = _mm512_fmadd_ps(p, t, set1(0.37409196f));
  p = _mm512_fmadd_ps(p, t, set1(1.00002368f));
  p = _mm512_fmadd_ps(p, t, set1(-1.26551223f));
  // z^2 = x^2 / 2 = z2h + z2l exactly (the halving is exact).
  const __m512 half = set1(0.5f);
  __m512 xx = _mm512_mul_ps(x, x);
  __m512 z2h = _mm512_mul_ps(xx, half);
  __m512 z2l = _mm512_mul_ps(_mm512_fmsub_ps(x, x, xx), half);
  // arg = P - z2h - z2l as hi + lo (Fast2Sum, |z2h| dominates whenever the error matters).
  __m512 s = _mm512_sub_ps(p, z2l);
  __m512 ah = _mm512_sub_ps(s, z2h);
  __m512 al = _mm512_sub_ps(s, _mm512_add_ps(ah, z2h));
  __m512 ht = _mm512_mul_ps(half, t);
  // One exponential: em = (x t/2) e^arg for x < 0 (one rounding into the denormal range),
  // (t/2) e^arg otherwise.
  __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
  __m512 em = exp2part_mul(ah, al, _mm512_mask_blend_ps(neg, ht, _mm512_mul_ps(x, ht)));
  __m512 y = _mm512_mask_blend_ps(neg, _mm512_fnmadd_ps(x, em, x), em);
  // Beyond these the float result is exactly x resp. -0 (and inf * 0 would make NaN).
  y = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, set1(10.0f), _CMP_GT_OQ), y, x);
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, set1(-20.0f), _CMP_LT_OQ), y, set1(-0.0f));
}

// gelu_erf for |x| <= 3 (the bulk of real activations), without a division: the avx2 level's
// gelu_erf_small (vecmath_avx2.h has the derivation), E = e^(-x^2/2) R(|x|) with R a degree-11
// polynomial in s = 2|x|/3 - 1 and -x^2/2 carried as hi + lo. The full path's division and
// range handling made DeiT's fc1 + GELU run at 80% of the plain GEMM's rate.
static inline __m512 gelu_erf_small(__m512 x) {
  __m512 s = _mm512_fmsub_ps(abs(x), set1(0.6666666865348816f), set1(1.0f));
  __m512 s2 = _mm512_mul_ps(s, s);
  __m512 p0 = _mm512_fmadd_ps(set1(-0.13540691137313843f), s, set1(0.20578065514564514f));
  __m512 p1 = _mm512_fmadd_ps(set1(-0.04217776656150818f), s, set1(0.07917127013206482f));
  __m512 p2 = _mm512_fmadd_ps(set1(-0.009611313231289387f), s, set1(0.020799769088625908f));
  __m512 p3 = _mm512_fmadd_ps(set1(-0.0017586529720574617f), s, set1(0.004232179839164019f));
  __m512 p4 = _mm512_fmadd_ps(set1(-0.0002358232595724985f), s, set1(0.0006296624196693301f));
  __m512 p5 = _mm512_fmadd_ps(set1(-5.2565650548785925e-05f), s, set1(0.0001434408186469227f));
  __m512 s4 = _mm512_mul_ps(s2, s2);
  __m512 q0 = _mm512_fmadd_ps(p1, s2, p0);
  __m512 q1 = _mm512_fmadd_ps(p3, s2, p2);
  __m512 q2 = _mm512_fmadd_ps(p5, s2, p4);
  __m512 s8 = _mm512_mul_ps(s4, s4);
  __m512 R = _mm512_fmadd_ps(q2, s8, _mm512_fmadd_ps(q1, s4, q0));
  // e^(h + l), h + l = -x^2/2 exactly; n = round(h log2 e) in [-7, 0].
  const __m512 mhalf = set1(-0.5f);
  __m512 xx = _mm512_mul_ps(x, x);
  __m512 h = _mm512_mul_ps(xx, mhalf);
  __m512 l = _mm512_mul_ps(_mm512_fmsub_ps(x, x, xx), mhalf);
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(h, set1(1.44269504088896341f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_add_ps(_mm512_fnmadd_ps(n, set1(0.693359375f), h), _mm512_fnmadd_ps(n, set1(-2.12194440e-4f), l));
  __m512 E = _mm512_mul_ps(_mm512_scalef_ps(exp_reduced(r), n), R);
  // x E for x < 0, x (1 - E) = x - x E otherwise (one rounding each).
  const __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
  return _mm512_mask_blend_ps(neg, _mm512_fnmadd_ps(x, E, x), _mm512_mul_ps(x, E));
}

static inline __m512 gelu_erf(__m512 x) {
  // Ordered compare: NaN lanes take the full path (which propagates them).
  if (_mm512_cmp_ps_mask(abs(x), set1(3.0f), _CMP_LE_OQ) == 0xFFFF) return gelu_erf_small(x);
  return gelu_erf_full(x);
}

// 0.5 x (1 + tanh(u)) = x / (1 + e^{-2u}), u = k (x + 0.044715 x^3): no 1+tanh cancellation.
// -2u is accumulated in double-float (hi + lo) so that its rounding (|2u| ulps) does not become
// a relative error of the tail.
static inline __m512 gelu_tanh(__m512 x) {
  const __m512 k = set1(-2.0f * 0.79788456080286536f);  // -2k, exact doubling of the float k
  const __m512 c = set1(0.044715f);
  __m512 xx = _mm512_mul_ps(x, x);
  __m512 xxl = _mm512_fmsub_ps(x, x, xx);
  __m512 x3 = _mm512_mul_ps(xx, x);
  __m512 x3l = _mm512_fmadd_ps(xxl, x, _mm512_fmsub_ps(xx, x, x3));
  __m512 p = _mm512_mul_ps(c, x3);
  __m512 pl = _mm512_fmadd_ps(c, x3l, _mm512_fmsub_ps(c, x3, p));
  // s = x + p (TwoSum: either may dominate).
  __m512 s = _mm512_add_ps(x, p);
  __m512 bb = _mm512_sub_ps(s, x);
  __m512 sl = _mm512_add_ps(_mm512_sub_ps(x, _mm512_sub_ps(s, bb)), _mm512_sub_ps(p, bb));
  sl = _mm512_add_ps(sl, pl);
  __m512 a = _mm512_mul_ps(k, s);
  __m512 al = _mm512_fmadd_ps(k, sl, _mm512_fmsub_ps(k, s, a));
  __m512 y = x_over_1_plus_exp(x, a, al);
  // |x| > ~1e13 makes x^3 inf and the compensation terms NaN; the float result is x resp. -0.
  y = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, set1(10.0f), _CMP_GT_OQ), y, x);
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, set1(-20.0f), _CMP_LT_OQ), y, set1(-0.0f));
}

}  // namespace vm
}  // namespace avx512
}  // namespace pyvitcpp
