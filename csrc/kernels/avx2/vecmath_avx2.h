// Vector math for the AVX2+FMA level: exp, exp2 (softmax), tanh, sigmoid and the activations.
// Only included by translation units compiled with -mavx2 -mfma -mf16c. Everything here has
// internal linkage (static inline) so no AVX2 code can be picked by the linker for another TU.
//
// NaN handling: _mm256_min_ps / _mm256_max_ps return their *second* operand when either is NaN,
// so clamps are written clamp(const, x) to let NaN through; blends that replace results for large
// |x| test with ordered compares, which are false for NaN.
//
// Accuracy, measured against float64 evaluations of the same formulas (same float32 constants)
// on 7.5M floats (every 97th float of magnitude 1e-30..1e4, both signs), max relative error
// where |result| >= FLT_MIN (below it: gradual denormals, abs err < 1.5e-43):
//   GELU erf   4.8e-7 (erfc-based: no 1 + erf cancellation; the ref has ~100% there, x < -5);
//              vectors with every |x| <= 3 take a division-free path: 3.5e-7 on [-3, 3]
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
namespace avx2 {
namespace vm {

static inline __m256 set1(float v) { return _mm256_set1_ps(v); }

// 2^n as float for integer n in [-126, 127], from a lane of int32.
static inline __m256 pow2i(__m256i n) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(127)), 23));
}

// e^r for r in [-ln2/2, ln2/2]: 1 + r + r^2 P(r), degree 6 minimax (rel err 4.4e-9 in exact
// arithmetic, coefficients fitted by Lawson's algorithm).
static inline __m256 exp_reduced(__m256 r) {
  // Estrin order (latency ~15 cycles instead of ~23 for Horner): p = (a2 + a3 r) +
  // r^2 ((a4 + a5 r) + r^2 a6).
  __m256 r2 = _mm256_mul_ps(r, r);
  __m256 u0 = _mm256_fmadd_ps(set1(0.1666651964187622f), r, set1(0.5f));
  __m256 u1 = _mm256_fmadd_ps(set1(0.008368882350623608f), r, set1(0.04166620597243309f));
  __m256 v = _mm256_fmadd_ps(set1(0.0013950478751212358f), r2, u1);
  __m256 p = _mm256_fmadd_ps(v, r2, u0);
  return _mm256_add_ps(_mm256_fmadd_ps(r2, p, r), set1(1.0f));
}

// e^(hi + lo), |lo| << |hi|: the argument carries more than float precision, which the GELU
// tails need (there e^-z^2 has z^2 ~ 80 and one rounding of z^2 is a 5e-6 relative error).
// Full range: +inf above ~88.72, gradual underflow to 0 below ~-87.3, NaN propagates.
// Returns m * e^(hi + lo); m is applied before the final scaling so that a result in the
// denormal range is rounded once (x * e^-90 keeps its accuracy where e^-90 alone would not).
static inline __m256 exp2part_mul(__m256 hi, __m256 lo, __m256 m) {
  hi = _mm256_min_ps(set1(89.0f), hi);
  hi = _mm256_max_ps(set1(-104.0f), hi);
  // n = round(hi * log2 e) via the 1.5*2^23 trick (exact for |n| < 2^22).
  const __m256 magic = set1(12582912.0f);
  __m256 t = _mm256_fmadd_ps(hi, set1(1.44269504088896341f), magic);
  __m256 n = _mm256_sub_ps(t, magic);
  // Cody-Waite: ln2_hi has 9 significant bits so n * ln2_hi is exact for |n| < 2^15.
  // r = (hi - n ln2_hi) + (lo - n ln2_lo): the two products in parallel (the low part is
  // small, so it is rounded far below the ulp of r).
  __m256 r = _mm256_fnmadd_ps(n, set1(0.693359375f), hi);
  r = _mm256_add_ps(r, _mm256_fnmadd_ps(n, set1(-2.12194440e-4f), lo));
  __m256 y = exp_reduced(r);
  // Scale by 2^n in two halves so that n in [-150, 129] neither overflows the exponent field
  // early nor skips the denormal range. m * 2^n1 is formed off the critical path; it is exact
  // unless m is already below FLT_MIN (then the result is in the denormal range anyway).
  __m256i ni = _mm256_sub_epi32(_mm256_castps_si256(t), _mm256_castps_si256(magic));
  __m256i n1 = _mm256_srai_epi32(ni, 1);
  __m256i n2 = _mm256_sub_epi32(ni, n1);
  return _mm256_mul_ps(_mm256_mul_ps(y, _mm256_mul_ps(m, pow2i(n1))), pow2i(n2));
}

static inline __m256 exp2part(__m256 hi, __m256 lo) {
  hi = _mm256_min_ps(set1(89.0f), hi);
  hi = _mm256_max_ps(set1(-104.0f), hi);
  const __m256 magic = set1(12582912.0f);
  __m256 t = _mm256_fmadd_ps(hi, set1(1.44269504088896341f), magic);
  __m256 n = _mm256_sub_ps(t, magic);
  __m256 r = _mm256_fnmadd_ps(n, set1(0.693359375f), hi);
  r = _mm256_fnmadd_ps(n, set1(-2.12194440e-4f), r);
  __m256 y = exp_reduced(_mm256_add_ps(r, lo));
  __m256i ni = _mm256_sub_epi32(_mm256_castps_si256(t), _mm256_castps_si256(magic));
  __m256i n1 = _mm256_srai_epi32(ni, 1);
  return _mm256_mul_ps(_mm256_mul_ps(y, pow2i(n1)), pow2i(_mm256_sub_epi32(ni, n1)));
}

// Both e^(hi + lo) and m * e^(hi + lo) (m applied before the scaling, see exp2part_mul) from one
// argument reduction.
static inline void exp2part_pair(__m256 hi, __m256 lo, __m256 m, __m256* e, __m256* em) {
  hi = _mm256_min_ps(set1(89.0f), hi);
  hi = _mm256_max_ps(set1(-104.0f), hi);
  const __m256 magic = set1(12582912.0f);
  __m256 t = _mm256_fmadd_ps(hi, set1(1.44269504088896341f), magic);
  __m256 n = _mm256_sub_ps(t, magic);
  __m256 r = _mm256_fnmadd_ps(n, set1(0.693359375f), hi);
  r = _mm256_fnmadd_ps(n, set1(-2.12194440e-4f), r);
  __m256 y = exp_reduced(_mm256_add_ps(r, lo));
  __m256i ni = _mm256_sub_epi32(_mm256_castps_si256(t), _mm256_castps_si256(magic));
  __m256i n1 = _mm256_srai_epi32(ni, 1);
  __m256 s1 = pow2i(n1), s2 = pow2i(_mm256_sub_epi32(ni, n1));
  *e = _mm256_mul_ps(_mm256_mul_ps(y, s1), s2);
  *em = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(y, m), s1), s2);
}

static inline __m256 exp(__m256 x) { return exp2part(x, _mm256_setzero_ps()); }

// 2^x for x <= 0 (softmax after max subtraction): degree-5 minimax for 2^f on [-1/2, 1/2]
// (rel err 1.3e-7). Arguments below -126 (-inf too) give exactly 0, never a denormal (a
// denormal P makes the P.V FMAs that touch it take microcode assists; see the avx512 twin).
// NaN propagates.
static inline __m256 exp2_neg(__m256 x) {
  const __m256 tiny = _mm256_cmp_ps(x, set1(-126.0f), _CMP_LT_OQ);
  x = _mm256_max_ps(set1(-126.0f), x);
  const __m256 magic = set1(12582912.0f + 127.0f);  // also adds the exponent bias
  __m256 t = _mm256_add_ps(x, magic);
  __m256 f = _mm256_sub_ps(x, _mm256_sub_ps(t, magic));
  __m256 p = set1(0.0013407259248197079f);
  p = _mm256_fmadd_ps(p, f, set1(0.009671875275671482f));
  p = _mm256_fmadd_ps(p, f, set1(0.055503085255622864f));
  p = _mm256_fmadd_ps(p, f, set1(0.24022234976291656f));
  p = _mm256_fmadd_ps(p, f, set1(0.6931472420692444f));
  p = _mm256_fmadd_ps(p, f, set1(1.0f));
  // (bits(t) << 23) == (n + 127) << 23: the magic's own bits shift out.
  return _mm256_andnot_ps(tiny, _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(t), 23))));
}

static inline __m256 abs(__m256 x) { return _mm256_andnot_ps(set1(-0.0f), x); }

// tanh: odd minimax polynomial (degree 11) for |x| < 0.625, else 1 - 2 / (e^{2|x|} + 1).
static inline __m256 tanh(__m256 x) {
  const __m256 sign = set1(-0.0f);
  __m256 ax = _mm256_andnot_ps(sign, x);
  __m256 x2 = _mm256_mul_ps(x, x);
  __m256 p = set1(-0.005577906500548124f);
  p = _mm256_fmadd_ps(p, x2, set1(0.020510196685791016f));
  p = _mm256_fmadd_ps(p, x2, set1(-0.053693659603595734f));
  p = _mm256_fmadd_ps(p, x2, set1(0.13330769538879395f));
  p = _mm256_fmadd_ps(p, x2, set1(-0.33333247900009155f));
  __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(x, x2), p, x);
  __m256 e = exp(_mm256_add_ps(ax, ax));
  __m256 big = _mm256_sub_ps(set1(1.0f), _mm256_div_ps(set1(2.0f), _mm256_add_ps(e, set1(1.0f))));
  big = _mm256_or_ps(big, _mm256_and_ps(sign, x));
  return _mm256_blendv_ps(big, small, _mm256_cmp_ps(ax, set1(0.625f), _CMP_LT_OQ));
}

// x / (1 + e^(hi + lo)) without overflow: with E = e^-|arg| (<= 1) this is x E / (1 + E) for
// arg > 0 and x / (1 + E) otherwise, so the negative tails underflow gradually instead of
// hitting e^arg = inf early.
static inline __m256 x_over_1_plus_exp(__m256 x, __m256 hi, __m256 lo) {
  const __m256 sign = set1(-0.0f);
  __m256 flip = _mm256_andnot_ps(hi, sign);  // sign bit set where hi >= 0
  __m256 nh = _mm256_xor_ps(hi, flip), nl = _mm256_xor_ps(lo, flip);
  __m256 e, xe;
  exp2part_pair(nh, nl, x, &e, &xe);
  __m256 num = _mm256_blendv_ps(x, xe, flip);
  return _mm256_div_ps(num, _mm256_add_ps(set1(1.0f), e));
}

static inline __m256 sigmoid(__m256 x) {
  return x_over_1_plus_exp(set1(1.0f), _mm256_sub_ps(_mm256_setzero_ps(), x), _mm256_setzero_ps());
}

// x * sigmoid(1.702 x) = x / (1 + e^{-1.702x}); the product 1.702x is carried as hi+lo.
static inline __m256 quick_gelu(__m256 x) {
  const __m256 c = set1(-1.702f);
  __m256 hi = _mm256_mul_ps(c, x);
  __m256 lo = _mm256_fmsub_ps(c, x, hi);
  __m256 y = x_over_1_plus_exp(x, hi, lo);
  // Beyond these the float result is exactly x resp. -0 (and +-inf would make lo NaN).
  y = _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, set1(100.0f), _CMP_GT_OQ));
  return _mm256_blendv_ps(y, set1(-0.0f), _mm256_cmp_ps(x, set1(-200.0f), _CMP_LT_OQ));
}

// x * sigmoid(x) = x / (1 + E) for x >= 0 and x E / (1 + E) for x < 0, E = e^-|x|: the avx512
// twin's formula (x_over_1_plus_exp with the argument known to be -|x|: no sign flips; x > 100
// needs no special case, 1 + E rounds to 1 there).
static inline __m256 silu(__m256 x) {
  __m256 e, xe;
  exp2part_pair(_mm256_or_ps(x, set1(-0.0f)), _mm256_setzero_ps(), x, &e, &xe);
  const __m256 y = _mm256_div_ps(_mm256_blendv_ps(x, xe, x), _mm256_add_ps(set1(1.0f), e));
  // Finite x below -200 gives -0, -inf gives NaN (x * 0), as PyTorch's x * sigmoid(x) does.
  return _mm256_blendv_ps(y, _mm256_mul_ps(x, _mm256_setzero_ps()), _mm256_cmp_ps(x, set1(-200.0f), _CMP_LT_OQ));
}

// x * clamp(x + 3, 0, 6) / 6 in PyTorch's operation order (a true division, not * (1/6)).
static inline __m256 hard_swish(__m256 x) {
  __m256 c = _mm256_min_ps(set1(6.0f), _mm256_max_ps(_mm256_setzero_ps(), _mm256_add_ps(x, set1(3.0f))));
  return _mm256_div_ps(_mm256_mul_ps(x, c), set1(6.0f));
}

// 0.5 x (1 + erf(x / sqrt2)) = x * (1 - E) for x >= 0, x * E for x < 0, with
// E = erfc(|x| / sqrt2) / 2 from the Numerical Recipes erfcc fit (relative error < 1.2e-7):
//   erfc(z) = t exp(-z^2 + P(t)),  t = 1 / (1 + z/2).
// -z^2 = -x^2/2 is formed exactly (hi + lo via FMA), so the tails keep full relative accuracy.
static inline __m256 gelu_erf_full(__m256 x) {
  const __m256 one = set1(1.0f);
  // t = 1 / (1 + z/2) with z/2 = |x| / (2 sqrt2) in one FMA (z itself is not needed).
  __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(abs(x), set1(0.35355339059327376f), one));
  // P(t), degree 9, in Estrin order: the Horner chain (9 dependent FMAs) was the latency
  // bottleneck of the whole function.
  __m256 t2 = _mm256_mul_ps(t, t);
  __m256 q0 = _mm256_fmadd_ps(set1(1.00002368f), t, set1(-1.26551223f));
  __m256 q1 = _mm256_fmadd_ps(set1(0.09678418f), t, set1(0.37409196f));
  __m256 q2 = _mm256_fmadd_ps(set1(0.27886807f), t, set1(-0.18628806f));
  __m256 q3 = _mm256_fmadd_ps(set1(1.48851587f), t, set1(-1.13520398f));
  __m256 q4 = _mm256_fmadd_ps(set1(0.17087277f), t, set1(-0.82215223f));
  __m256 t4 = _mm256_mul_ps(t2, t2);
  __m256 r0 = _mm256_fmadd_ps(q1, t2, q0);
  __m256 r1 = _mm256_fmadd_ps(q3, t2, q2);
  __m256 t8 = _mm256_mul_ps(t4, t4);
  __m256 p = _mm256_fmadd_ps(q4, t8, _mm256_fmadd_ps(r1, t4, r0));
  // z^2 = x^2 / 2 = z2h + z2l exactly (the halving is exact).
  const __m256 half = set1(0.5f);
  __m256 xx = _mm256_mul_ps(x, x);
  __m256 z2h = _mm256_mul_ps(xx, half);
  __m256 z2l = _mm256_mul_ps(_mm256_fmsub_ps(x, x, xx), half);
  // arg = P - z2h - z2l as hi + lo (Fast2Sum, |z2h| dominates whenever the error matters).
  __m256 s = _mm256_sub_ps(p, z2l);
  __m256 ah = _mm256_sub_ps(s, z2h);
  __m256 al = _mm256_sub_ps(s, _mm256_add_ps(ah, z2h));
  __m256 ht = _mm256_mul_ps(half, t);
  // One exponential: em = (x t/2) e^arg for x < 0 (one rounding into the denormal range),
  // (t/2) e^arg otherwise.
  __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
  __m256 em = exp2part_mul(ah, al, _mm256_blendv_ps(ht, _mm256_mul_ps(x, ht), neg));
  __m256 y = _mm256_blendv_ps(_mm256_fnmadd_ps(x, em, x), em, neg);
  // Beyond these the float result is exactly x resp. -0 (and inf * 0 would make NaN).
  y = _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, set1(10.0f), _CMP_GT_OQ));
  return _mm256_blendv_ps(y, set1(-0.0f), _mm256_cmp_ps(x, set1(-20.0f), _CMP_LT_OQ));
}

// gelu_erf for |x| <= 3 (the bulk of real activations), without a division: with a = |x|,
// E = erfc(a / sqrt2) / 2 = e^(-a^2/2) R(a), R(a) = erfcx(a / sqrt2) / 2 in [0.12, 0.5] a degree-11
// polynomial in s = 2a/3 - 1 (relative fit error 6e-8 with these float coefficients), and
// -a^2/2 carried as hi + lo (n = round(-a^2/2 log2 e) in [-7, 0]: no range handling needed).
static inline __m256 gelu_erf_small(__m256 x) {
  __m256 s = _mm256_fmsub_ps(abs(x), set1(0.6666666865348816f), set1(1.0f));
  __m256 s2 = _mm256_mul_ps(s, s);
  __m256 p0 = _mm256_fmadd_ps(set1(-0.13540691137313843f), s, set1(0.20578065514564514f));
  __m256 p1 = _mm256_fmadd_ps(set1(-0.04217776656150818f), s, set1(0.07917127013206482f));
  __m256 p2 = _mm256_fmadd_ps(set1(-0.009611313231289387f), s, set1(0.020799769088625908f));
  __m256 p3 = _mm256_fmadd_ps(set1(-0.0017586529720574617f), s, set1(0.004232179839164019f));
  __m256 p4 = _mm256_fmadd_ps(set1(-0.0002358232595724985f), s, set1(0.0006296624196693301f));
  __m256 p5 = _mm256_fmadd_ps(set1(-5.2565650548785925e-05f), s, set1(0.0001434408186469227f));
  __m256 s4 = _mm256_mul_ps(s2, s2);
  __m256 q0 = _mm256_fmadd_ps(p1, s2, p0);
  __m256 q1 = _mm256_fmadd_ps(p3, s2, p2);
  __m256 q2 = _mm256_fmadd_ps(p5, s2, p4);
  __m256 s8 = _mm256_mul_ps(s4, s4);
  __m256 R = _mm256_fmadd_ps(q2, s8, _mm256_fmadd_ps(q1, s4, q0));
  // e^(h + l), h + l = -x^2/2 exactly.
  const __m256 mhalf = set1(-0.5f);
  __m256 xx = _mm256_mul_ps(x, x);
  __m256 h = _mm256_mul_ps(xx, mhalf);
  __m256 l = _mm256_mul_ps(_mm256_fmsub_ps(x, x, xx), mhalf);
  const __m256 magic = set1(12582912.0f);
  __m256 t = _mm256_fmadd_ps(h, set1(1.44269504088896341f), magic);
  __m256 n = _mm256_sub_ps(t, magic);
  __m256 r = _mm256_add_ps(_mm256_fnmadd_ps(n, set1(0.693359375f), h),
                           _mm256_fnmadd_ps(n, set1(-2.12194440e-4f), l));
  __m256i ni = _mm256_sub_epi32(_mm256_castps_si256(t), _mm256_castps_si256(magic));
  __m256 E = _mm256_mul_ps(_mm256_mul_ps(exp_reduced(r), pow2i(ni)), R);
  // x E for x < 0, x (1 - E) = x - x E otherwise (one rounding each).
  __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
  return _mm256_blendv_ps(_mm256_fnmadd_ps(x, E, x), _mm256_mul_ps(x, E), neg);
}

static inline __m256 gelu_erf(__m256 x) {
  // Ordered compare: NaN lanes take the full path (which propagates them).
  if (_mm256_movemask_ps(_mm256_cmp_ps(abs(x), set1(3.0f), _CMP_LE_OQ)) == 0xFF) return gelu_erf_small(x);
  return gelu_erf_full(x);
}

// 0.5 x (1 + tanh(u)) = x / (1 + e^{-2u}), u = k (x + 0.044715 x^3): no 1+tanh cancellation.
// -2u is accumulated in double-float (hi + lo) so that its rounding (|2u| ulps) does not become
// a relative error of the tail.
static inline __m256 gelu_tanh(__m256 x) {
  const __m256 k = set1(-2.0f * 0.79788456080286536f);  // -2k, exact doubling of the float k
  const __m256 c = set1(0.044715f);
  __m256 xx = _mm256_mul_ps(x, x);
  __m256 xxl = _mm256_fmsub_ps(x, x, xx);
  __m256 x3 = _mm256_mul_ps(xx, x);
  __m256 x3l = _mm256_fmadd_ps(xxl, x, _mm256_fmsub_ps(xx, x, x3));
  __m256 p = _mm256_mul_ps(c, x3);
  __m256 pl = _mm256_fmadd_ps(c, x3l, _mm256_fmsub_ps(c, x3, p));
  // s = x + p (TwoSum: either may dominate).
  __m256 s = _mm256_add_ps(x, p);
  __m256 bb = _mm256_sub_ps(s, x);
  __m256 sl = _mm256_add_ps(_mm256_sub_ps(x, _mm256_sub_ps(s, bb)), _mm256_sub_ps(p, bb));
  sl = _mm256_add_ps(sl, pl);
  __m256 a = _mm256_mul_ps(k, s);
  __m256 al = _mm256_fmadd_ps(k, sl, _mm256_fmsub_ps(k, s, a));
  __m256 y = x_over_1_plus_exp(x, a, al);
  // |x| > ~1e13 makes x^3 inf and the compensation terms NaN; the float result is x resp. -0.
  y = _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, set1(10.0f), _CMP_GT_OQ));
  return _mm256_blendv_ps(y, set1(-0.0f), _mm256_cmp_ps(x, set1(-20.0f), _CMP_LT_OQ));
}

}  // namespace vm
}  // namespace avx2
}  // namespace pyvitcpp
