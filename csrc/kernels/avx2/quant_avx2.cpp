// Block-quantized GEMM at the avx2 level (no VNNI): the math of kernels/quant_gemm.h with
// vpmaddubsw (u8 x s8 -> saturating s16 pairs) + vpmaddwd. The unsigned operand must keep
// pair sums below 2^15: Q4/Q5 codes (<= 31) times |q| <= 127 do, and accumulate several steps
// in int16 before one vpmaddwd. Q8_0 codes are packed offset to u8 (c + 128, zero point 128) and
// meet activations quantized to |q| <= 64 (qgemm_act_qmax): 255 * 64 * 2 < 2^15. That costs
// one bit of activation precision against the sign trick (|w| x sign(q, w), 8-bit q) but
// drops its vpsignb / vpabsb, which compete with vpmaddubsw / vpmaddwd for the same two
// Zen 3 pipes: 1.3-1.5x the flop per cycle (kernels/quant_gemm.h has the figures).
// Microkernel: R <= 2 rows x 16 columns (one panel, two ymm halves).
//
// The work split, chunking and tile loop are the shared kernels/quant_driver.h; this file keeps
// its own activation quantizer, microkernels and epilogue because they are a different
// instruction algorithm from the avx512 level's (7-bit Q8_0 activations through vpmaddubsw +
// vpmaddwd with int16 partial sums, against VNNI vpdpbusd in int32), not the same loop at
// another width: one body over vector traits would have to hide that difference.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/quant_gemm.h"
#include "kernels/simd_act.h"

namespace pyvitcpp {
namespace avx2 {
namespace {

#include "kernels/quant_driver.h"  // ActScratch, Kind, qgemm_run

constexpr int kMR = 2;

static inline int32_t hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

static inline float hmax_ps(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

void quantize_rows(const float* X, int64_t ldx, int64_t r0, int64_t r1, int64_t K, int z, float qmax, ActScratch& s) {
  const int64_t nb = K / 32, rows = r1 - r0;
  s.q.resize(static_cast<size_t>(rows * K));
  s.d.resize(static_cast<size_t>(rows * nb));
  s.ds.resize(static_cast<size_t>(rows * nb));
  s.zs.resize(static_cast<size_t>(rows * nb));
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = X + (r0 + r) * ldx;
    for (int64_t b = 0; b < nb; ++b) {
      __m256 v[4];
      __m256 a = _mm256_setzero_ps();
      int unord = 0;
      for (int i = 0; i < 4; ++i) {
        v[i] = _mm256_loadu_ps(x + 32 * b + 8 * i);
        a = _mm256_max_ps(a, _mm256_andnot_ps(sign, v[i]));
        unord |= _mm256_movemask_ps(_mm256_cmp_ps(v[i], v[i], _CMP_UNORD_Q));
      }
      const float amax = hmax_ps(a);
      const bool finite = unord == 0 && amax <= 3.4028235e38f;
      const float d = finite ? amax / qmax : std::numeric_limits<float>::quiet_NaN();
      const float id = finite && d != 0.0f ? 1.0f / d : 0.0f;
      const __m256 vid = _mm256_set1_ps(id);
      __m256i q[4];
      for (int i = 0; i < 4; ++i) q[i] = finite ? _mm256_cvtps_epi32(_mm256_mul_ps(v[i], vid)) : _mm256_setzero_si256();
      const int32_t S = hsum_epi32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
      const __m256i p01 = _mm256_packs_epi32(q[0], q[1]), p23 = _mm256_packs_epi32(q[2], q[3]);
      const __m256i bytes = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p01, p23), perm);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(s.q.data() + r * K + 32 * b), bytes);
      s.d[r * nb + b] = d;
      s.zs[r * nb + b] = z * S;
      s.ds[r * nb + b] = d * static_cast<float>(S);
    }
  }
}

static inline __m256i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

template <int R, int KIND, bool HAS_M>
void ukernel(int64_t nb, const int8_t* xq, int64_t ldq, const float* xd, const int32_t* xzs, const float* xds,
             int64_t ldb, const uint8_t* wp, int64_t BB, float* out) {
  constexpr int64_t CB = KIND == kNib ? 256 : 512;
  constexpr bool NIB = KIND == kNib || KIND == kNibSpread;
  // The f32 sums live in `out` (L1), updated once per block: 16 ymm registers are too few to
  // hold them beside the integer sums, weights and broadcasts without spilling in the step loop.
  for (int i = 0; i < R * 16; i += 8) _mm256_storeu_ps(out + i, _mm256_setzero_ps());
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t b = 0; b < nb; ++b) {
    __m256i acc[R][2];
    for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
    const int8_t* xb = xq + 32 * b;
    if (NIB) {
      // codes <= 15: the 8 products per pair of a whole block stay below 2^15 in int16
      __m256i a16[R][2];
      for (int r = 0; r < R; ++r) a16[r][0] = a16[r][1] = _mm256_setzero_si256();
#pragma GCC unroll 1
      for (int s = 0; s < 4; ++s) {
        __m256i xl[R], xh[R];
        for (int r = 0; r < R; ++r) {
          xl[r] = bcast4(xb + r * ldq + 4 * s);
          xh[r] = bcast4(xb + r * ldq + 16 + 4 * s);
        }
        for (int h = 0; h < 2; ++h) {
          __m256i lo, hi;
          if (KIND == kNibSpread) {  // low nibbles at step s, high ones at step 4 + s
            lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp + s * 64 + 32 * h));
            hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp + (4 + s) * 64 + 32 * h));
          } else {
            const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp + s * 64 + 32 * h));
            lo = _mm256_and_si256(v, m4);
            hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
          }
          for (int r = 0; r < R; ++r)
            a16[r][h] = _mm256_add_epi16(a16[r][h], _mm256_add_epi16(_mm256_maddubs_epi16(lo, xl[r]),
                                                                     _mm256_maddubs_epi16(hi, xh[r])));
        }
      }
      for (int r = 0; r < R; ++r)
        for (int h = 0; h < 2; ++h) acc[r][h] = _mm256_madd_epi16(a16[r][h], ones);
    } else if (KIND == kU8) {
      // codes <= 31: four steps of pair products stay below 2^15 in int16
#pragma GCC unroll 1
      for (int g = 0; g < 2; ++g) {
        __m256i a16[R][2];
        for (int r = 0; r < R; ++r) a16[r][0] = a16[r][1] = _mm256_setzero_si256();
        const uint8_t* wg = wp + g * 256;
        const int8_t* xg = xb + 16 * g;
#pragma GCC unroll 4
        for (int s = 0; s < 4; ++s) {
          __m256i x[R];
          for (int r = 0; r < R; ++r) x[r] = bcast4(xg + r * ldq + 4 * s);
          for (int h = 0; h < 2; ++h) {
            const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wg + s * 64 + 32 * h));
            for (int r = 0; r < R; ++r) a16[r][h] = _mm256_add_epi16(a16[r][h], _mm256_maddubs_epi16(w, x[r]));
          }
        }
        for (int r = 0; r < R; ++r)
          for (int h = 0; h < 2; ++h) acc[r][h] = _mm256_add_epi32(acc[r][h], _mm256_madd_epi16(a16[r][h], ones));
      }
    } else {
#pragma GCC unroll 2
      for (int s = 0; s < 8; ++s) {
        __m256i x[R];
        for (int r = 0; r < R; ++r) x[r] = bcast4(xb + r * ldq + 4 * s);
        for (int h = 0; h < 2; ++h) {
          const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp + s * 64 + 32 * h));
          for (int r = 0; r < R; ++r)
            acc[r][h] = _mm256_add_epi32(acc[r][h], _mm256_madd_epi16(_mm256_maddubs_epi16(w, x[r]), ones));
        }
      }
    }
    __m256 dw[2], mw[2];
    for (int h = 0; h < 2; ++h) {
      dw[h] = _mm256_loadu_ps(reinterpret_cast<const float*>(wp + CB) + 8 * h);
      if (HAS_M) mw[h] = _mm256_loadu_ps(reinterpret_cast<const float*>(wp + CB + 64) + 8 * h);
    }
    for (int r = 0; r < R; ++r) {
      const __m256 dx = _mm256_set1_ps(xd[r * ldb + b]);
      const __m256i zs = _mm256_set1_epi32(xzs[r * ldb + b]);
      for (int h = 0; h < 2; ++h) {
        const __m256 f = _mm256_cvtepi32_ps(_mm256_sub_epi32(acc[r][h], zs));
        __m256 o = _mm256_fmadd_ps(f, _mm256_mul_ps(dw[h], dx), _mm256_loadu_ps(out + r * 16 + 8 * h));
        if (HAS_M) o = _mm256_fmadd_ps(mw[h], _mm256_set1_ps(xds[r * ldb + b]), o);
        _mm256_storeu_ps(out + r * 16 + 8 * h, o);
      }
    }
    wp += BB;
  }
}

using Ukernel = void (*)(int64_t, const int8_t*, int64_t, const float*, const int32_t*, const float*, int64_t,
                         const uint8_t*, int64_t, float*);

template <int KIND, bool HAS_M>
Ukernel pick(int R) { return R == 1 ? ukernel<1, KIND, HAS_M> : ukernel<2, KIND, HAS_M>; }

Ukernel pick_for(DType t, bool spread, int R) {
  if (spread) return qpack_has_m(t) ? pick<kNibSpread, true>(R) : pick<kNibSpread, false>(R);
  switch (t) {
    case DType::Q8_0: return pick<kQ8, false>(R);
    case DType::Q4_0: return pick<kNib, false>(R);
    case DType::Q4_1: return pick<kNib, true>(R);
    case DType::Q5_0: return pick<kU8, false>(R);
    default: return pick<kU8, true>(R);
  }
}

// One panel per tile (P == 1).
void run_tile(DType t, bool spread, int R, int P, int64_t nb, const int8_t* xq, int64_t ldq, const float* xd, const int32_t* xzs,
              const float* xds, int64_t ldb, const uint8_t* w, int64_t PB, int64_t BB, float* tile) {
  pick_for(t, spread, R)(nb, xq, ldq, xd, xzs, xds, ldb, w, BB, tile);
}

void finish_tile(const GemmArgs& a, const float* tile, int R, int64_t row0, int64_t col0, int64_t nc) {
  alignas(32) float t[kMR * 16];  // rows of nc, contiguous: one activation call per tile
  for (int r = 0; r < R; ++r) {
    float* tr = t + r * nc;
    if (nc == 16) {  // full panel: the same float operations, eight lanes at a time
      for (int h = 0; h < 2; ++h) {
        __m256 v = _mm256_loadu_ps(tile + r * 16 + 8 * h);
        if (a.bias) v = _mm256_add_ps(v, _mm256_loadu_ps(a.bias + col0 + 8 * h));
        _mm256_storeu_ps(tr + 8 * h, v);
      }
    } else {
      for (int64_t c = 0; c < nc; ++c) tr[c] = tile[r * 16 + c] + (a.bias ? a.bias[col0 + c] : 0.0f);
    }
  }
  if (a.act != Act::None) act_inplace(t, R * nc, a.act);
  for (int r = 0; r < R; ++r) {
    const float* tr = t + r * nc;
    float* y = a.Y + (row0 + r) * a.ldy + col0;
    const float* res = a.residual ? a.residual + (row0 + r) * a.ldr + col0 : nullptr;
    if (nc == 16) {
      for (int h = 0; h < 2; ++h) {
        __m256 v = _mm256_loadu_ps(tr + 8 * h);
        if (res) v = _mm256_add_ps(v, _mm256_loadu_ps(res + 8 * h));
        if (a.relu_out) v = _mm256_max_ps(_mm256_setzero_ps(), v);
        _mm256_storeu_ps(y + 8 * h, v);
      }
    } else {
      for (int64_t c = 0; c < nc; ++c) {
        const float v = tr[c] + (res ? res[c] : 0.0f);
        y[c] = a.relu_out && v < 0.0f ? 0.0f : v;  // NaN passes, as _mm256_max_ps(0, v)
      }
    }
  }
}

int act_qmax(DType t) { return t == DType::Q8_0 ? 64 : 127; }

void qgemm(const GemmArgs& a, int ith, int nth) {
  // Nibble groups spread only while they stay in L1: its nibble loop unpacks cheaply (int16
  // sums over a whole block), and spreading K = 3072 groups measured 0.95-1.00x.
  qgemm_run<kMR, 1, kSpreadL1Bytes, kChunkBytes, quantize_rows, run_tile, finish_tile>(a, act_qmax(a.wtype), ith,
                                                                                      nth);
}

}  // namespace
}  // namespace avx2

void register_quant_avx2(KernelTable& t) {
  t.qgemm_act_qmax = avx2::act_qmax;
  t.qgemm_pack_size = qgemm_pack_size_generic;
  t.qgemm_pack = qgemm_pack_generic;
  t.qgemm = avx2::qgemm;
}

}  // namespace pyvitcpp
