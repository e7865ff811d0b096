// Fused multi-head attention for the AVX-512 level (flash-attention order, fp32).
// Included only by ops_avx512.cpp; every function has internal linkage.
//
// Work unit: (batch b, head h, tile of MR query rows). Thread ith takes a contiguous range of
// units, so it meets each head it touches in one run, and it packs that head's K and V once
// into its workspace:
//   Kt  K transposed into panels of PW keys: panel p holds Kt[p][d][0..PW) = K[p*PW + c][d],
//       so a score block is vectorised over keys (FMA of a broadcast q[r][d] with a K row).
//   Vp  V rows copied with the head dim zero-padded to a multiple of 16 (no tails in P.V).
// For each query tile the keys are visited in tiles of up to NKT keys with the online softmax:
//   S = (scale*log2e) Q.K^T (MR x NKT, in the workspace), m' = max(m, rowmax S),
//   alpha = 2^(m - m'), P = 2^(S - m'), l = alpha l + rowsum P, Oacc = alpha Oacc + P.V,
// and at the end O = Oacc / l. Nothing of size Tq x Tk exists.
#pragma once
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

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

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Vector traits of this level for the shared additive-term code (kernels/attention_terms.h).
struct VT {
  using V = __m512;
  static constexpr int W = 16;
  static V zero() { return _mm512_setzero_ps(); }
  static V set1(float x) { return _mm512_set1_ps(x); }
  static V loadu(const float* p) { return _mm512_loadu_ps(p); }
  static void storeu(float* p, V v) { _mm512_storeu_ps(p, v); }
  static __mmask16 first(int n) { return static_cast<__mmask16>((1u << n) - 1u); }  // 0 <= n < 16
  static V load_n(const float* p, int n) { return _mm512_maskz_loadu_ps(first(n), p); }
  static void store_n(float* p, V v, int n) { _mm512_mask_storeu_ps(p, first(n), v); }
  static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
};

#include "kernels/attention_terms.h"

struct Layout {
  int64_t npanels, dhp;
  int64_t off_kt, off_v, off_s, off_o, off_ml, off_rt, off_rel, floats;
};

inline Layout layout(const AttentionArgs& a) {
  Layout L;
  L.npanels = (a.Tk + PW - 1) / PW;
  L.dhp = round_up(a.Dh, 16);
  int64_t off = 0;
  auto take = [&](int64_t n) {
    int64_t o = off;
    off += round_up(n, 16);  // keep every region 64-byte aligned
    return o;
  };
  L.off_kt = take(L.npanels * a.Dh * PW);
  L.off_v = take(a.Tk * L.dhp);
  L.off_s = take(int64_t{MR} * NKT);
  L.off_o = take(int64_t{MR} * L.dhp);
  L.off_ml = take(3 * MR);
  L.off_rt = take(rel_tables_floats(a));       // packed rel_h / rel_w (0 without rel-pos)
  L.off_rel = take(int64_t{MR} * rel_row_ld(a));  // the tile's rows of rel dot products
  L.floats = off;
  return L;
}

// Bytes per thread: 4 * (ceil(Tk/64)*64*Dh + Tk*roundup(Dh,16) + 6*256 + 6*roundup(Dh,16) + 32)
// plus 64 for alignment (each region rounded up to 16 floats); with the relative-position term
// also Dh*(ld(gh) + ld(gw)) + 6*(roundup(gh,16) + roundup(gw,16)), ld(g) = roundup(2g-1,16) + 16.
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
  const int64_t Dv = Dh & ~int64_t{15};
  const __mmask16 vtail = static_cast<__mmask16>((1u << (Dh - Dv)) - 1u);
  for (j = 0; j < Tk; ++j) {
    float* dst = Vp + j * L.dhp;
    const float* src = V + j * a.v_st;
    int64_t d = 0;
    for (; d < Dv; d += 16) _mm512_store_ps(dst + d, _mm512_loadu_ps(src + d));
    if (d < L.dhp) _mm512_store_ps(dst + d, _mm512_maskz_loadu_ps(vtail, src + d));
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
// (kFirst: the first key tile, Oacc not yet written).
template <int ND, bool kFirst>
inline void pv_block(const float* P, int64_t lds, const float* vp, int64_t ldv, int64_t nk, float* o,
                     int64_t ldo, const float* alpha) {
  __m512 acc[MR][ND];
  for (int r = 0; r < MR; ++r) {
    __m512 al = _mm512_set1_ps(alpha[r]);
    for (int k = 0; k < ND; ++k)
      acc[r][k] = kFirst ? _mm512_setzero_ps() : _mm512_mul_ps(_mm512_load_ps(o + r * ldo + 16 * k), al);
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
  float* l = m + MR;
  float* alpha = l + MR;
  float* RT = ws + L.off_rt;
  float* relr = ws + L.off_rel;
  const bool terms = attn_has_terms(a), rel = attn_has_rel(a);
  const int64_t rld = rel_row_ld(a);

  const int64_t Dh = a.Dh, Tk = a.Tk, dhp = L.dhp;
  const int64_t tph = (a.Tq + MR - 1) / MR;  // query tiles per head
  const int64_t units = a.B * a.H * tph;
  const int64_t u0 = units * ith / nth, u1 = units * (ith + 1) / nth;
  const __m512 c = _mm512_set1_ps(a.scale * 1.44269504088896341f);
  const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  const int64_t Dv = Dh & ~int64_t{15};
  const __mmask16 otail = static_cast<__mmask16>((1u << (Dh - Dv)) - 1u);

  if (rel && u0 < u1) rel_pack(a, RT);
  int64_t cur_bh = -1;
  for (int64_t u = u0; u < u1; ++u) {
    const int64_t bh = u / tph, i0 = (u % tph) * MR;
    const int64_t b = bh / a.H, h = bh % a.H;
    if (bh != cur_bh) {
      pack_head(a, L, b, h, Kt, Vp);
      cur_bh = bh;
    }
    const int64_t nr = a.Tq - i0 < MR ? a.Tq - i0 : MR;
    const float* qr[MR];
    for (int r = 0; r < MR; ++r)  // rows past the end repeat the last one (computed, not stored)
      qr[r] = a.Q + b * a.q_sb + (i0 + (r < nr ? r : nr - 1)) * a.q_st + h * a.q_sh;
    for (int r = 0; r < MR; ++r) {
      m[r] = -std::numeric_limits<float>::infinity();
      l[r] = 0.0f;
    }
    if (rel)
      for (int64_t r = 0; r < nr; ++r) rel_row(a, qr[r], RT, i0 + r, relr + r * rld);

    for (int64_t k0 = 0; k0 < Tk; k0 += NKT) {
      const int64_t nk = Tk - k0 < NKT ? Tk - k0 : NKT;
      const int64_t nkp = round_up(nk, 16);
      const float* ktile = Kt + (k0 / PW) * Dh * PW;
      for (int64_t j = 0; j < nkp; j += PW) {
        const int64_t nv = (nkp - j) / 16;
        const float* kt = ktile + (j / PW) * Dh * PW;
        if (nv >= 4) qk_block<4>(qr, kt, Dh, c, S + j, NKT);
        else if (nv == 3) qk_block<3>(qr, kt, Dh, c, S + j, NKT);
        else if (nv == 2) qk_block<2>(qr, kt, Dh, c, S + j, NKT);
        else qk_block<1>(qr, kt, Dh, c, S + j, NKT);
      }
      if (terms)
        for (int r = 0; r < MR; ++r) {
          const int64_t ri = r < nr ? r : nr - 1;
          add_terms_row(a, b, h, i0 + ri, k0, nk, rel ? relr + ri * rld : nullptr, S + r * NKT);
        }
      for (int r = 0; r < MR; ++r) {
        float* s = S + r * NKT;
        for (int64_t j = nk; j < nkp; ++j) s[j] = -std::numeric_limits<float>::infinity();
        __m512 mx0 = ninf, mx1 = ninf;
        int64_t j = 0;
        for (; j + 32 <= nkp; j += 32) {
          mx0 = _mm512_max_ps(mx0, _mm512_load_ps(s + j));
          mx1 = _mm512_max_ps(mx1, _mm512_load_ps(s + j + 16));
        }
        if (j < nkp) mx0 = _mm512_max_ps(mx0, _mm512_load_ps(s + j));
        const float tmax = _mm512_reduce_max_ps(_mm512_max_ps(mx0, mx1));
        const float mnew = tmax > m[r] ? tmax : m[r];
        alpha[r] = mnew == m[r] ? 1.0f : std::exp2(m[r] - mnew);  // 0 on the first tile (m = -inf)
        m[r] = mnew;
        // All keys so far masked (-inf): subtract 0, not -inf (-inf - -inf = NaN); see avx2.
        const __m512 mv = _mm512_set1_ps(mnew == -std::numeric_limits<float>::infinity() ? 0.0f : mnew);
        __m512 s0 = _mm512_setzero_ps(), s1 = s0;
        for (j = 0; j + 32 <= nkp; j += 32) {
          __m512 p0 = vm::exp2_neg(_mm512_sub_ps(_mm512_load_ps(s + j), mv));
          __m512 p1 = vm::exp2_neg(_mm512_sub_ps(_mm512_load_ps(s + j + 16), mv));
          _mm512_store_ps(s + j, p0);
          _mm512_store_ps(s + j + 16, p1);
          s0 = _mm512_add_ps(s0, p0);
          s1 = _mm512_add_ps(s1, p1);
        }
        if (j < nkp) {
          __m512 p0 = vm::exp2_neg(_mm512_sub_ps(_mm512_load_ps(s + j), mv));
          _mm512_store_ps(s + j, p0);
          s0 = _mm512_add_ps(s0, p0);
        }
        l[r] = l[r] * alpha[r] + _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
      }
      const float* vt = Vp + k0 * dhp;
      for (int64_t d = 0; d < dhp; d += 16 * DV) {
        const int64_t nd = (dhp - d) / 16;
        if (k0 == 0) {
          if (nd >= 4) pv_block<4, true>(S, NKT, vt + d, dhp, nk, Oacc + d, dhp, alpha);
          else if (nd == 3) pv_block<3, true>(S, NKT, vt + d, dhp, nk, Oacc + d, dhp, alpha);
          else if (nd == 2) pv_block<2, true>(S, NKT, vt + d, dhp, nk, Oacc + d, dhp, alpha);
          else pv_block<1, true>(S, NKT, vt + d, dhp, nk, Oacc + d, dhp, alpha);
        } else {
          if (nd >= 4) pv_block<4, false>(S, NKT, vt + d, dhp, nk, Oacc + d, dhp, alpha);
          else if (nd == 3) pv_block<3, false>(S, NKT, vt + d, dhp, nk, Oacc + d, dhp, alpha);
          else if (nd == 2) pv_block<2, false>(S, NKT, vt + d, dhp, nk, Oacc + d, dhp, alpha);
          else pv_block<1, false>(S, NKT, vt + d, dhp, nk, Oacc + d, dhp, alpha);
        }
      }
    }

    for (int64_t r = 0; r < nr; ++r) {
      float* o = a.O + b * a.o_sb + (i0 + r) * a.o_st + h * a.o_sh;
      const float* oa = Oacc + r * dhp;
      const __m512 inv = _mm512_set1_ps(1.0f / l[r]);
      int64_t d = 0;
      for (; d < Dv; d += 16) _mm512_storeu_ps(o + d, _mm512_mul_ps(_mm512_load_ps(oa + d), inv));
      if (d < Dh) _mm512_mask_storeu_ps(o + d, otail, _mm512_mul_ps(_mm512_load_ps(oa + d), inv));
    }
  }
}

}  // namespace attn
}  // namespace avx512
}  // namespace pyvitcpp
