// Block-quantized GEMM at the avx512 level: activations quantized on the fly to int8 (per row,
// blocks of 32), weights in the panel layout of kernels/quant_gemm.h, int8 dot products with
// VNNI vpdpbusd (u8 x s8 -> s32). vpdpbusd wants the unsigned operand first, so the weight codes
// are that operand: Q4/Q5 codes are 0..31 already; Q8_0 codes are packed with +128 (xor 0x80,
// quant/qpack.cpp), which the activation side corrects with 128 * sum(q) per block (folded into the zero-point term z * S).
//
// Microkernel: R <= 6 rows x 32 columns (two panels), int32 block sums in 12 zmm, f32 sums in 12
// zmm; per block: 8 (4 for nibbles) steps of one 64-byte weight load per panel and one 4-byte
// broadcast per row. Each block's int32 sums start from -z * S (the row's zero-point term,
// broadcast from the scratch), so the per-block f32 step is cvt + mul + fma: three vector ops per
// 8 vpdpbusd (four with a vpsubd). With 12 independent vpdpbusd chains (8 before: the 5-cycle
// latency left the two ports short) the microkernel alone went from 63-64% to 69-72% of the
// register-only vpdpbusd loop (tile in L1; the same with activations in L2 and the weights
// streamed; rdtsc harness, 2.6 GHz Xeon). Threads split the rows (or the columns when there are
// fewer row tiles than threads); each thread quantizes the rows it owns into its own scratch, chunk by chunk: that
// scaffolding is the shared kernels/quant_driver.h. The activation quantizer, microkernels and
// epilogue stay in this file because they are a different instruction algorithm from the avx2
// level's (VNNI vpdpbusd with 8-bit activations in int32, against vpmaddubsw + vpmaddwd with
// 7-bit Q8_0 activations and int16 partial sums), not the same loop at another width.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/quant_gemm.h"
#include "kernels/simd_act.h"

namespace pyvitcpp {
namespace avx512 {
namespace {

#include "kernels/quant_driver.h"  // ActScratch, Kind, qgemm_run

constexpr int kMR = 6;

// Rows [r0, r1) of X -> codes, scales, -z * S and dx * S per block (the spec's rounding: rint).
void quantize_rows(const float* X, int64_t ldx, int64_t r0, int64_t r1, int64_t K, int z, float qmax,
                   ActScratch& s) {
  const int64_t nb = K / 32, rows = r1 - r0;
  s.q.resize(static_cast<size_t>(rows * K));
  s.d.resize(static_cast<size_t>(rows * nb));
  s.ds.resize(static_cast<size_t>(rows * nb));
  s.zs.resize(static_cast<size_t>(rows * nb));
  const __m512 sign = _mm512_set1_ps(-0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = X + (r0 + r) * ldx;
    for (int64_t b = 0; b < nb; ++b) {
      const __m512 v0 = _mm512_loadu_ps(x + 32 * b), v1 = _mm512_loadu_ps(x + 32 * b + 16);
      const __m512 a = _mm512_max_ps(_mm512_andnot_ps(sign, v0), _mm512_andnot_ps(sign, v1));
      const float amax = _mm512_reduce_max_ps(a);
      // Not finite (an Inf, or a NaN that max may drop): scale NaN, codes 0, as the ref does.
      const bool finite = amax <= 3.4028235e38f &&
                          (_mm512_cmp_ps_mask(v0, v1, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(v1, v0, _CMP_UNORD_Q)) == 0;
      const float d = finite ? amax / qmax : std::numeric_limits<float>::quiet_NaN();
      const float id = finite && d != 0.0f ? 1.0f / d : 0.0f;
      const __m512 vid = _mm512_set1_ps(id);
      __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, vid));
      __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, vid));
      if (!finite) q0 = q1 = _mm512_setzero_si512();
      int8_t* dst = s.q.data() + r * K + 32 * b;
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm512_cvtepi32_epi8(q0));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 16), _mm512_cvtepi32_epi8(q1));
      const int32_t S = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
      s.d[r * nb + b] = d;
      s.zs[r * nb + b] = -z * S;  // negated: the block's int32 sums start from it
      s.ds[r * nb + b] = d * static_cast<float>(S);
    }
  }
}

static inline __m512i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// out[r * 32 + c] for r < R, c < 16 * P: the f32 sums over all K of the tile.
template <int R, int P, int KIND, bool HAS_M>
void ukernel(int64_t nb, const int8_t* xq, int64_t ldq, const float* xd, const int32_t* xzs, const float* xds,
             int64_t ldb, const uint8_t* w0, const uint8_t* w1, int64_t BB, float* out) {
  constexpr int64_t CB = KIND == kNib ? 256 : 512;
  __m512 facc[R][P];
  for (int r = 0; r < R; ++r)
    for (int p = 0; p < P; ++p) facc[r][p] = _mm512_setzero_ps();
  const __m512i m4 = _mm512_set1_epi8(0x0f);
  const uint8_t* wp[2] = {w0, w1};
  for (int64_t b = 0; b < nb; ++b) {
    __m512i acc[R][P];
    for (int r = 0; r < R; ++r)
      for (int p = 0; p < P; ++p) acc[r][p] = _mm512_set1_epi32(xzs[r * ldb + b]);
    const int8_t* xb = xq + 32 * b;
    if (KIND == kNib) {
      for (int s = 0; s < 4; ++s) {
        __m512i lo[P], hi[P];
        for (int p = 0; p < P; ++p) {
          const __m512i v = _mm512_loadu_si512(wp[p] + s * 64);
          lo[p] = _mm512_and_si512(v, m4);
          hi[p] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
        }
        for (int r = 0; r < R; ++r) {
          const __m512i xl = bcast4(xb + r * ldq + 4 * s), xh = bcast4(xb + r * ldq + 16 + 4 * s);
          for (int p = 0; p < P; ++p) {
            acc[r][p] = _mm512_dpbusd_epi32(acc[r][p], lo[p], xl);
            acc[r][p] = _mm512_dpbusd_epi32(acc[r][p], hi[p], xh);
          }
        }
      }
    } else {
      for (int s = 0; s < 8; ++s) {
        __m512i w[P];
        for (int p = 0; p < P; ++p) w[p] = _mm512_loadu_si512(wp[p] + s * 64);
        for (int r = 0; r < R; ++r) {
          const __m512i x = bcast4(xb + r * ldq + 4 * s);
          for (int p = 0; p < P; ++p) acc[r][p] = _mm512_dpbusd_epi32(acc[r][p], w[p], x);
        }
      }
    }
    __m512 dw[P], mw[P];
    for (int p = 0; p < P; ++p) {
      dw[p] = _mm512_loadu_ps(reinterpret_cast<const float*>(wp[p] + CB));
      if (HAS_M) mw[p] = _mm512_loadu_ps(reinterpret_cast<const float*>(wp[p] + CB + 64));
    }
    for (int r = 0; r < R; ++r) {
      const __m512 dx = _mm512_set1_ps(xd[r * ldb + b]);
      for (int p = 0; p < P; ++p) {
        const __m512 f = _mm512_cvtepi32_ps(acc[r][p]);
        facc[r][p] = _mm512_fmadd_ps(f, _mm512_mul_ps(dw[p], dx), facc[r][p]);
      }
      if (HAS_M) {
        const __m512 ds = _mm512_set1_ps(xds[r * ldb + b]);
        for (int p = 0; p < P; ++p) facc[r][p] = _mm512_fmadd_ps(mw[p], ds, facc[r][p]);
      }
    }
    for (int p = 0; p < P; ++p) wp[p] += BB;
  }
  for (int r = 0; r < R; ++r)
    for (int p = 0; p < P; ++p) _mm512_storeu_ps(out + r * 32 + p * 16, facc[r][p]);
}

using Ukernel = void (*)(int64_t, const int8_t*, int64_t, const float*, const int32_t*, const float*, int64_t,
                         const uint8_t*, const uint8_t*, int64_t, float*);

// Every (R, P) variant, R = I / 2 + 1, P = I % 2 + 1.
template <int KIND, bool HAS_M, int... I>
constexpr std::array<Ukernel, sizeof...(I)> ukernel_table(std::integer_sequence<int, I...>) {
  return {ukernel<I / 2 + 1, I % 2 + 1, KIND, HAS_M>...};
}

template <int KIND, bool HAS_M>
Ukernel pick(int R, int P) {
  static constexpr auto k = ukernel_table<KIND, HAS_M>(std::make_integer_sequence<int, 2 * kMR>());
  return k[(R - 1) * 2 + (P - 1)];
}

Ukernel pick_for(DType t, bool spread, int R, int P) {
  if (spread) return qpack_has_m(t) ? pick<kU8, true>(R, P) : pick<kU8, false>(R, P);  // codes as bytes
  switch (t) {
    case DType::Q8_0: return pick<kQ8, false>(R, P);
    case DType::Q4_0: return pick<kNib, false>(R, P);
    case DType::Q4_1: return pick<kNib, true>(R, P);
    case DType::Q5_0: return pick<kU8, false>(R, P);
    default: return pick<kU8, true>(R, P);
  }
}

// R rows x P (1 or 2) panels, the second PB bytes after the first.
void run_tile(DType t, bool spread, int R, int P, int64_t nb, const int8_t* xq, int64_t ldq, const float* xd, const int32_t* xzs,
              const float* xds, int64_t ldb, const uint8_t* w, int64_t PB, int64_t BB, float* tile) {
  pick_for(t, spread, R, P)(nb, xq, ldq, xd, xzs, xds, ldb, w, P == 2 ? w + PB : w, BB, tile);
}

// Tile epilogue: y = act(sum + bias) + residual for R rows x nc columns (residual may alias Y).
void finish_tile(const GemmArgs& a, const float* tile, int R, int64_t row0, int64_t col0, int64_t nc) {
  alignas(64) float t[32];
  const __mmask16 k0 = static_cast<__mmask16>(nc >= 16 ? 0xffff : (1u << nc) - 1);
  const __mmask16 k1 = static_cast<__mmask16>(nc >= 32 ? 0xffff : nc <= 16 ? 0 : (1u << (nc - 16)) - 1);
  const __m512 b0 = a.bias ? _mm512_maskz_loadu_ps(k0, a.bias + col0) : _mm512_setzero_ps();
  const __m512 b1 = a.bias ? _mm512_maskz_loadu_ps(k1, a.bias + col0 + 16) : _mm512_setzero_ps();
  for (int r = 0; r < R; ++r) {
    _mm512_store_ps(t, _mm512_add_ps(_mm512_loadu_ps(tile + r * 32), b0));
    _mm512_store_ps(t + 16, _mm512_add_ps(_mm512_loadu_ps(tile + r * 32 + 16), b1));
    if (a.act != Act::None) act_inplace(t, nc, a.act);
    __m512 y0 = _mm512_load_ps(t), y1 = _mm512_load_ps(t + 16);
    float* y = a.Y + (row0 + r) * a.ldy + col0;
    if (a.residual) {
      const float* res = a.residual + (row0 + r) * a.ldr + col0;
      y0 = _mm512_add_ps(y0, _mm512_maskz_loadu_ps(k0, res));
      y1 = _mm512_add_ps(y1, _mm512_maskz_loadu_ps(k1, res + 16));
    }
    if (a.relu_out) {
      y0 = _mm512_max_ps(_mm512_setzero_ps(), y0);
      y1 = _mm512_max_ps(_mm512_setzero_ps(), y1);
    }
    _mm512_mask_storeu_ps(y, k0, y0);
    _mm512_mask_storeu_ps(y + 16, k1, y1);
  }
}

void qgemm(const GemmArgs& a, int ith, int nth) {
  // Nibble types: spread groups up to 256 KiB (L2), and 512 KiB of quantized rows per chunk so
  // that a spread group serves 4x the row tiles (ViT-B/16 Q4_0 batch 8: 0.96x the time).
  qgemm_run<kMR, 2, 256 << 10, 512 << 10, quantize_rows, run_tile, finish_tile>(a, qgemm_act_qmax_full(a.wtype),
                                                                                 ith, nth);
}

}  // namespace
}  // namespace avx512

void register_quant_avx512(KernelTable& t) {
  t.qgemm_pack_size = qgemm_pack_size_generic;
  t.qgemm_pack = qgemm_pack_generic;
  t.qgemm = avx512::qgemm;
  t.qgemm_act_qmax = qgemm_act_qmax_full;  // vpdpbusd sums in int32: no headroom needed
}

}  // namespace pyvitcpp
