// Test-only: AVX-512 intrinsics emulated by SIMDe (plus the few SIMDe 0.7.4 lacks), so that the
// avx512 quant kernel can be executed on a CPU without AVX-512.
#pragma once
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>  // found as <immintrin.h> only through -I tests/quant_emu
#include <cmath>
#include <climits>
#include <cstring>
typedef unsigned short __mmask16;
static inline float _mm512_reduce_max_ps(__m512 v) { float a[16]; std::memcpy(a, &v, 64); float m = a[0]; for (int i = 1; i < 16; ++i) m = a[i] > m ? a[i] : m; return m; }
static inline int _mm512_reduce_add_epi32(__m512i v) { int a[16]; std::memcpy(a, &v, 64); int s = 0; for (int i = 0; i < 16; ++i) s += a[i]; return s; }
static inline __m128i _mm512_cvtepi32_epi8(__m512i v) { int a[16]; std::memcpy(a, &v, 64); signed char b[16]; for (int i = 0; i < 16; ++i) b[i] = (signed char)a[i]; __m128i r; std::memcpy(&r, b, 16); return r; }
static inline __m512i _mm512_cvtps_epi32(__m512 v) { float a[16]; std::memcpy(a, &v, 64); int b[16]; for (int i = 0; i < 16; ++i) { float x = std::nearbyint(a[i]); b[i] = (x != x || x >= 2147483648.f || x < -2147483648.f) ? INT_MIN : (int)x; } __m512i r; std::memcpy(&r, b, 64); return r; }
static inline __m512 _mm512_cvtepi32_ps(__m512i v) { int a[16]; std::memcpy(a, &v, 64); float b[16]; for (int i = 0; i < 16; ++i) b[i] = (float)a[i]; __m512 r; std::memcpy(&r, b, 64); return r; }
static inline __m512 _mm512_maskz_loadu_ps(unsigned short k, const float* p) { float b[16]; for (int i = 0; i < 16; ++i) b[i] = (k >> i) & 1 ? p[i] : 0.0f; __m512 r; std::memcpy(&r, b, 64); return r; }
static inline void _mm512_mask_storeu_ps(float* p, unsigned short k, __m512 v) { float a[16]; std::memcpy(a, &v, 64); for (int i = 0; i < 16; ++i) if ((k >> i) & 1) p[i] = a[i]; }
