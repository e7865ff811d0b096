// The fused attention driver (flash-attention order, fp32), ISA-neutral, shared by the avx2 and
// avx512 levels: work split, workspace layout, the blocked two-pass softmax, the additive terms,
// the final normalisation. Spec: kernels/ref/ops_ref.cpp.
//
// Included by kernels/<isa>/attention_<isa>.h inside that level's namespace after it defined
//   MR (query rows per register tile), PW (keys per packed K panel), NKT (keys per key tile, a
//   multiple of PW), QB (MR-row tiles per work unit), kChunkKeys (keys per softmax chunk, a
//   multiple of NKT), round_up, the vector traits VT (attention_terms.h, plus load/store aligned,
//   max, sub, exp2_neg for x <= 0, reduce_max, reduce_add) and its microkernels:
//     pack_head(a, npanels, dhp, b, h, Kt, Vp)   K of one head transposed into PW-key panels
//                                                (Kt[p][d][0..PW) = K[p*PW + c][d], zero past Tk),
//                                                V rows with Dh zero-padded to dhp
//     qk_panel(qr, kt, Dh, nv, cs, s, lds)       s[r][0..nv*W) = *cs * q_r . K[panel keys], MR rows
//     pv_tile<kFirst>(P, lds, vt, dhp, nk, O, alpha)
//                                                O[r] = alpha[r] O[r] + sum_{j<nk} P[r][j] Vp[j]
//                                                (kFirst: O = the sum; alpha null: no rescaling)
// and the levels' own code stays where the instruction set matters (register blocking). Like the
// GEMM driver (kernels/gemm_driver.h) everything here has internal linkage, so each ISA's TU has
// its own copy compiled with its own flags.
//
// Work unit: (batch b, head h, block of QB*MR query rows). Thread ith takes a contiguous range of
// units, so it meets each head it touches in one run and packs that head's K and V once into its
// workspace. For a block, the keys are visited in chunks of up to kChunkKeys. Per chunk the block
// keeps its whole score rows (QB*MR x chunk floats, L2-resident) and runs two passes over the
// chunk's key tiles of NKT keys (K and V of one tile stay in L1 while all QB row tiles use them):
//   S = (scale*log2e) Q.K^T (+ log2e * terms) for the chunk; per row m' = max(m, max S),
//   alpha = 2^(m - m'), P = 2^(S - m'), l = alpha l + sum P; Oacc = alpha Oacc + P.V,
// and at the end O = Oacc / l. With Tk <= kChunkKeys (every ViT at 224..518) that is the plain
// two-pass softmax (one max, one exp pass, one sum per row, no rescaling of Oacc); longer rows
// (SAM's 4096-token global attention) rescale Oacc once per chunk instead of once per key tile
// as a per-tile online softmax does. Nothing of size Tq x Tk exists.
#pragma once

namespace {

struct Layout {
  int64_t npanels, dhp;
  int64_t lds;  // keys per chunk = row stride of the scores
  int64_t off_kt, off_v, off_s, off_o, off_ml, off_rt, off_rel, off_ex, floats;
};

inline Layout layout(const AttentionArgs& a) {
  Layout L;
  L.npanels = (a.Tk + PW - 1) / PW;
  L.dhp = round_up(a.Dh, VT::W);
  L.lds = L.npanels * PW < kChunkKeys ? L.npanels * PW : kChunkKeys;
  int64_t off = 0;
  auto take = [&](int64_t n) {
    int64_t o = off;
    off += round_up(n, 16);  // keep every region 64-byte aligned
    return o;
  };
  L.off_kt = take(L.npanels * a.Dh * PW);
  L.off_v = take(a.Tk * L.dhp);
  L.off_s = take(int64_t{QB} * MR * L.lds);
  L.off_o = take(int64_t{QB} * MR * L.dhp);
  L.off_ml = take(3 * QB * MR);
  L.off_rt = take(rel_tables_floats(a));               // packed rel_h / rel_w (0 without rel-pos)
  L.off_rel = take(int64_t{QB} * MR * rel_row_ld(a));  // the block's rows of rel dot products
  L.off_ex = take(rel_expand_floats(a, NKT));           // one tile row of the rel term
  L.floats = off;
  return L;
}

// Bytes per thread: 4 * (P*Dh + Tk*dhp + QB*MR*min(P, kChunkKeys) + QB*MR*dhp + 3*QB*MR), P =
// ceil(Tk/PW)*PW, dhp = roundup(Dh, W), each region rounded up to 16 floats, plus 64 for
// alignment; with the relative-position term also Dh*(ld(gh) + ld(gw)) +
// QB*MR*(roundup(gh,W) + roundup(gw,W)) + NKT + 2gw + 2W, ld(g) = roundup(2g-1,W) + W
// (attention_terms.h).
static size_t attention_workspace(const AttentionArgs& a) {
  return static_cast<size_t>(layout(a).floats) * sizeof(float) + 64;
}

// One softmax step for MR rows of S over nkp columns (those past the chunk's keys already -inf):
// S := P = 2^(S - m'), with m, l, alpha as in the header comment.
inline void softmax_step(float* S, int64_t lds, int64_t nkp, float* m, float* l, float* alpha) {
  using V = typename VT::V;
  const V ninf = VT::set1(-std::numeric_limits<float>::infinity());
  for (int r = 0; r < MR; ++r) {
    float* s = S + r * lds;
    V mx0 = ninf, mx1 = ninf;
    int64_t j = 0;
    for (; j + 2 * VT::W <= nkp; j += 2 * VT::W) {
      mx0 = VT::max(mx0, VT::load(s + j));
      mx1 = VT::max(mx1, VT::load(s + j + VT::W));
    }
    if (j < nkp) mx0 = VT::max(mx0, VT::load(s + j));
    const float tmax = VT::reduce_max(VT::max(mx0, mx1));
    const float mnew = tmax > m[r] ? tmax : m[r];
    alpha[r] = mnew == m[r] ? 1.0f : std::exp2(m[r] - mnew);  // 0 on the first chunk (m = -inf)
    m[r] = mnew;
    // A row whose keys so far are all masked (-inf) has m = -inf: subtracting 0 instead keeps
    // -inf - -inf = NaN out of P (its P are 0, and alpha = 0 drops them at the first finite key;
    // a row masked to the end has l = 0 and gives NaN, as the reference's softmax does).
    const V mv = VT::set1(mnew == -std::numeric_limits<float>::infinity() ? 0.0f : mnew);
    V s0 = VT::zero(), s1 = s0;
    for (j = 0; j + 2 * VT::W <= nkp; j += 2 * VT::W) {
      V p0 = VT::exp2_neg(VT::sub(VT::load(s + j), mv));
      V p1 = VT::exp2_neg(VT::sub(VT::load(s + j + VT::W), mv));
      VT::store(s + j, p0);
      VT::store(s + j + VT::W, p1);
      s0 = VT::add(s0, p0);
      s1 = VT::add(s1, p1);
    }
    if (j < nkp) {
      V p0 = VT::exp2_neg(VT::sub(VT::load(s + j), mv));
      VT::store(s + j, p0);
      s0 = VT::add(s0, p0);
    }
    l[r] = l[r] * alpha[r] + VT::reduce_add(VT::add(s0, s1));
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
  float* ex = ws + L.off_ex;
  const bool terms = attn_has_terms(a), rel = attn_has_rel(a);
  const int64_t rld = rel_row_ld(a);

  const int64_t Dh = a.Dh, Tk = a.Tk, dhp = L.dhp, lds = L.lds;
  const int64_t QBR = int64_t{QB} * MR;
  const int64_t bph = (a.Tq + QBR - 1) / QBR;  // query blocks per head
  const int64_t units = a.B * a.H * bph;
  const int64_t u0 = units * ith / nth, u1 = units * (ith + 1) / nth;
  const float cs = a.scale * kLog2e;
  const int64_t Dv = Dh / VT::W * VT::W;

  if (rel && u0 < u1) rel_pack(a, RT);
  int64_t cur_bh = -1;
  for (int64_t u = u0; u < u1; ++u) {
    const int64_t bh = u / bph, i0 = (u % bph) * QBR;
    const int64_t b = bh / a.H, h = bh % a.H;
    if (bh != cur_bh) {
      pack_head(a, L.npanels, dhp, b, h, Kt, Vp);
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
    // Scores of keys [k0, k0 + nk) for MR-row tile sb into Sb (row stride lds).
    auto scores = [&](int64_t k0, int64_t nk, int64_t sb, float* Sb) {
      const float* qr[MR];
      for (int r = 0; r < MR; ++r) {  // rows past the end repeat the last one (computed, not stored)
        const int64_t i = sb * MR + r < nrb ? sb * MR + r : nrb - 1;
        qr[r] = q0 + i * a.q_st;
      }
      const int64_t nkp = round_up(nk, VT::W);
      const float* ktile = Kt + (k0 / PW) * Dh * PW;
      for (int64_t j = 0; j < nkp; j += PW) {
        const int64_t nv = (nkp - j) / VT::W;
        qk_panel(qr, ktile + (j / PW) * Dh * PW, Dh, nv < PW / VT::W ? nv : PW / VT::W, &cs, Sb + j, lds);
      }
      if (terms) {
        int64_t rows[MR];
        const float* rr[MR];
        for (int r = 0; r < MR; ++r) {
          const int64_t ri = sb * MR + r < nrb ? sb * MR + r : nrb - 1;
          rows[r] = i0 + ri;
          rr[r] = rel ? relr + ri * rld : nullptr;
        }
        add_terms_tile(a, b, h, rows, rr, MR, k0, nk, ex, Sb, lds);
      }
      if (nkp > nk)
        for (int r = 0; r < MR; ++r)
          for (int64_t j = nk; j < nkp; ++j) Sb[r * lds + j] = -std::numeric_limits<float>::infinity();
    };
    for (int64_t c0 = 0; c0 < Tk; c0 += lds) {
      const int64_t ck = Tk - c0 < lds ? Tk - c0 : lds;  // keys in this chunk
      for (int64_t k0 = c0; k0 < c0 + ck; k0 += NKT) {
        const int64_t nk = c0 + ck - k0 < NKT ? c0 + ck - k0 : NKT;
        for (int64_t sb = 0; sb < nsub; ++sb) scores(k0, nk, sb, S + sb * MR * lds + (k0 - c0));
      }
      for (int64_t sb = 0; sb < nsub; ++sb)
        softmax_step(S + sb * MR * lds, lds, round_up(ck, VT::W), m + sb * MR, l + sb * MR, alpha + sb * MR);
      for (int64_t k0 = c0; k0 < c0 + ck; k0 += NKT) {
        const int64_t nk = c0 + ck - k0 < NKT ? c0 + ck - k0 : NKT;
        const float* vt = Vp + k0 * dhp;
        for (int64_t sb = 0; sb < nsub; ++sb) {
          const float* P = S + sb * MR * lds + (k0 - c0);
          float* oa = Oacc + sb * MR * dhp;
          if (k0 == 0) pv_tile<true>(P, lds, vt, dhp, nk, oa, nullptr);
          else pv_tile<false>(P, lds, vt, dhp, nk, oa, k0 == c0 ? alpha + sb * MR : nullptr);
        }
      }
    }
    for (int64_t r = 0; r < nrb; ++r) {
      float* o = a.O + b * a.o_sb + (i0 + r) * a.o_st + h * a.o_sh;
      const float* oa = Oacc + r * dhp;
      const typename VT::V inv = VT::set1(1.0f / l[r]);
      int64_t d = 0;
      for (; d < Dv; d += VT::W) VT::storeu(o + d, VT::mul(VT::load(oa + d), inv));
      if (d < Dh) VT::store_n(o + d, VT::mul(VT::load(oa + d), inv), static_cast<int>(Dh - d));
    }
  }
}

}  // namespace
