// Winograd F(4x4, 3x3) convolution over an NHWC map, shared by the avx2 and avx512 GEMMs: the
// path a level's gemm takes for GemmArgs::conv when the conv is 3x3, stride 1, dilation 1, and
// its weight was also packed in the transformed domain (ConvGather::wino, made at load by the
// table's wino_pack); winograd_ok() says when. Specification: the same conv as the direct path,
// Y = act(conv(X, W) + bias) + residual, then max(Y, 0) when relu_out (twin: ref::conv2d_direct;
// the results differ from it by rounding only, see below).
//
// Included by kernels/<isa>/gemm_<isa>.cpp after conv_direct_driver.h (whose microkernel it uses),
// INSIDE nothing (it opens the level's namespace itself, as gemm_driver.h does).
//
// The algorithm (Lavin & Gray 2015, points 0, +-1, +-2, inf): each 4 x 4 block of outputs (a
// tile) reads a 6 x 6 patch d of the input; per channel, V = B^T d B (36 values, xi = 6 i + j),
// per (output, input channel) U = G g G^T of the 3 x 3 weight g, and the tile's outputs are
// Y = A^T M A with M[xi] = sum_c U[xi][c] V[xi][c]: 36 GEMMs of (tiles x C) by (C x OC), which is
// 36 multiply-adds per channel pair for 16 outputs instead of 144. The transforms cost O(C) and
// O(OC) per tile, the GEMMs O(C x OC).
//
// Per thread, its range of tiles (contiguous in (image, tile row, tile column) order) in blocks of
// TB tiles whose V and M (36 x TB x (C + OC) floats) stay in L2:
//   input transform of the block's tiles -> V [36][TB][C] (rows of C: a GEMM's X read in place)
//   for each xi: the direct conv's microkernel with one tap over R <= MR rows of V[xi] against
//                U[xi]'s panels -> M [36][TB][OC]
//   output transform of M per tile -> bias, activation (on a tile buffer), residual, Y
// Every output's arithmetic depends only on its tile, never on the block or thread split, so the
// result is the same bits for any batch split and thread count.
//
// Accuracy: the transforms scale values by up to 4-5 (input) and 8 (output), so the rounding
// error is larger than the direct conv's (about 1e-6 to 1e-5 of the output's magnitude in F32,
// tests/test_kernels_conv.py measures it against the float64 convolution). PYVITCPP_WINOGRAD=0
// (read at load) makes no Winograd weights: the direct conv runs these convs instead.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <cstring>

#include "core/fp16.h"
#include "kernels/simd_act.h"

namespace pyvitcpp {
namespace PYVITCPP_GEMM_ISA {
namespace {  // NOLINT(google-build-namespaces): see gemm_driver.h

constexpr int kWinoXi = 36;  // transformed-domain points of F(4x4, 3x3)

// Bytes of U packed for a level with NR-output panels: [36][panels][C][NR] floats.
template <int NR>
size_t wino_packed_size(int64_t OC, int64_t C) {
  return static_cast<size_t>(kWinoXi) * static_cast<size_t>(gemm_ceil_div(OC, NR)) * static_cast<size_t>(C) * NR *
         sizeof(float);
}

// W: [OC, 3, 3, C] in (ky, kx, c) order (the conv's LinearWeight before packing), F32 or F16.
// U[xi][p][c][n] = (G g G^T)[xi] of output p * NR + n, channel c (zero past OC), computed in
// double and rounded once.
template <int NR>
void wino_pack(const void* W, DType type, int64_t OC, int64_t C, void* dst) {
  static const double G[6][3] = {{1 / 4.0, 0, 0},
                                 {-1 / 6.0, -1 / 6.0, -1 / 6.0},
                                 {-1 / 6.0, 1 / 6.0, -1 / 6.0},
                                 {1 / 24.0, 1 / 12.0, 1 / 6.0},
                                 {1 / 24.0, -1 / 12.0, 1 / 6.0},
                                 {0, 0, 1}};
  float* U = static_cast<float*>(dst);
  const int64_t np = gemm_ceil_div(OC, NR);
  std::memset(U, 0, wino_packed_size<NR>(OC, C));
  for (int64_t o = 0; o < OC; ++o)
    for (int64_t c = 0; c < C; ++c) {
      double g[3][3], t[6][3];
      for (int k = 0; k < 9; ++k) {
        const int64_t i = (o * 9 + k) * C + c;
        g[k / 3][k % 3] = type == DType::F16 ? static_cast<double>(fp16_to_fp32(static_cast<const uint16_t*>(W)[i]))
                                             : static_cast<double>(static_cast<const float*>(W)[i]);
      }
      for (int i = 0; i < 6; ++i)
        for (int x = 0; x < 3; ++x) t[i][x] = G[i][0] * g[0][x] + G[i][1] * g[1][x] + G[i][2] * g[2][x];
      for (int i = 0; i < 6; ++i)
        for (int j = 0; j < 6; ++j) {
          const double u = t[i][0] * G[j][0] + t[i][1] * G[j][1] + t[i][2] * G[j][2];
          U[((static_cast<int64_t>(6 * i + j) * np + o / NR) * C + c) * NR + o % NR] = static_cast<float>(u);
        }
    }
}

// B^T applied to six vectors (one column or row of a patch); VT: the level's vector traits.
// c - k x is fmadd(-k, x, c): one rounding, as fnmadd.
template <class VT>
PYVITCPP_GEMM_FORCEINLINE void wino_bt(const typename VT::V (&d)[6], typename VT::V (&w)[6]) {
  using V = typename VT::V;
  const V four = VT::set1(4.0f), mfour = VT::set1(-4.0f), mfive = VT::set1(-5.0f), two = VT::set1(2.0f);
  const V t0 = VT::fmadd(mfour, d[2], d[4]);  // d4 - 4 d2
  const V t1 = VT::fmadd(mfour, d[1], d[3]);  // d3 - 4 d1
  const V t2 = VT::sub(d[4], d[2]);
  const V t3 = VT::mul(two, VT::sub(d[3], d[1]));
  w[0] = VT::fmadd(mfive, d[2], VT::fmadd(four, d[0], d[4]));  // 4 d0 - 5 d2 + d4
  w[1] = VT::add(t0, t1);
  w[2] = VT::sub(t0, t1);
  w[3] = VT::add(t2, t3);
  w[4] = VT::sub(t2, t3);
  w[5] = VT::fmadd(mfive, d[3], VT::fmadd(four, d[1], d[5]));  // 4 d1 - 5 d3 + d5
}

// A^T applied to six vectors.
template <class VT>
PYVITCPP_GEMM_FORCEINLINE void wino_at(const typename VT::V (&m)[6], typename VT::V (&y)[4]) {
  using V = typename VT::V;
  const V s12 = VT::add(m[1], m[2]), d12 = VT::sub(m[1], m[2]);
  const V s34 = VT::add(m[3], m[4]), d34 = VT::sub(m[3], m[4]);
  y[0] = VT::add(VT::add(m[0], s12), s34);
  y[1] = VT::fmadd(VT::set1(2.0f), d34, d12);
  y[2] = VT::fmadd(VT::set1(4.0f), s34, s12);
  y[3] = VT::add(VT::fmadd(VT::set1(8.0f), d34, d12), m[5]);
}

// Floats between consecutive xi slices of n floats: n rounded up to 1024 (4 KiB), plus 16.
inline int64_t wino_stride(int64_t n) { return (n + 1023) / 1024 * 1024 + 16; }

// Whether this GEMM runs as a Winograd conv: it has Winograd weights (none are made with
// PYVITCPP_WINOGRAD=0 or Encoder(winograd=False), models/model.cpp), and besides the geometry,
// channel counts that fill whole vectors and at least 4 tiles per image. The choice depends on one image's geometry only (not on
// the batch or the thread count), so micro-batched runs give the batch's bits.
template <class T>
bool winograd_ok(const GemmArgs& a) {
  constexpr int64_t VW = T::VT::W;
  if (!a.conv || !a.conv->wino) return false;
  const ConvGather& g = *a.conv;
  if (g.nchw || g.h.k != 3 || g.w.k != 3 || g.h.stride != 1 || g.w.stride != 1 || g.h.dil != 1 || g.w.dil != 1)
    return false;
  if (g.cg % VW != 0 || a.N % VW != 0 || a.K != 9 * g.cg) return false;
  static const int64_t min_tiles = [] {
    const char* e = std::getenv("PYVITCPP_WINOGRAD_MIN_TILES");
    return e ? std::max<int64_t>(1, std::atoll(e)) : int64_t{4};
  }();
  return gemm_ceil_div(g.h.out, 4) * gemm_ceil_div(g.w.out, 4) >= min_tiles;
}

template <class T>
void winograd_run(const GemmArgs& a, int ith, int nth) {
  using VT = typename T::VT;
  using V = typename VT::V;
  constexpr int MR = T::MR, NR = T::NR;
  constexpr int64_t VW = VT::W;
  const ConvGather& g = *a.conv;
  const int64_t C = g.cg, OC = a.N, OH = g.h.out, OW = g.w.out, IH = g.h.in, IW = g.w.in, P = g.C;
  const int64_t TW = gemm_ceil_div(OW, 4), per_img = gemm_ceil_div(OH, 4) * TW, ntiles = g.B * per_img;
  const int64_t np = gemm_ceil_div(OC, NR);
  if (ntiles <= 0 || OC <= 0) return;
  // The thread's share: pg groups of panels x (nth / pg) ranges of tiles. U is read once per
  // block of tiles, so where it outgrows L2 (C x OC above ~ 85 x 85) the panels are split first
  // (each share reads its part of U; the input transform is repeated per panel group, O(C) per
  // tile against the GEMMs' O(C x OC)); else the tiles (each share keeps all of U in L2). nth is
  // the node's share count, which may exceed the threads.
  const int64_t u_bytes = kWinoXi * np * C * NR * static_cast<int64_t>(sizeof(float));
  // The fewest groups (a divisor of nth, at most np) whose part of U fits in L2 and that leave
  // each share at least two row tiles of tiles (a small map split by tiles runs the GEMMs on
  // short row tiles), else the most.
  int pg = 1;
  for (int d = 2; d <= std::min<int64_t>(nth, np); ++d) {
    if (u_bytes / pg <= (int64_t{1} << 20) && ntiles / (nth / pg) >= 2 * MR) break;
    if (nth % d == 0) pg = d;
  }
  const int tg = nth / pg, gi = ith % pg, ti = ith / pg;
  const int64_t t0 = ntiles * ti / tg, t1 = ntiles * (ti + 1) / tg;
  const int64_t q0 = np * gi / pg, q1 = np * (gi + 1) / pg;
  if (t0 >= t1 || q0 >= q1) return;
  const int64_t oc0 = q0 * NR, oc1 = std::min(OC, q1 * NR), OCt = oc1 - oc0;
  // Tiles per block: V and M within ~1 MiB (at least two row tiles, at most 16) while the
  // thread's U fits in L2 beside them; else up to 128, so that U is read about once.
  const bool u_in_l2 = u_bytes / pg <= (int64_t{1} << 20);
  const int64_t TB = u_in_l2 ? std::max<int64_t>(2 * MR, std::min<int64_t>(16 * MR, (int64_t{1} << 20) / (kWinoXi * 4 * (C + OCt))))
                             : std::min<int64_t>(t1 - t0, 128);
  static thread_local GemmScratch v_s, m_s, y_s;
  // Each xi's slice of V and M starts 64 bytes past a multiple of 4 KiB from the one before (a
  // tile's 36 stores or loads would otherwise fall into a few L1 sets when TB x C is a multiple of 1024).
  const int64_t vs = wino_stride(TB * C), ms = wino_stride(TB * OCt);
  float* vbuf = v_s.get(static_cast<size_t>(kWinoXi * vs));
  float* mbuf = m_s.get(static_cast<size_t>(kWinoXi * ms));
  float* ybuf = y_s.get(static_cast<size_t>(16 * OCt));  // one tile's outputs before act / residual
  const ConvUkernel* kern = conv_direct_kernels<T>(false, false);
  const ConvUkernel* kern_narrow = conv_direct_kernels<T>(false, true);
  const V zero = VT::zero();
  const int64_t boff0 = 0;

  for (int64_t blk = t0; blk < t1; blk += TB) {
    const int64_t nb = std::min(TB, t1 - blk);
    // 1. Input transform: V[xi][j][c] for the block's tiles j.
    for (int64_t j = 0; j < nb; ++j) {
      const int64_t tile = blk + j, b = tile / per_img, r = tile % per_img;
      const int64_t iy0 = (r / TW) * 4 - g.h.pad0, ix0 = (r % TW) * 4 - g.w.pad0;
      const float* xb = g.X + b * IH * IW * P + g.c0;
      bool rin[6], cin[6];
      for (int i = 0; i < 6; ++i) {
        rin[i] = iy0 + i >= 0 && iy0 + i < IH;
        cin[i] = ix0 + i >= 0 && ix0 + i < IW;
      }
      const bool inside = iy0 >= 0 && iy0 + 6 <= IH && ix0 >= 0 && ix0 + 6 <= IW;
      const float* x00 = xb + (iy0 * IW + ix0) * P;  // the patch's corner (may lie outside: then unread)
      for (int64_t c = 0; c < C; c += VW) {
        V w[6][6];
        for (int x = 0; x < 6; ++x) {
          V d[6], o[6];
          if (inside) {
            #pragma GCC unroll 6
            for (int y = 0; y < 6; ++y) d[y] = VT::loadu(x00 + (y * IW + x) * P + c);
          } else {
            for (int y = 0; y < 6; ++y)
              d[y] = rin[y] && cin[x] ? VT::loadu(xb + ((iy0 + y) * IW + ix0 + x) * P + c) : zero;
          }
          wino_bt<VT>(d, o);
          for (int i = 0; i < 6; ++i) w[i][x] = o[i];
        }
        for (int i = 0; i < 6; ++i) {
          V o[6];
          wino_bt<VT>(w[i], o);
          for (int x = 0; x < 6; ++x) VT::storeu(vbuf + (6 * i + x) * vs + j * C + c, o[x]);
        }
      }
    }
    // 2. The 36 GEMMs: M[xi] = V[xi] . U[xi], rows in balanced tiles of <= MR.
    const int64_t nrt = gemm_ceil_div(nb, MR);
    for (int xi = 0; xi < kWinoXi; ++xi) {
      const float* vx = vbuf + xi * vs;
      float* mx = mbuf + xi * ms;
      const float* ux = g.wino + xi * np * C * NR;
      for (int64_t rt = 0; rt < nrt; ++rt) {
        const int64_t r0 = nb * rt / nrt;
        const int R = static_cast<int>(nb * (rt + 1) / nrt - r0);
        const float* xp[MR];
        for (int i = 0; i < R; ++i) xp[i] = vx + (r0 + i) * C;
        for (int64_t p = q0; p < q1; ++p) {
          GemmEpilogue e;
          e.nr = static_cast<int>(std::min<int64_t>(NR, OC - p * NR));
          e.act = Act::None;
          e.ldy = OCt;
          e.ldr = 0;
          e.bias = nullptr;
          e.res = nullptr;
          e.y = mx + r0 * OCt + (p - q0) * NR;
          (e.nr <= VW ? kern_narrow : kern)[R - 1](1, xp, &boff0, ux + p * C * NR, C, e);
        }
      }
    }
    // 3. Output transform: Y = A^T M A + bias per tile, then activation and residual.
    for (int64_t j = 0; j < nb; ++j) {
      const int64_t tile = blk + j, b = tile / per_img, r = tile % per_img;
      const int64_t oy0 = (r / TW) * 4, ox0 = (r % TW) * 4;
      const int vh = static_cast<int>(std::min<int64_t>(4, OH - oy0)), vw = static_cast<int>(std::min<int64_t>(4, OW - ox0));
      for (int64_t c = 0; c < OCt; c += VW) {
        const V bias = a.bias ? VT::loadu(a.bias + oc0 + c) : zero;
        V t[4][6];
        for (int x = 0; x < 6; ++x) {
          V m[6], o[4];
          for (int y = 0; y < 6; ++y) m[y] = VT::loadu(mbuf + (6 * y + x) * ms + j * OCt + c);
          wino_at<VT>(m, o);
          for (int i = 0; i < 4; ++i) t[i][x] = o[i];
        }
        for (int i = 0; i < vh; ++i) {
          V o[4];
          wino_at<VT>(t[i], o);
          for (int x = 0; x < vw; ++x) VT::storeu(ybuf + (i * vw + x) * OCt + c, VT::add(o[x], bias));
        }
      }
      act_inplace(ybuf, vh * vw * OCt, a.act);
      for (int i = 0; i < vh; ++i)
        for (int x = 0; x < vw; ++x) {
          const int64_t pix = (b * OH + oy0 + i) * OW + ox0 + x;
          const float* src = ybuf + (i * vw + x) * OCt;
          float* y = a.Y + pix * a.ldy + oc0;
          const float* res = a.residual ? a.residual + pix * a.ldr + oc0 : nullptr;
          for (int64_t c = 0; c < OCt; c += VW) {
            V v = VT::loadu(src + c);
            if (res) v = VT::add(v, VT::loadu(res + c));
            if (a.relu_out) v = VT::max(zero, v);  // NaN passes
            VT::storeu(y + c, v);
          }
        }
    }
  }
}

}  // namespace
}  // namespace PYVITCPP_GEMM_ISA
}  // namespace pyvitcpp
