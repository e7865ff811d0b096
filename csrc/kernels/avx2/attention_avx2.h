// Fused multi-head attention for the AVX2+FMA level (flash-attention order, fp32): this level's
// tile sizes, vector traits and microkernels (K/V packing, the MR x PW score block, the P.V
// block); the driver (work split, blocked two-pass softmax, additive terms) is the ISA-neutral
// kernels/attention_body.h, instantiated here. Included only by ops_avx2.cpp; internal linkage.
//
// Tiles: 4 query rows x 24 keys per score block (12 ymm accumulators), key tiles of 48 keys
// (K and V of one tile: 2*NKT*Dh floats, L1-resident while all QB row tiles of the block use
// them; streaming whole heads through L2 for every 4 query rows was the bottleneck), blocks of
// QB = 4 row tiles (16 query rows). Whole score rows up to kChunkKeys keys: the two-pass order
// saves the per-tile row reductions, the scalar 2^(m - m') and the rescaling of Oacc: at
// 12 x 197 x 64 (ViT-B) about 21 -> 23 flop per cycle on one shared Zen 3 core, +5-10% (FMA
// peak 32; scripts/probes/attention_probe.cpp, best of 200 calls; runs scatter by +-10% there).
#pragma once
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "kernels/avx2/vec_avx2.h"
#include "kernels/avx2/vecmath_avx2.h"
#include "kernels/kernels.h"

namespace pyvitcpp {
namespace avx2 {
namespace attn {

constexpr int MR = 4;             // query rows per tile (4 x 3 accumulators + 4 = 16 ymm)
constexpr int PV_ = 3;            // vectors of 8 keys per K panel
constexpr int PW = 8 * PV_;       // keys per K panel
#ifndef PYVITCPP_ATTN_AVX2_TP
#define PYVITCPP_ATTN_AVX2_TP 2
#endif
#ifndef PYVITCPP_ATTN_AVX2_QB
#define PYVITCPP_ATTN_AVX2_QB 4
#endif
constexpr int TILE_PANELS = PYVITCPP_ATTN_AVX2_TP;  // key tile = 48 keys: K+V tile 24 KiB at Dh 64
constexpr int NKT = TILE_PANELS * PW;
constexpr int QB = PYVITCPP_ATTN_AVX2_QB;  // MR-row tiles per work unit (16 query rows)
constexpr int DV = 3;             // head-dim vectors per P.V register block

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// This level's vector traits (kernels/avx2/vec_avx2.h), shared with the other kernel bodies.
using VT = ::pyvitcpp::avx2::VT;

#include "kernels/attention_terms.h"

// Keys per softmax chunk (attention_body.h): a block keeps QB*MR x kChunkKeys scores (132 KiB,
// L2-resident). Whole-row two-pass up to here measured on Zen 3: at 1370 keys (DINOv2 at 518)
// even to +7% over the per-tile online softmax, at 2000 about even
// (scripts/probes/attention_probe.cpp). A multiple of NKT.
constexpr int64_t kChunkKeys = 2064;
static_assert(kChunkKeys % NKT == 0, "chunks are whole key tiles");

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
  const int64_t Dv = Dh & ~int64_t{7};
  for (j = 0; j < Tk; ++j) {
    float* dst = Vp + j * dhp;
    const float* src = V + j * a.v_st;
    int64_t d = 0;
    for (; d < Dv; d += 8) _mm256_store_ps(dst + d, _mm256_loadu_ps(src + d));
    for (; d < Dh; ++d) dst[d] = src[d];
    for (; d < dhp; ++d) dst[d] = 0.0f;
  }
}

// S[r][0..8*NV) = c * q_r . K[panel keys], register-blocked MR x NV vectors. Not inlined, and
// the four row pointers, the accumulators and the NV panel vectors are plain locals, so the
// block keeps all 16 ymm registers to itself whatever its caller holds. With the kernel inlined
// into a probe's main(), GCC reloaded the row pointers and the K vectors for every FMA (20 loads
// per 12 FMAs, 57% of the FMA rate); in ops_avx2.cpp's build it had kept them in registers.
template <int NV>
__attribute__((noinline)) void qk_block(const float* const* qr, const float* kt, int64_t Dh, const float* cp, float* s,
                                        int64_t lds) {
  const float* q0 = qr[0];
  const float* q1 = qr[1];
  const float* q2 = qr[2];
  const float* q3 = qr[3];
  __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a10 = a00, a11 = a00, a12 = a00;
  __m256 a20 = a00, a21 = a00, a22 = a00, a30 = a00, a31 = a00, a32 = a00;
  for (int64_t d = 0; d < Dh; ++d) {
    const float* kd = kt + d * PW;
    const __m256 k0 = _mm256_load_ps(kd);
    const __m256 k1 = NV > 1 ? _mm256_load_ps(kd + 8) : k0;
    const __m256 k2 = NV > 2 ? _mm256_load_ps(kd + 16) : k0;
    __m256 b = _mm256_broadcast_ss(q0 + d);
    a00 = _mm256_fmadd_ps(b, k0, a00);
    if (NV > 1) a01 = _mm256_fmadd_ps(b, k1, a01);
    if (NV > 2) a02 = _mm256_fmadd_ps(b, k2, a02);
    b = _mm256_broadcast_ss(q1 + d);
    a10 = _mm256_fmadd_ps(b, k0, a10);
    if (NV > 1) a11 = _mm256_fmadd_ps(b, k1, a11);
    if (NV > 2) a12 = _mm256_fmadd_ps(b, k2, a12);
    b = _mm256_broadcast_ss(q2 + d);
    a20 = _mm256_fmadd_ps(b, k0, a20);
    if (NV > 1) a21 = _mm256_fmadd_ps(b, k1, a21);
    if (NV > 2) a22 = _mm256_fmadd_ps(b, k2, a22);
    b = _mm256_broadcast_ss(q3 + d);
    a30 = _mm256_fmadd_ps(b, k0, a30);
    if (NV > 1) a31 = _mm256_fmadd_ps(b, k1, a31);
    if (NV > 2) a32 = _mm256_fmadd_ps(b, k2, a32);
  }
  const __m256 c = _mm256_broadcast_ss(cp);
  const __m256 acc[MR][3] = {{a00, a01, a02}, {a10, a11, a12}, {a20, a21, a22}, {a30, a31, a32}};
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) _mm256_store_ps(s + r * lds + 8 * v, _mm256_mul_ps(acc[r][v], c));
}

// Oacc[r][8*ND block] = alpha[r] * Oacc[r][...] + sum_{j<nk} P[r][j] * Vp[j][...]
// (kFirst: the first key tile, Oacc not yet written; alpha null: no rescaling).
template <int ND, bool kFirst>
inline void pv_block(const float* P, int64_t lds, const float* vp, int64_t ldv, int64_t nk, float* o,
                     int64_t ldo, const float* alpha) {
  __m256 acc[MR][ND];
  for (int r = 0; r < MR; ++r) {
    for (int k = 0; k < ND; ++k) {
      if (kFirst) acc[r][k] = _mm256_setzero_ps();
      else if (alpha) acc[r][k] = _mm256_mul_ps(_mm256_load_ps(o + r * ldo + 8 * k), _mm256_broadcast_ss(alpha + r));
      else acc[r][k] = _mm256_load_ps(o + r * ldo + 8 * k);
    }
  }
  for (int64_t j = 0; j < nk; ++j) {
    const float* vj = vp + j * ldv;
    __m256 vv[ND];
    for (int k = 0; k < ND; ++k) vv[k] = _mm256_load_ps(vj + 8 * k);
    for (int r = 0; r < MR; ++r) {
      __m256 pb = _mm256_broadcast_ss(P + r * lds + j);
      for (int k = 0; k < ND; ++k) acc[r][k] = _mm256_fmadd_ps(pb, vv[k], acc[r][k]);
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int k = 0; k < ND; ++k) _mm256_store_ps(o + r * ldo + 8 * k, acc[r][k]);
}

template <bool kFirst>
inline void pv_tile(const float* S, int64_t lds, const float* vt, int64_t dhp, int64_t nk, float* Oacc,
                    const float* alpha) {
  // Blocks of 3 vectors, but 2 + 2 rather than 3 + 1 (a 1-vector block has 4 accumulators:
  // FMA latency bound).
  for (int64_t d = 0; d < dhp;) {
    const int64_t nd = (dhp - d) / 8;
    if (nd >= 3 && nd != 4) {
      pv_block<DV, kFirst>(S, lds, vt + d, dhp, nk, Oacc + d, dhp, alpha);
      d += 8 * DV;
    } else if (nd >= 2) {
      pv_block<2, kFirst>(S, lds, vt + d, dhp, nk, Oacc + d, dhp, alpha);
      d += 16;
    } else {
      pv_block<1, kFirst>(S, lds, vt + d, dhp, nk, Oacc + d, dhp, alpha);
      d += 8;
    }
  }
}

// The score block for one K panel of nv vectors (1..3) of 8 keys.
inline void qk_panel(const float* const* qr, const float* kt, int64_t Dh, int64_t nv, const float* cp, float* s,
                     int64_t lds) {
  if (nv >= 3) qk_block<3>(qr, kt, Dh, cp, s, lds);
  else if (nv == 2) qk_block<2>(qr, kt, Dh, cp, s, lds);
  else qk_block<1>(qr, kt, Dh, cp, s, lds);
}

#include "kernels/attention_body.h"

}  // namespace attn
}  // namespace avx2
}  // namespace pyvitcpp
