// Fused multi-head attention for the AVX-512 level (flash-attention order, fp32): this level's
// tile sizes, vector traits and microkernels (K/V packing, the MR x PW score block, the P.V
// block); the driver (work split, blocked two-pass softmax, additive terms) is the ISA-neutral
// kernels/attention_body.h, instantiated here. Included only by ops_avx512.cpp; internal linkage.
//
// Tiles: 6 query rows x 64 keys per score block (24 zmm accumulators), key tiles of 256 keys
// (ViT-B's 197 keys: one tile), blocks of QB row tiles, whole score rows per chunk of
// kChunkKeys keys.
#pragma once
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "kernels/avx512/vec_avx512.h"
#include "kernels/avx512/vecmath_avx512.h"
#include "kernels/kernels.h"

namespace pyvitcpp {
namespace avx512 {
namespace attn {

constexpr int MR = 6;             // query rows per tile (6 x 4 accumulators + 4 = 28 zmm)
constexpr int PV_ = 4;            // vectors of 16 keys per K panel
constexpr int PW = 16 * PV_;      // keys per K panel
constexpr int TILE_PANELS = 4;    // key tile = 256 keys (ViT-B's 197 keys: one tile)
constexpr int NKT = TILE_PANELS * PW;
constexpr int DV = 4;             // head-dim vectors per P.V register block (Dh = 64: one)
#ifndef PYVITCPP_ATTN_AVX512_QB
#define PYVITCPP_ATTN_AVX512_QB 1
#endif
constexpr int QB = PYVITCPP_ATTN_AVX512_QB;  // MR-row tiles per work unit
#ifndef PYVITCPP_ATTN_AVX512_CHUNK
#define PYVITCPP_ATTN_AVX512_CHUNK 2048
#endif
// Keys per softmax chunk (attention_body.h): QB*MR x kChunkKeys scores (48 KiB at QB = 1).
constexpr int64_t kChunkKeys = PYVITCPP_ATTN_AVX512_CHUNK;
static_assert(kChunkKeys % NKT == 0, "chunks are whole key tiles");

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// This level's vector traits (kernels/avx512/vec_avx512.h), shared with the other kernel bodies.
using VT = ::pyvitcpp::avx512::VT;

#include "kernels/attention_terms.h"

inline void pack_head(const AttentionArgs& a, int64_t npanels, int64_t dhp, int64_t b, int64_t h, float* Kt, float* Vp) {
  const int64_t Dh = a.Dh, Tk = a.Tk;
  const float* K = a.K + b * a.k_sb + h * a.k_sh;
  const float* V = a.V + b * a.v_sb + h * a.v_sh;
  int64_t j = 0;
  // 8 keys at a time: an 8x8 transpose per 8 head dims (scalar for the last d % 8).
  for (; j + 8 <= Tk; j += 8) {
    float* dst = Kt + (j / PW) * Dh * PW + (j % PW);
    const float* k0 = K + j * a.k_st;
    int64_t d = 0;
    for (; d + 8 <= Dh; d += 8) {
      __m256 r0 = _mm256_loadu_ps(k0 + 0 * a.k_st + d), r1 = _mm256_loadu_ps(k0 + 1 * a.k_st + d);
      __m256 r2 = _mm256_loadu_ps(k0 + 2 * a.k_st + d), r3 = _mm256_loadu_ps(k0 + 3 * a.k_st + d);
      __m256 r4 = _mm256_loadu_ps(k0 + 4 * a.k_st + d), r5 = _mm256_loadu_ps(k0 + 5 * a.k_st + d);
      __m256 r6 = _mm256_loadu_ps(k0 + 6 * a.k_st + d), r7 = _mm256_loadu_ps(k0 + 7 * a.k_st + d);
      __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
      __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
      __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
      __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
      __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
      __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
      __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
      __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
      float* o = dst + d * PW;
      _mm256_store_ps(o + 0 * PW, _mm256_permute2f128_ps(u0, u4, 0x20));
      _mm256_store_ps(o + 1 * PW, _mm256_permute2f128_ps(u1, u5, 0x20));
      _mm256_store_ps(o + 2 * PW, _mm256_permute2f128_ps(u2, u6, 0x20));
      _mm256_store_ps(o + 3 * PW, _mm256_permute2f128_ps(u3, u7, 0x20));
      _mm256_store_ps(o + 4 * PW, _mm256_permute2f128_ps(u0, u4, 0x31));
      _mm256_store_ps(o + 5 * PW, _mm256_permute2f128_ps(u1, u5, 0x31));
      _mm256_store_ps(o + 6 * PW, _mm256_permute2f128_ps(u2, u6, 0x31));
      _mm256_store_ps(o + 7 * PW, _mm256_permute2f128_ps(u3, u7, 0x31));
    }
    for (; d < Dh; ++d)
      for (int c = 0; c < 8; ++c) dst[d * PW + c] = k0[c * a.k_st + d];
  }
  for (; j < Tk; ++j) {
    float* dst = Kt + (j / PW) * Dh * PW + (j % PW);
    const float* k = K + j * a.k_st;
    for (int64_t d = 0; d < Dh; ++d) dst[d * PW] = k[d];
  }
  // Zero the unused key columns of the last panel (their scores are masked, but 0 * garbage
  // could still raise NaN/overflow noise in the dot products).
  for (; j < npanels * PW; ++j) {
    float* dst = Kt + (j / PW) * Dh * PW + (j % PW);
    for (int64_t d = 0; d < Dh; ++d) dst[d * PW] = 0.0f;
  }
  const int64_t Dv = Dh & ~int64_t{15};
  const __mmask16 vtail = static_cast<__mmask16>((1u << (Dh - Dv)) - 1u);
  for (j = 0; j < Tk; ++j) {
    float* dst = Vp + j * dhp;
    const float* src = V + j * a.v_st;
    int64_t d = 0;
    for (; d < Dv; d += 16) _mm512_store_ps(dst + d, _mm512_loadu_ps(src + d));
    if (d < dhp) _mm512_store_ps(dst + d, _mm512_maskz_loadu_ps(vtail, src + d));
  }
}

// S[r][0..8*NV) = c * q_r . K[panel keys], register-blocked MR x NV vectors.
template <int NV>
inline void qk_block(const float* const* qr, const float* kt, int64_t Dh, __m512 c, float* s, int64_t lds) {
  __m512 acc[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  for (int64_t d = 0; d < Dh; ++d) {
    const float* kd = kt + d * PW;
    __m512 kv[NV];
    for (int v = 0; v < NV; ++v) kv[v] = _mm512_load_ps(kd + 16 * v);
    for (int r = 0; r < MR; ++r) {
      __m512 qb = _mm512_set1_ps(qr[r][d]);
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(qb, kv[v], acc[r][v]);
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) _mm512_store_ps(s + r * lds + 16 * v, _mm512_mul_ps(acc[r][v], c));
}

// Oacc[r][16*ND block] = alpha[r] * Oacc[r][...] + sum_{j<nk} P[r][j] * Vp[j][...]
// (kFirst: the first key tile, Oacc not yet written; alpha null: no rescaling).
template <int ND, bool kFirst>
inline void pv_block(const float* P, int64_t lds, const float* vp, int64_t ldv, int64_t nk, float* o,
                     int64_t ldo, const float* alpha) {
  __m512 acc[MR][ND];
  for (int r = 0; r < MR; ++r)
    for (int k = 0; k < ND; ++k) {
      if (kFirst) acc[r][k] = _mm512_setzero_ps();
      else if (alpha) acc[r][k] = _mm512_mul_ps(_mm512_load_ps(o + r * ldo + 16 * k), _mm512_set1_ps(alpha[r]));
      else acc[r][k] = _mm512_load_ps(o + r * ldo + 16 * k);
    }
  for (int64_t j = 0; j < nk; ++j) {
    const float* vj = vp + j * ldv;
    __m512 vv[ND];
    for (int k = 0; k < ND; ++k) vv[k] = _mm512_load_ps(vj + 16 * k);
    for (int r = 0; r < MR; ++r) {
      __m512 pb = _mm512_set1_ps(P[r * lds + j]);
      for (int k = 0; k < ND; ++k) acc[r][k] = _mm512_fmadd_ps(pb, vv[k], acc[r][k]);
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int k = 0; k < ND; ++k) _mm512_store_ps(o + r * ldo + 16 * k, acc[r][k]);
}

template <bool kFirst>
inline void pv_tile(const float* P, int64_t lds, const float* vt, int64_t dhp, int64_t nk, float* Oacc,
                    const float* alpha) {
  for (int64_t d = 0; d < dhp; d += 16 * DV) {
    const int64_t nd = (dhp - d) / 16;
    if (nd >= 4) pv_block<4, kFirst>(P, lds, vt + d, dhp, nk, Oacc + d, dhp, alpha);
    else if (nd == 3) pv_block<3, kFirst>(P, lds, vt + d, dhp, nk, Oacc + d, dhp, alpha);
    else if (nd == 2) pv_block<2, kFirst>(P, lds, vt + d, dhp, nk, Oacc + d, dhp, alpha);
    else pv_block<1, kFirst>(P, lds, vt + d, dhp, nk, Oacc + d, dhp, alpha);
  }
}

// The score block for one K panel of nv vectors (1..4) of 16 keys.
inline void qk_panel(const float* const* qr, const float* kt, int64_t Dh, int64_t nv, const float* cp, float* s,
                     int64_t lds) {
  const __m512 c = _mm512_set1_ps(*cp);
  if (nv >= 4) qk_block<4>(qr, kt, Dh, c, s, lds);
  else if (nv == 3) qk_block<3>(qr, kt, Dh, c, s, lds);
  else if (nv == 2) qk_block<2>(qr, kt, Dh, c, s, lds);
  else qk_block<1>(qr, kt, Dh, c, s, lds);
}

#include "kernels/attention_body.h"

}  // namespace attn
}  // namespace avx512
}  // namespace pyvitcpp
