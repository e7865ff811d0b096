// Fused multi-head attention for the AVX2+FMA level (flash-attention order, fp32).
// Included only by ops_avx2.cpp; every function has internal linkage.
//
// Work unit: (batch b, head h, block of QB*MR query rows). Thread ith takes a contiguous range
// of units, so it meets each head it touches in one run, and it packs that head's K and V once
// into its workspace:
//   Kt  K transposed into panels of PW keys: panel p holds Kt[p][d][0..PW) = K[p*PW + c][d],
//       so a score block is vectorised over keys (FMA of a broadcast q[r][d] with a K row).
//   Vp  V rows copied with the head dim zero-padded to a multiple of 8 (no tails in P.V).
// For a block, the keys are visited in tiles of NKT keys (K and V of one tile: 2*NKT*Dh floats,
// L1-resident while all QB row tiles of the block use them; streaming whole heads through L2
// for every 4 query rows was the bottleneck).
// Up to kTwoPassMaxKeys keys (every ViT at 224..518) a block keeps its whole score rows and
// runs in two passes over the key tiles: S = (scale*log2e) Q.K^T for all keys, then per row
// m = max S, P = 2^(S - m), l = sum P, then Oacc = P.V, O = Oacc / l. Above that, per MR-row
// tile and key tile, the online softmax:
//   S = (scale*log2e) Q.K^T (MR x NKT, in the workspace), m' = max(m, rowmax S),
//   alpha = 2^(m - m'), P = 2^(S - m'), l = alpha l + rowsum P, Oacc = alpha Oacc + P.V,
// and at the end O = Oacc / l. Nothing of size Tq x Tk exists. The two-pass order saves the
// per-tile row reductions, the scalar 2^(m - m') and the rescaling of Oacc: at 12 x 197 x 64
// (ViT-B) about 21 -> 23 flop per cycle on one shared Zen 3 core, +5-10% (FMA peak 32;
// scripts/probes/attention_probe.cpp, best of 200 calls; runs scatter by +-10% there).
#pragma once
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

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

// Vector traits of this level for the shared additive-term code (kernels/attention_terms.h).
struct VT {
  using V = __m256;
  static constexpr int W = 8;
  static V zero() { return _mm256_setzero_ps(); }
  static V set1(float x) { return _mm256_set1_ps(x); }
  static V loadu(const float* p) { return _mm256_loadu_ps(p); }
  static void storeu(float* p, V v) { _mm256_storeu_ps(p, v); }
  static __m256i first(int n) {  // lanes [0, n) set, 0 <= n <= 8
    alignas(32) static const int32_t src[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 8 - n));
  }
  static V load_n(const float* p, int n) { return _mm256_maskload_ps(p, first(n)); }
  static void store_n(float* p, V v, int n) { _mm256_maskstore_ps(p, first(n), v); }
  static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
};

#include "kernels/attention_terms.h"

// Keys up to which a work unit keeps its whole score rows (QB*MR x npanels*PW floats, 132 KiB
// at the limit, L2-resident) and computes the softmax in two passes instead of online: at 1370
// keys (DINOv2 at 518) even to +7%, at 2000 about even (scripts/probes/attention_probe.cpp).
constexpr int64_t kTwoPassMaxKeys = 2064;

struct Layout {
  int64_t npanels, dhp;
  bool two_pass;
  int64_t lds;  // row stride of the scores
  int64_t off_kt, off_v, off_s, off_o, off_ml, off_rt, off_rel, floats;
};

inline Layout layout(const AttentionArgs& a) {
  Layout L;
  L.npanels = (a.Tk + PW - 1) / PW;
  L.dhp = round_up(a.Dh, 8);
  L.two_pass = L.npanels * PW <= kTwoPassMaxKeys;
  L.lds = L.two_pass ? L.npanels * PW : NKT;
  int64_t off = 0;
  auto take = [&](int64_t n) {
    int64_t o = off;
    off += round_up(n, 16);  // keep every region 64-byte aligned
    return o;
  };
  L.off_kt = take(L.npanels * a.Dh * PW);
  L.off_v = take(a.Tk * L.dhp);
  L.off_s = take(L.two_pass ? int64_t{QB} * MR * L.lds : int64_t{MR} * NKT);
  L.off_o = take(int64_t{QB} * MR * L.dhp);
  L.off_ml = take(3 * QB * MR);
  L.off_rt = take(rel_tables_floats(a));           // packed rel_h / rel_w (0 without rel-pos)
  L.off_rel = take(int64_t{QB} * MR * rel_row_ld(a));  // the block's rows of rel dot products
  L.floats = off;
  return L;
}

// Bytes per thread: 4 * (P*Dh + Tk*roundup(Dh,8) + S + 16*roundup(Dh,8) + 48), P = ceil(Tk/24)*24,
// S = 16*P with two passes (P <= 2064), else 4*48,
// plus 64 for alignment (each region rounded up to 16 floats); with the relative-position term
// also Dh*(ld(gh) + ld(gw)) + 16*(roundup(gh,8) + roundup(gw,8)), ld(g) = roundup(2g-1,8) + 8.
static size_t attention_workspace(const AttentionArgs& a) {
  return static_cast<size_t>(layout(a).floats) * sizeof(float) + 64;
}

inline void pack_head(const AttentionArgs& a, const Layout& L, int64_t b, int64_t h, float* Kt, float* Vp) {
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
  for (; j < L.npanels * PW; ++j) {
    float* dst = Kt + (j / PW) * Dh * PW + (j % PW);
    for (int64_t d = 0; d < Dh; ++d) dst[d * PW] = 0.0f;
  }
  const int64_t Dv = Dh & ~int64_t{7};
  for (j = 0; j < Tk; ++j) {
    float* dst = Vp + j * L.dhp;
    const float* src = V + j * a.v_st;
    int64_t d = 0;
    for (; d < Dv; d += 8) _mm256_store_ps(dst + d, _mm256_loadu_ps(src + d));
    for (; d < Dh; ++d) dst[d] = src[d];
    for (; d < L.dhp; ++d) dst[d] = 0.0f;
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

// Online-softmax step for MR rows of S (nkp columns, those >= nk already -inf): S := P.
inline void softmax_step(float* S, int64_t lds, int64_t nkp, float* m, float* l, float* alpha) {
  const __m256 ninf = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  for (int r = 0; r < MR; ++r) {
    float* s = S + r * lds;
    __m256 mx0 = ninf, mx1 = ninf;
    int64_t j = 0;
    for (; j + 16 <= nkp; j += 16) {
      mx0 = _mm256_max_ps(mx0, _mm256_load_ps(s + j));
      mx1 = _mm256_max_ps(mx1, _mm256_load_ps(s + j + 8));
    }
    if (j < nkp) mx0 = _mm256_max_ps(mx0, _mm256_load_ps(s + j));
    __m256 mx = _mm256_max_ps(mx0, mx1);
    __m128 h4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
    h4 = _mm_max_ps(h4, _mm_movehl_ps(h4, h4));
    h4 = _mm_max_ss(h4, _mm_movehdup_ps(h4));
    const float tmax = _mm_cvtss_f32(h4);
    const float mnew = tmax > m[r] ? tmax : m[r];
    alpha[r] = mnew == m[r] ? 1.0f : std::exp2(m[r] - mnew);  // 0 on the first tile (m = -inf)
    m[r] = mnew;
    // A row whose keys so far are all masked (-inf) has m = -inf: subtracting 0 instead keeps
    // -inf - -inf = NaN out of P (its P are ~0, and alpha = 0 drops them at the first finite key).
    const __m256 mv = _mm256_set1_ps(mnew == -std::numeric_limits<float>::infinity() ? 0.0f : mnew);
    __m256 s0 = _mm256_setzero_ps(), s1 = s0;
    for (j = 0; j + 16 <= nkp; j += 16) {
      __m256 p0 = vm::exp2_neg(_mm256_sub_ps(_mm256_load_ps(s + j), mv));
      __m256 p1 = vm::exp2_neg(_mm256_sub_ps(_mm256_load_ps(s + j + 8), mv));
      _mm256_store_ps(s + j, p0);
      _mm256_store_ps(s + j + 8, p1);
      s0 = _mm256_add_ps(s0, p0);
      s1 = _mm256_add_ps(s1, p1);
    }
    if (j < nkp) {
      __m256 p0 = vm::exp2_neg(_mm256_sub_ps(_mm256_load_ps(s + j), mv));
      _mm256_store_ps(s + j, p0);
      s0 = _mm256_add_ps(s0, p0);
    }
    __m256 sv = _mm256_add_ps(s0, s1);
    __m128 q4 = _mm_add_ps(_mm256_castps256_ps128(sv), _mm256_extractf128_ps(sv, 1));
    q4 = _mm_add_ps(q4, _mm_movehl_ps(q4, q4));
    q4 = _mm_add_ss(q4, _mm_movehdup_ps(q4));
    l[r] = l[r] * alpha[r] + _mm_cvtss_f32(q4);
  }
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

static void attention(const AttentionArgs& a, void* workspace, int ith, int nth) {
  if (a.B <= 0 || a.H <= 0 || a.Tq <= 0 || a.Tk <= 0 || a.Dh <= 0) return;
  const Layout L = layout(a);
  char* base = static_cast<char*>(workspace) + static_cast<size_t>(ith) * attention_workspace(a);
  float* ws = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(base) + 63) & ~uintptr_t{63});
  float* Kt = ws + L.off_kt;
  float* Vp = ws + L.off_v;
  float* S = ws + L.off_s;
  float* Oacc = ws + L.off_o;
  float* m = ws + L.off_ml;
  float* l = m + QB * MR;
  float* alpha = l + QB * MR;
  float* RT = ws + L.off_rt;
  float* relr = ws + L.off_rel;
  const bool terms = attn_has_terms(a), rel = attn_has_rel(a);
  const int64_t rld = rel_row_ld(a);

  const int64_t Dh = a.Dh, Tk = a.Tk, dhp = L.dhp;
  const int64_t QBR = int64_t{QB} * MR;
  const int64_t bph = (a.Tq + QBR - 1) / QBR;  // query blocks per head
  const int64_t units = a.B * a.H * bph;
  const int64_t u0 = units * ith / nth, u1 = units * (ith + 1) / nth;
  const float cs = a.scale * 1.44269504088896341f;
  const int64_t Dv = Dh & ~int64_t{7};
  alignas(32) static const int32_t mask_src[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  const __m256i otail = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(mask_src + 8 - (Dh - Dv)));

  if (rel && u0 < u1) rel_pack(a, RT);
  int64_t cur_bh = -1;
  for (int64_t u = u0; u < u1; ++u) {
    const int64_t bh = u / bph, i0 = (u % bph) * QBR;
    const int64_t b = bh / a.H, h = bh % a.H;
    if (bh != cur_bh) {
      pack_head(a, L, b, h, Kt, Vp);
      cur_bh = bh;
    }
    const int64_t nrb = a.Tq - i0 < QBR ? a.Tq - i0 : QBR;  // rows in this block
    const int64_t nsub = (nrb + MR - 1) / MR;
    const float* q0 = a.Q + b * a.q_sb + i0 * a.q_st + h * a.q_sh;
    for (int64_t r = 0; r < nsub * MR; ++r) {
      m[r] = -std::numeric_limits<float>::infinity();
      l[r] = 0.0f;
    }
    if (rel)
      for (int64_t r = 0; r < nrb; ++r) rel_row(a, q0 + r * a.q_st, RT, i0 + r, relr + r * rld);
    auto scores = [&](int64_t k0, int64_t nk, int64_t sb, float* Sb, int64_t lds) {
      const float* qr[MR];
      for (int r = 0; r < MR; ++r) {  // rows past the end repeat the last one (computed, not stored)
        const int64_t i = sb * MR + r < nrb ? sb * MR + r : nrb - 1;
        qr[r] = q0 + i * a.q_st;
      }
      const int64_t nkp = round_up(nk, 8);
      const float* ktile = Kt + (k0 / PW) * Dh * PW;
      for (int64_t j = 0; j < nkp; j += PW) {
        const int64_t nv = (nkp - j) / 8;
        const float* kt = ktile + (j / PW) * Dh * PW;
        if (nv >= 3) qk_block<3>(qr, kt, Dh, &cs, Sb + j, lds);
        else if (nv == 2) qk_block<2>(qr, kt, Dh, &cs, Sb + j, lds);
        else qk_block<1>(qr, kt, Dh, &cs, Sb + j, lds);
      }
      if (terms)
        for (int r = 0; r < MR; ++r) {
          const int64_t ri = sb * MR + r < nrb ? sb * MR + r : nrb - 1;
          add_terms_row(a, b, h, i0 + ri, k0, nk, rel ? relr + ri * rld : nullptr, Sb + r * lds);
        }
      if (nkp > nk)
        for (int r = 0; r < MR; ++r)
          for (int64_t j = nk; j < nkp; ++j) Sb[r * lds + j] = -std::numeric_limits<float>::infinity();
    };
    if (L.two_pass) {
      // Whole score rows: one max, one exp pass and one sum per row, no rescaling of Oacc.
      const int64_t lds = L.lds;
      for (int64_t k0 = 0; k0 < Tk; k0 += NKT) {
        const int64_t nk = Tk - k0 < NKT ? Tk - k0 : NKT;
        for (int64_t sb = 0; sb < nsub; ++sb) scores(k0, nk, sb, S + sb * MR * lds + k0, lds);
      }
      for (int64_t sb = 0; sb < nsub; ++sb)
        softmax_step(S + sb * MR * lds, lds, round_up(Tk, 8), m + sb * MR, l + sb * MR, alpha + sb * MR);
      for (int64_t k0 = 0; k0 < Tk; k0 += NKT) {
        const int64_t nk = Tk - k0 < NKT ? Tk - k0 : NKT;
        const float* vt = Vp + k0 * dhp;
        for (int64_t sb = 0; sb < nsub; ++sb) {
          const float* P = S + sb * MR * lds + k0;
          float* oa = Oacc + sb * MR * dhp;
          if (k0 == 0) pv_tile<true>(P, lds, vt, dhp, nk, oa, nullptr);
          else pv_tile<false>(P, lds, vt, dhp, nk, oa, nullptr);
        }
      }
    } else {
      for (int64_t k0 = 0; k0 < Tk; k0 += NKT) {
        const int64_t nk = Tk - k0 < NKT ? Tk - k0 : NKT;
        const float* vt = Vp + k0 * dhp;
        for (int64_t sb = 0; sb < nsub; ++sb) {
          scores(k0, nk, sb, S, NKT);
          softmax_step(S, NKT, round_up(nk, 8), m + sb * MR, l + sb * MR, alpha + sb * MR);
          float* oa = Oacc + sb * MR * dhp;
          if (k0 == 0) pv_tile<true>(S, NKT, vt, dhp, nk, oa, alpha + sb * MR);
          else pv_tile<false>(S, NKT, vt, dhp, nk, oa, alpha + sb * MR);
        }
      }
    }
    for (int64_t r = 0; r < nrb; ++r) {
      float* o = a.O + b * a.o_sb + (i0 + r) * a.o_st + h * a.o_sh;
      const float* oa = Oacc + r * dhp;
      const __m256 inv = _mm256_set1_ps(1.0f / l[r]);
      int64_t d = 0;
      for (; d < Dv; d += 8) _mm256_storeu_ps(o + d, _mm256_mul_ps(_mm256_load_ps(oa + d), inv));
      if (d < Dh) _mm256_maskstore_ps(o + d, otail, _mm256_mul_ps(_mm256_load_ps(oa + d), inv));
    }
  }
}

}  // namespace attn
}  // namespace avx2
}  // namespace pyvitcpp
