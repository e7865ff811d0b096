// Test-only: AVX-512 intrinsics emulated by SIMDe, found as <immintrin.h> only through
// -I tests/avx512_emu, so that the avx512 kernels can be executed on a CPU without AVX-512
// (tests/test_avx512_emulated.py). Below SIMDe are portable versions of the few intrinsics
// SIMDe 0.7.4 lacks. Compile with -mavx2 -mfma: SIMDe then builds _mm512_fmadd_ps & co. from
// native 256-bit FMAs, so a fused multiply-add rounds once as on real AVX-512 (the kernels'
// error-free products, e.g. the GELU tail's z^2 low part, depend on that).
#pragma once
// With -mavx2 SIMDe includes the compiler's own <immintrin.h>, which this file shadows.
#include_next <immintrin.h>
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#ifndef _MM_FROUND_NO_EXC
#define _MM_FROUND_NO_EXC SIMDE_MM_FROUND_NO_EXC
#endif
typedef unsigned short __mmask16;
namespace avx512_emu {
template <class V, class T, int N> inline void lanes(V v, T (&a)[N]) { static_assert(sizeof(V) == sizeof(a), "size"); std::memcpy(a, &v, sizeof a); }
template <class V, class T, int N> inline V vec(const T (&a)[N]) { static_assert(sizeof(V) == sizeof(a), "size"); V r; std::memcpy(&r, a, sizeof a); return r; }
// IEEE binary16 -> binary32, exact (vcvtph2ps), denormals and NaN payloads included.
inline float half_to_float(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  uint32_t u;
  if (e == 0x1f) u = sign | 0x7f800000u | (m << 13);
  else if (e) u = sign | ((e + 112) << 23) | (m << 13);
  else if (m == 0) u = sign;
  else { float f = std::ldexp((float)m, -24); std::memcpy(&u, &f, 4); u |= sign; }
  float f; std::memcpy(&f, &u, 4); return f;
}
// GCC's reduction order (avx512fintrin.h __MM512_REDUCE_OP): halves 256, 128, then pairs.
inline float mm512_reduce_add_ps(__m512 v) { float a[16]; avx512_emu::lanes(v, a); float t[8]; for (int i = 0; i < 8; ++i) t[i] = a[i + 8] + a[i]; float u[4]; for (int i = 0; i < 4; ++i) u[i] = t[i + 4] + t[i]; float w0 = u[0] + u[2], w1 = u[1] + u[3]; return w0 + w1; }
inline float mm512_reduce_max_ps(__m512 v) { float a[16]; avx512_emu::lanes(v, a); float m = a[0]; for (int i = 1; i < 16; ++i) m = a[i] > m ? a[i] : m; return m; }
inline int mm512_reduce_add_epi32(__m512i v) { int a[16]; avx512_emu::lanes(v, a); int s = 0; for (int i = 0; i < 16; ++i) s += a[i]; return s; }
inline __m128i mm512_cvtepi32_epi8(__m512i v) { int a[16]; avx512_emu::lanes(v, a); signed char b[16]; for (int i = 0; i < 16; ++i) b[i] = (signed char)a[i]; return avx512_emu::vec<__m128i>(b); }
inline __m512i mm512_cvtps_epi32(__m512 v) { float a[16]; avx512_emu::lanes(v, a); int b[16]; for (int i = 0; i < 16; ++i) { float x = std::nearbyint(a[i]); b[i] = (x != x || x >= 2147483648.f || x < -2147483648.f) ? INT_MIN : (int)x; } return avx512_emu::vec<__m512i>(b); }
inline __m512 mm512_cvtepi32_ps(__m512i v) { int a[16]; avx512_emu::lanes(v, a); float b[16]; for (int i = 0; i < 16; ++i) b[i] = (float)a[i]; return avx512_emu::vec<__m512>(b); }
inline __m512 mm512_cvtph_ps(__m256i v) { uint16_t a[16]; avx512_emu::lanes(v, a); float b[16]; for (int i = 0; i < 16; ++i) b[i] = avx512_emu::half_to_float(a[i]); return avx512_emu::vec<__m512>(b); }
// Masked-off lanes are never read (the kernels rely on that at the end of a buffer).
inline __m512 mm512_maskz_loadu_ps(__mmask16 k, const float* p) { float b[16]; for (int i = 0; i < 16; ++i) b[i] = (k >> i) & 1 ? p[i] : 0.0f; return avx512_emu::vec<__m512>(b); }
inline __m512 mm512_mask_loadu_ps(__m512 src, __mmask16 k, const float* p) { float b[16]; avx512_emu::lanes(src, b); for (int i = 0; i < 16; ++i) if ((k >> i) & 1) b[i] = p[i]; return avx512_emu::vec<__m512>(b); }
inline void mm512_mask_storeu_ps(float* p, __mmask16 k, __m512 v) { float a[16]; avx512_emu::lanes(v, a); for (int i = 0; i < 16; ++i) if ((k >> i) & 1) p[i] = a[i]; }
// vscalefps: a * 2^floor(b), rounded once (gradual underflow included). SIMDe 0.7.4 computes
// a * exp2(floor(b)), which gives NaN for inf * 2^-200 and 0 * 2^300 and flushes below 2^-149.
inline __m512 mm512_scalef_ps(__m512 a, __m512 b) {
  float x[16], e[16], r[16];
  avx512_emu::lanes(a, x);
  avx512_emu::lanes(b, e);
  for (int i = 0; i < 16; ++i) {
    if (x[i] != x[i] || e[i] != e[i]) r[i] = x[i] != x[i] ? x[i] : e[i];
    else if (std::isinf(e[i])) {
      const bool up = e[i] > 0;
      if ((up && x[i] == 0) || (!up && std::isinf(x[i]))) r[i] = std::numeric_limits<float>::quiet_NaN();
      else r[i] = up ? std::copysign(std::numeric_limits<float>::infinity(), x[i]) : std::copysign(0.0f, x[i]);
    } else {
      const float f = std::floor(e[i]);
      r[i] = std::ldexp(x[i], f > 400 ? 400 : f < -400 ? -400 : (int)f);
    }
  }
  return avx512_emu::vec<__m512>(r);
}
}  // namespace avx512_emu
// Macros, not functions: the compiler's header declares these names (target("avx512f")), and
// SIMDe's aliases are macros too.
#undef _mm512_reduce_add_ps
#define _mm512_reduce_add_ps avx512_emu::mm512_reduce_add_ps
#undef _mm512_reduce_max_ps
#define _mm512_reduce_max_ps avx512_emu::mm512_reduce_max_ps
#undef _mm512_reduce_add_epi32
#define _mm512_reduce_add_epi32 avx512_emu::mm512_reduce_add_epi32
#undef _mm512_cvtepi32_epi8
#define _mm512_cvtepi32_epi8 avx512_emu::mm512_cvtepi32_epi8
#undef _mm512_cvtps_epi32
#define _mm512_cvtps_epi32 avx512_emu::mm512_cvtps_epi32
#undef _mm512_cvtepi32_ps
#define _mm512_cvtepi32_ps avx512_emu::mm512_cvtepi32_ps
#undef _mm512_cvtph_ps
#define _mm512_cvtph_ps avx512_emu::mm512_cvtph_ps
#undef _mm512_maskz_loadu_ps
#define _mm512_maskz_loadu_ps avx512_emu::mm512_maskz_loadu_ps
#undef _mm512_mask_loadu_ps
#define _mm512_mask_loadu_ps avx512_emu::mm512_mask_loadu_ps
#undef _mm512_mask_storeu_ps
#define _mm512_mask_storeu_ps avx512_emu::mm512_mask_storeu_ps
#undef _mm512_scalef_ps
#define _mm512_scalef_ps avx512_emu::mm512_scalef_ps
