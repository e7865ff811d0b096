// The additive score terms of AttentionArgs (bias, window mask, decomposed relative position),
// ISA-neutral, shared by the avx2 and avx512 fused attention kernels. Spec: kernels/ref/ops_ref.cpp.
//
// Included by kernels/<isa>/attention_<isa>.h inside that level's namespace, after it defined
// the vector traits VT (W floats per vector; zero, set1, loadu, storeu, load_n / store_n for the
// first n < W lanes, fmadd, add, mul). Everything here has internal linkage (unnamed namespace),
// so each ISA's translation unit has its own copy compiled with its own flags (the GEMM driver's
// rule, kernels/gemm_driver.h).
//
// The kernels keep scores in the log2 domain (S' = log2e * S, then 2^(S' - max)), so every term
// is added times log2e.
//
// Relative position without a Tq x Tk matrix: for query i = (ih, iw) and key j = (jh, jw)
//   rel(i, j) = q_i . Rh[ih - jh + gh - 1] + q_i . Rw[iw - jw + gw - 1] = rh_i[jh] + rw_i[jw].
// The tables are packed once per call, transposed and with their rows reversed:
//   RT[d][c] = R[2g - 2 - c][d]   =>   r_i[j'] = sum_d q_i[d] RT[d][g - 1 - i' + j'],
// so a query row's g dot products are a vector FMA over d of contiguous RT segments (no
// horizontal sums, r_i[0..g) ascending). Then each key tile row gets, per run of keys on one
// grid row jh, a vector add of rw_i[jw..] plus the broadcast scalar rh_i[jh] (no per-key gather).
#pragma once

namespace {

constexpr float kLog2e = 1.44269504088896341f;

inline bool attn_has_terms(const AttentionArgs& a) { return a.bias || a.mask || (a.rel_h && a.rel_w); }
inline bool attn_has_rel(const AttentionArgs& a) { return a.rel_h && a.rel_w; }

// Row stride of a packed table of g grid positions: the widest read is g - 1 + round_up(g, W).
inline int64_t rel_table_ld(int64_t g) { return (2 * g - 1 + VT::W - 1) / VT::W * VT::W + VT::W; }
// Floats of both packed tables (0 without the term).
inline int64_t rel_tables_floats(const AttentionArgs& a) {
  if (!attn_has_rel(a)) return 0;
  return a.Dh * (rel_table_ld(a.rel_gh) + rel_table_ld(a.rel_gw));
}
// Per query row: rh at [0, round_up(gh, W)), rw after it.
inline int64_t rel_row_ld(const AttentionArgs& a) {
  if (!attn_has_rel(a)) return 0;
  return (a.rel_gh + VT::W - 1) / VT::W * VT::W + (a.rel_gw + VT::W - 1) / VT::W * VT::W;
}

inline void rel_pack_one(const float* R, int64_t g, int64_t Dh, float* RT) {
  const int64_t ld = rel_table_ld(g), n = 2 * g - 1;
  for (int64_t d = 0; d < Dh; ++d) {
    float* row = RT + d * ld;
    for (int64_t c = 0; c < n; ++c) row[c] = R[(n - 1 - c) * Dh + d];
    for (int64_t c = n; c < ld; ++c) row[c] = 0.0f;
  }
}

// Both tables, once per kernel call and thread (a few KiB: (2g - 1) x Dh each).
inline void rel_pack(const AttentionArgs& a, float* RT) {
  rel_pack_one(a.rel_h, a.rel_gh, a.Dh, RT);
  rel_pack_one(a.rel_w, a.rel_gw, a.Dh, RT + a.Dh * rel_table_ld(a.rel_gh));
}

// out[0..g) (and up to round_up(g, W)) = log2e * q . R[pos - j' + g - 1] for j' = 0..g-1.
inline void rel_dots(const float* q, int64_t Dh, const float* RT, int64_t g, int64_t pos, float* out) {
  const int64_t ld = rel_table_ld(g), nv = (g + VT::W - 1) / VT::W;
  const float* base = RT + (g - 1 - pos);
  // Up to 4 independent accumulators per pass over d (one chain would be FMA-latency bound).
  for (int64_t v0 = 0; v0 < nv; v0 += 4) {
    const int nb = nv - v0 < 4 ? static_cast<int>(nv - v0) : 4;
    typename VT::V acc[4] = {VT::zero(), VT::zero(), VT::zero(), VT::zero()};
    const float* t = base + v0 * VT::W;
    for (int64_t d = 0; d < Dh; ++d) {
      const typename VT::V qd = VT::set1(q[d]);
      const float* td = t + d * ld;
      for (int k = 0; k < nb; ++k) acc[k] = VT::fmadd(qd, VT::loadu(td + k * VT::W), acc[k]);
    }
    const typename VT::V l2e = VT::set1(kLog2e);
    for (int k = 0; k < nb; ++k) VT::storeu(out + (v0 + k) * VT::W, VT::mul(acc[k], l2e));
  }
}

// The relative-position dot products of one query row i (its row of the score tile reads them).
inline void rel_row(const AttentionArgs& a, const float* q, const float* RT, int64_t i, float* out) {
  const int64_t gh = a.rel_gh, gw = a.rel_gw;
  rel_dots(q, a.Dh, RT, gh, i / gw, out);
  rel_dots(q, a.Dh, RT + a.Dh * rel_table_ld(gh), gw, i % gw, out + (gh + VT::W - 1) / VT::W * VT::W);
}

// s[0..n) += c * x[0..n) (x unaligned, s unaligned).
inline void axpy_row(float* s, const float* x, int64_t n, typename VT::V c) {
  int64_t j = 0;
  for (; j + VT::W <= n; j += VT::W) VT::storeu(s + j, VT::fmadd(VT::loadu(x + j), c, VT::loadu(s + j)));
  if (j < n) {
    const int t = static_cast<int>(n - j);
    VT::store_n(s + j, VT::fmadd(VT::load_n(x + j, t), c, VT::load_n(s + j, t)), t);
  }
}

// Adds the terms to one row of a score tile: s[0..nk) holds keys k0..k0+nk-1 of query row i of
// (b, h); rel: that row's rel_row output (null without the term).
inline void add_terms_row(const AttentionArgs& a, int64_t b, int64_t h, int64_t i, int64_t k0, int64_t nk,
                          const float* rel, float* s) {
  const typename VT::V l2e = VT::set1(kLog2e);
  if (a.bias) axpy_row(s, a.bias + h * a.bias_sh + i * a.bias_st + k0, nk, l2e);
  if (a.mask) axpy_row(s, a.mask + (b % a.mask_nw) * a.mask_sw + i * a.mask_st + k0, nk, l2e);
  if (rel) {
    const int64_t gw = a.rel_gw;
    const float* rh = rel;
    const float* rw = rel + (a.rel_gh + VT::W - 1) / VT::W * VT::W;
    int64_t jh = k0 / gw, jw = k0 % gw;
    for (int64_t j = 0; j < nk;) {
      const int64_t seg = gw - jw < nk - j ? gw - jw : nk - j;  // keys left on grid row jh
      const typename VT::V hv = VT::set1(rh[jh]);
      float* sj = s + j;
      const float* wj = rw + jw;
      int64_t t = 0;
      for (; t + VT::W <= seg; t += VT::W) VT::storeu(sj + t, VT::add(VT::loadu(sj + t), VT::add(VT::loadu(wj + t), hv)));
      if (t < seg) {
        const int n = static_cast<int>(seg - t);
        VT::store_n(sj + t, VT::add(VT::load_n(sj + t, n), VT::add(VT::load_n(wj + t, n), hv)), n);
      }
      j += seg;
      ++jh;
      jw = 0;
    }
  }
}

}  // namespace
