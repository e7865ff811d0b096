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
// horizontal sums, r_i[0..g) ascending). Then for each key tile row the term is laid out as a
// contiguous row, per run of keys on one grid row jh a vector add of rw_i[0..gw) plus the
// broadcast scalar rh_i[jh] (no per-key gather), and added to the scores in the same pass as the
// bias and the mask.
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

// Floats of the per-thread buffer rel_expand writes (tiles of up to nkt keys).
inline int64_t rel_expand_floats(const AttentionArgs& a, int64_t nkt) {
  return attn_has_rel(a) ? nkt + 2 * a.rel_gw + 2 * VT::W : 0;
}

// The rel-pos term of keys k0..k0+nk-1 of one query row (its rel_row output rel) as a
// contiguous row: returns E with E[j] = rh[jh] + rw[jw] for key k0 + j. Each grid row jh the
// tile touches is one run of full-vector stores of rw[0..gw) + rh[jh] into buf; a run's last
// vector spills into the next run's start, which that run then overwrites (runs are written in
// increasing order), so no masked store is needed (AVX2's vmaskmovps store is slow). buf holds
// rel_expand_floats(a, nk) floats.
inline const float* rel_expand(const AttentionArgs& a, const float* rel, int64_t k0, int64_t nk, float* buf) {
  const int64_t gw = a.rel_gw;
  const float* rh = rel;
  const float* rw = rel + (a.rel_gh + VT::W - 1) / VT::W * VT::W;
  const int64_t jh0 = k0 / gw, jh1 = (k0 + nk - 1) / gw;
  for (int64_t jh = jh0; jh <= jh1; ++jh) {
    float* dst = buf + (jh - jh0) * gw;
    const typename VT::V hv = VT::set1(rh[jh]);
    for (int64_t t = 0; t < gw; t += VT::W) VT::storeu(dst + t, VT::add(VT::loadu(rw + t), hv));
  }
  return buf + (k0 - jh0 * gw);
}

// s[0..nk) += log2e * (bias + mask)[0..nk) + E[0..nk), each term present or not: one pass,
// full vectors and one masked tail.
template <bool kB, bool kM, bool kR>
inline void add_terms_pass(float* s, const float* bp, const float* mp, const float* ep, int64_t nk) {
  using V = typename VT::V;
  const V l2e = VT::set1(kLog2e);
  auto step = [&](int64_t j, int n) {  // n == W: full vector
    auto ld = [&](const float* p) { return n == VT::W ? VT::loadu(p + j) : VT::load_n(p + j, n); };
    V x = ld(s);
    if (kB || kM) {
      V t = kB ? ld(bp) : ld(mp);
      if (kB && kM) t = VT::add(t, ld(mp));
      x = VT::fmadd(t, l2e, x);
    }
    if (kR) x = VT::add(x, ld(ep));
    if (n == VT::W) VT::storeu(s + j, x);
    else VT::store_n(s + j, x, n);
  };
  int64_t j = 0;
  for (; j + VT::W <= nk; j += VT::W) step(j, VT::W);
  if (j < nk) step(j, static_cast<int>(nk - j));
}

// Adds the terms to one row of a score tile: s[0..nk) holds keys k0..k0+nk-1 of query row i of
// (b, h); rel: that row's rel_row output (null without the term); buf: rel_expand's buffer.
inline void add_terms_row(const AttentionArgs& a, int64_t b, int64_t h, int64_t i, int64_t k0, int64_t nk,
                          const float* rel, float* buf, float* s) {
  const float* bp = a.bias ? a.bias + h * a.bias_sh + i * a.bias_st + k0 : nullptr;
  const float* mp = a.mask ? a.mask + (b % a.mask_nw) * a.mask_sw + i * a.mask_st + k0 : nullptr;
  const float* ep = rel ? rel_expand(a, rel, k0, nk, buf) : nullptr;
  const int sel = (bp ? 4 : 0) | (mp ? 2 : 0) | (ep ? 1 : 0);
  switch (sel) {
    case 1: add_terms_pass<false, false, true>(s, bp, mp, ep, nk); break;
    case 2: add_terms_pass<false, true, false>(s, bp, mp, ep, nk); break;
    case 3: add_terms_pass<false, true, true>(s, bp, mp, ep, nk); break;
    case 4: add_terms_pass<true, false, false>(s, bp, mp, ep, nk); break;
    case 5: add_terms_pass<true, false, true>(s, bp, mp, ep, nk); break;
    case 6: add_terms_pass<true, true, false>(s, bp, mp, ep, nk); break;
    case 7: add_terms_pass<true, true, true>(s, bp, mp, ep, nk); break;
    default: break;
  }
}

}  // namespace
