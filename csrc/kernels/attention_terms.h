// The additive score terms of AttentionArgs (bias, window mask, decomposed relative position),
// ISA-neutral, shared by the avx2 and avx512 fused attention kernels. Spec: kernels/ref/ops_ref.cpp.
//
// Included by kernels/<isa>/attention_<isa>.h inside that level's namespace, after it defined
// the vector traits VT (W floats per vector; zero, set1, loadu, storeu, load_n / store_n for the
// first n < W lanes, blend_first, fmadd, add, mul). Everything here has internal linkage (unnamed namespace),
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
// horizontal sums, r_i[0..g) ascending). Then each vector of W keys of a score tile row gets
// rw_i[jw..jw+W) (one unaligned load) plus the broadcast scalar rh_i[jh] (blended with
// rh_i[jh + 1] where the keys wrap to the next grid row): no per-key gather. That happens in the
// same pass over the tile row as the bias and the mask.
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
// Per query row: rh at [0, round_up(gh + 1, W)), then rw twice in a row (rw[gw + x] = rw[x], so
// the W keys from any jw < gw read as one unaligned load), 2 gw + W floats.
inline int64_t rel_rh_ld(const AttentionArgs& a) { return (a.rel_gh + VT::W) / VT::W * VT::W; }
inline int64_t rel_row_ld(const AttentionArgs& a) {
  if (!attn_has_rel(a)) return 0;
  return rel_rh_ld(a) + (2 * a.rel_gw + 2 * VT::W - 1) / VT::W * VT::W;
}

inline void rel_pack_one(const float* R, int64_t g, int64_t Dh, float* RT) {
  const int64_t ld = rel_table_ld(g), n = 2 * g - 1;
  for (int64_t d = 0; d < Dh; ++d) {
    float* row = RT + d * ld;
    for (int64_t c = 0; c < n; ++c) row[c] = R[(n - 1 - c) * Dh + d];
    for (int64_t c = n; c < ld; ++c) row[c] = 0.0f;
  }
}

// Both tables, once per kernel call and thread ((2g - 1) x Dh floats each, padded: 34 KiB each for
// g = 64, Dh = 64 at W = 8).
inline void rel_pack(const AttentionArgs& a, float* RT) {
  rel_pack_one(a.rel_h, a.rel_gh, a.Dh, RT);
  rel_pack_one(a.rel_w, a.rel_gw, a.Dh, RT + a.Dh * rel_table_ld(a.rel_gh));
}

// NB vectors of out from t (RT columns), P partial sums over d each: NB * P independent FMA
// chains (one chain per vector was FMA-latency bound: at a 14 x 14 grid the rel dots then cost
// a third of the attention's time).
template <int NB, int P>
inline void rel_dots_blk(const float* q, int64_t Dh, const float* t, int64_t ld, float* out) {
  using V = typename VT::V;
  V acc[P][NB];
  for (int p = 0; p < P; ++p)
    for (int k = 0; k < NB; ++k) acc[p][k] = VT::zero();
  int64_t d = 0;
  for (; d + P <= Dh; d += P)
    for (int p = 0; p < P; ++p) {
      const V qd = VT::set1(q[d + p]);
      const float* td = t + (d + p) * ld;
      for (int k = 0; k < NB; ++k) acc[p][k] = VT::fmadd(qd, VT::loadu(td + k * VT::W), acc[p][k]);
    }
  for (; d < Dh; ++d) {
    const V qd = VT::set1(q[d]);
    for (int k = 0; k < NB; ++k) acc[0][k] = VT::fmadd(qd, VT::loadu(t + d * ld + k * VT::W), acc[0][k]);
  }
  const V l2e = VT::set1(kLog2e);
  for (int k = 0; k < NB; ++k) {
    V sum = acc[0][k];
    for (int p = 1; p < P; ++p) sum = VT::add(sum, acc[p][k]);
    VT::storeu(out + k * VT::W, VT::mul(sum, l2e));
  }
}

// out[0..g) (and up to round_up(g, W)) = log2e * q . R[pos - j' + g - 1] for j' = 0..g-1.
inline void rel_dots(const float* q, int64_t Dh, const float* RT, int64_t g, int64_t pos, float* out) {
  const int64_t ld = rel_table_ld(g), nv = (g + VT::W - 1) / VT::W;
  const float* base = RT + (g - 1 - pos);
  for (int64_t v0 = 0; v0 < nv; v0 += 4) {
    const float* t = base + v0 * VT::W;
    float* o = out + v0 * VT::W;
    switch (nv - v0 < 4 ? nv - v0 : 4) {
      case 1: rel_dots_blk<1, 4>(q, Dh, t, ld, o); break;
      case 2: rel_dots_blk<2, 4>(q, Dh, t, ld, o); break;
      case 3: rel_dots_blk<3, 2>(q, Dh, t, ld, o); break;
      default: rel_dots_blk<4, 2>(q, Dh, t, ld, o); break;
    }
  }
}

// The relative-position dot products of one query row i (its row of the score tile reads them).
inline void rel_row(const AttentionArgs& a, const float* q, const float* RT, int64_t i, float* out) {
  const int64_t gh = a.rel_gh, gw = a.rel_gw;
  rel_dots(q, a.Dh, RT, gh, i / gw, out);
  float* rw = out + rel_rh_ld(a);
  rel_dots(q, a.Dh, RT + a.Dh * rel_table_ld(gh), gw, i % gw, rw);
  for (int64_t x = 0; x < gw; ++x) rw[gw + x] = rw[x];
  out[gh] = 0.0f;  // read (as the next grid row's rh, then discarded) by a tail vector past the last key
}

// Floats of the per-thread buffer rel_expand writes (tiles of up to nkt keys).
inline int64_t rel_expand_floats(const AttentionArgs& a, int64_t nkt) {
  return attn_has_rel(a) ? nkt + 2 * a.rel_gw + 2 * VT::W : 0;
}

// Grids narrower than a vector (gw < W: a vector of keys may span 3 grid rows): the rel-pos
// term of keys k0..k0+nk-1 laid out as a contiguous row E in buf (E[j] = rh[jh] + rw[jw] for key
// k0 + j), one run of full-vector stores of rw[0..gw) + rh[jh] per grid row, a run's last vector
// spilling into the next run's start, which that run then overwrites. buf holds
// rel_expand_floats(a, nk) floats.
inline const float* rel_expand(const AttentionArgs& a, const float* rel, int64_t k0, int64_t nk, int64_t jh0,
                               float* buf) {
  const int64_t gw = a.rel_gw;
  const float* rh = rel;
  const float* rw = rel + rel_rh_ld(a);
  const int64_t jh1 = (k0 + nk - 1) / gw;
  for (int64_t jh = jh0; jh <= jh1; ++jh) {
    float* dst = buf + (jh - jh0) * gw;
    const typename VT::V hv = VT::set1(rh[jh]);
    for (int64_t t = 0; t < gw; t += VT::W) VT::storeu(dst + t, VT::add(VT::loadu(rw + t), hv));
  }
  return buf + (k0 - jh0 * gw);
}

// s[0..nk) += log2e * (bias + mask)[0..nk) + rel[0..nk), each term present or not: one pass,
// full vectors and one masked tail. kR = 1 (gw >= W): the rel term of the W keys from (jh, jw)
// is rw[jw..jw+W) (rw stored twice in a row) plus rh[jh], or rh[jh + 1] for the lanes past the
// end of grid row jh (a blend): no gather, no store-to-load forwarding through a buffer.
// kR = 2 (gw < W): ep = rel_expand's row.
template <bool kB, bool kM, int kR>
inline void add_terms_pass(const AttentionArgs& a, float* s, const float* bp, const float* mp, const float* rel,
                           const float* ep, int64_t jh0, int64_t jw0, int64_t nk) {
  using V = typename VT::V;
  const V l2e = VT::set1(kLog2e);
  const int64_t gw = a.rel_gw;
  const float* rh = rel;
  const float* rw = kR == 1 ? rel + rel_rh_ld(a) : nullptr;
  int64_t jh = jh0, jw = jw0;
  auto step = [&](int64_t j, int n) {  // n == W: full vector
    auto ld = [&](const float* p) { return n == VT::W ? VT::loadu(p + j) : VT::load_n(p + j, n); };
    V x = ld(s);
    if (kB || kM) {
      V t = kB ? ld(bp) : ld(mp);
      if (kB && kM) t = VT::add(t, ld(mp));
      x = VT::fmadd(t, l2e, x);
    }
    if (kR == 1) {
      V hv = VT::set1(rh[jh]);
      if (gw - jw < VT::W) hv = VT::blend_first(hv, VT::set1(rh[jh + 1]), static_cast<int>(gw - jw));
      x = VT::add(x, VT::add(VT::loadu(rw + jw), hv));
      jw += VT::W;
      if (jw >= gw) {
        jw -= gw;
        ++jh;
      }
    }
    if (kR == 2) x = VT::add(x, ld(ep));
    if (n == VT::W) VT::storeu(s + j, x);
    else VT::store_n(s + j, x, n);
  };
  int64_t j = 0;
  for (; j + VT::W <= nk; j += VT::W) step(j, VT::W);
  if (j < nk) step(j, static_cast<int>(nk - j));
}

// Adds the terms to the rows of a score tile: row r of S (row stride lds) holds keys
// k0..k0+nk-1 of query row rows[r] of (b, h), r < nr; rel[r]: that row's rel_row output (null
// without the term); buf: rel_expand's buffer. The divisions are done once per tile.
inline void add_terms_tile(const AttentionArgs& a, int64_t b, int64_t h, const int64_t* rows, const float* const* rel,
                           int nr, int64_t k0, int64_t nk, float* buf, float* S, int64_t lds) {
  const float* bias = a.bias ? a.bias + h * a.bias_sh + k0 : nullptr;
  const float* mask = a.mask ? a.mask + (b % a.mask_nw) * a.mask_sw + k0 : nullptr;
  const bool has_rel = attn_has_rel(a);
  const bool narrow = has_rel && a.rel_gw < VT::W;
  const int64_t jh0 = has_rel ? k0 / a.rel_gw : 0, jw0 = has_rel ? k0 - jh0 * a.rel_gw : 0;
  const int sel = (bias ? 2 : 0) | (mask ? 1 : 0);
  for (int r = 0; r < nr; ++r) {
    float* s = S + r * lds;
    const float* bp = bias ? bias + rows[r] * a.bias_st : nullptr;
    const float* mp = mask ? mask + rows[r] * a.mask_st : nullptr;
    const float* rl = has_rel ? rel[r] : nullptr;
    const float* ep = narrow ? rel_expand(a, rl, k0, nk, jh0, buf) : nullptr;
#define PYVITCPP_TERMS_CASE(B_, M_)                                                    \
  if (!has_rel) add_terms_pass<B_, M_, 0>(a, s, bp, mp, rl, ep, jh0, jw0, nk);         \
  else if (!narrow) add_terms_pass<B_, M_, 1>(a, s, bp, mp, rl, ep, jh0, jw0, nk);     \
  else add_terms_pass<B_, M_, 2>(a, s, bp, mp, rl, ep, jh0, jw0, nk);
    switch (sel) {
      case 0: if (has_rel) { PYVITCPP_TERMS_CASE(false, false) } break;
      case 1: PYVITCPP_TERMS_CASE(false, true) break;
      case 2: PYVITCPP_TERMS_CASE(true, false) break;
      default: PYVITCPP_TERMS_CASE(true, true) break;
    }
#undef PYVITCPP_TERMS_CASE
  }
}

}  // namespace
