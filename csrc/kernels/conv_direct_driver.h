// Direct (im2col-free, pack-free) convolution over an NHWC map, shared by the avx2 and avx512
// GEMMs: the path a level's gemm takes for GemmArgs::conv with F32 or F16 packed weights when
// conv_direct_ok() says so (else the gathering GEMM of gemm_driver.h runs). Specification: the
// same GEMM, Y = act(im2col(X) . W^T + bias) + residual (kernels.h), twin ref::conv2d_direct.
//
// Included by kernels/<isa>/gemm_<isa>.cpp right after gemm_driver.h, INSIDE nothing (it opens
// the level's namespace itself, as gemm_driver.h does), so each ISA-flagged TU gets a private
// copy with internal linkage.
//
// How: the weight is the GEMM's own packed panels (NR outputs, k = (ky, kx, c) rows), so a
// panel's rows for tap t are the contiguous slice [t*cg, (t+1)*cg). A register tile is R <= MR
// consecutive output pixels (rows of Y; they may cross an image row or an image) by NR
// outputs. For each tap the microkernel gets R pointers, one per pixel, to that pixel's input
// channel vector at that tap, or to a zero vector where the tap falls in the padding, and
// broadcasts x[c] from each while streaming the panel's slice: no gather copy and no transpose
// of X, and the whole K is summed in registers (no partial sums, one epilogue per tile).
// Taps that are padding for every pixel of the tile are skipped.
//
// NCHW pixels (ConvGather::nchw, the stem: 3 channels): a channel's values of one pixel are a
// plane apart, so every (tap, channel) is an entry of its own with its own panel row; the
// im2col matrix and its 9x / 49x copy of the image are never written (yolov8n's 640 x 640
// stem: Im2col + a K = 27 GEMM ran at 60 GFLOP/s). A tile of pixels in one output row whose
// taps all fall inside the image columns, at stride 1 or 2 (nearly every stem tile), runs the
// row microkernel: one pointer per entry (pixel i reads it at i * stride, a compile-time
// offset, folded into the FMA's broadcast operand), no per-pixel table. Other tiles (image
// edges, rows crossing) take the general microkernel with cg = 1 per entry. Panels of at most
// one vector of outputs (16 on avx512, yolov8n's stem) skip the second accumulator column.
//
// Summation order per output: taps in (ky, kx) order, channels in order, one FMA chain, the
// same for any thread split (each output's chain depends only on the tile's taps).
//
// Loop nest per thread (its rectangle of rows x panels, gemm_choose_grid):
//   when the thread's panels fit in L2 (<= 512 KiB) and the pixel stride has row microkernels:
//     output rows: edges and remainders as below; interior pixels in row tiles (one pointer
//       per tap), panels: the row microkernel (conv_direct_ukernel with PS > 0)
//   else when the thread's panels fit in L2:
//     tiles: pointer table for the tile's taps
//      panels: microkernel with the epilogue fused (the tile's input is reused from L1)
//   else: blocks of rows whose input (about rows * C * sh * sw floats) stays in L2
//    panels: the K x NR panel is read from L2 by every tile of the block
//     tiles: pointer table, microkernel
#pragma once
#include <cstddef>
#include <utility>

namespace pyvitcpp {
namespace PYVITCPP_GEMM_ISA {
namespace {  // NOLINT(google-build-namespaces): see gemm_driver.h

// Microkernel of the direct conv: ntaps taps; for tap t, xp[t*R + i] is pixel i's input at that
// tap (cg floats, or zeros; row tiles: xp[t] for pixel 0, see conv_direct_ukernel) and panel + boff[t] (in elements: F32, or F16 converted as loaded)
// the panel's cg x NR slice for it (row stride NR).
using ConvUkernel = void (*)(int64_t ntaps, const float* const* xp, const int64_t* boff, const void* panel,
                             int64_t cg, const GemmEpilogue& e);

// The microkernel, one body for both levels over the level's Traits: V (the vector), vzero,
// bcast (a float broadcast from memory), fma, load_b<F16> (one packed panel row as two vectors,
// F16 widened) and epilogue<R> (bias, activation, residual, store: the GEMM's own).
// Narrow: the panel has at most one vector of outputs (yolov8n's 16-channel convs on avx512):
// the second accumulator column is neither computed nor stored (the epilogue's nr).
// PS == 0: xp[t * R + i] is pixel i's pointer at tap t (any tile). PS > 0, the NHWC row tiles:
// R output pixels consecutive in one output row with every tap inside the image; xp[t] is pixel
// 0's pointer and pixel i reads xp[t] + i * PS (PS = pixel stride times the conv's stride, a
// compile-time constant), so every broadcast addresses one base register plus a constant. With a
// pointer per pixel, 12 pointers fill the integer registers and the tile stops at 12 pixels; the
// row tiles take 24 for a narrow panel on avx512 (12 on avx2). Either way each output's FMA chain
// is the same (taps in order, channels in order), so both give the same bits.
template <class T, int R, int PS, bool F16, bool Narrow>
void conv_direct_ukernel(int64_t ntaps, const float* const* xp, const int64_t* boff, const void* panel, int64_t cg,
                         const GemmEpilogue& e) {
  using V = typename T::V;
  constexpr int NX = PS ? 1 : R;  // pointers per tap
  V c[R][2];
  #pragma GCC unroll 32
  for (int i = 0; i < R; ++i) c[i][0] = c[i][1] = T::vzero();
  for (int64_t t = 0; t < ntaps; ++t) {
    const float* x[NX];
    #pragma GCC unroll 16
    for (int i = 0; i < NX; ++i) x[i] = xp[t * NX + i];
    const void* B = F16 ? static_cast<const void*>(static_cast<const uint16_t*>(panel) + boff[t])
                        : static_cast<const void*>(static_cast<const float*>(panel) + boff[t]);
#pragma GCC unroll 2
    for (int64_t k = 0; k < cg; ++k) {
      V b0, b1;
      T::template load_b<F16>(B, k, b0, b1);
      #pragma GCC unroll 32
      for (int i = 0; i < R; ++i) {
        const V v = T::bcast(PS ? x[0] + i * PS + k : x[i] + k);
        c[i][0] = T::fma(v, b0, c[i][0]);
        if (!Narrow) c[i][1] = T::fma(v, b1, c[i][1]);
      }
    }
  }
  T::template epilogue<R>(c, e);
}

// The NCHW row microkernel: for entry t, pixel i reads xp[t][i * S]; panel + boff[t] is the
// entry's panel row. Narrow: the panel has at most one vector of outputs (the second
// accumulator column is neither computed nor stored: epilogue's nr).
using ConvRowUkernel = void (*)(int64_t nent, const float* const* xp, const int64_t* boff, const void* panel,
                                const GemmEpilogue& e);

template <class T, int R, int S, bool F16, bool Narrow>
void conv_nchw_row_ukernel(int64_t nent, const float* const* xp, const int64_t* boff, const void* panel,
                           const GemmEpilogue& e) {
  using V = typename T::V;
  V c[R][2];
  #pragma GCC unroll 16
  for (int i = 0; i < R; ++i) c[i][0] = c[i][1] = T::vzero();
  for (int64_t t = 0; t < nent; ++t) {
    const float* x = xp[t];
    const void* B = F16 ? static_cast<const void*>(static_cast<const uint16_t*>(panel) + boff[t])
                        : static_cast<const void*>(static_cast<const float*>(panel) + boff[t]);
    V b0, b1;
    T::template load_b<F16>(B, 0, b0, b1);
    #pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      const V v = T::bcast(x + i * S);
      c[i][0] = T::fma(v, b0, c[i][0]);
      if (!Narrow) c[i][1] = T::fma(v, b1, c[i][1]);
    }
  }
  T::template epilogue<R>(c, e);
}

template <class T, int S, bool F16, bool Narrow, size_t... I>
const ConvRowUkernel* conv_nchw_row_table(std::index_sequence<I...>) {
  static const ConvRowUkernel k[] = {conv_nchw_row_ukernel<T, static_cast<int>(I) + 1, S, F16, Narrow>...};
  return k;
}

// Row microkernels for R = 1..MR (index R - 1) at stride S (1 or 2).
template <class T>
const ConvRowUkernel* conv_nchw_row_kernels(int S, bool f16, bool narrow) {
  using Seq = std::make_index_sequence<T::MR>;
  const int sel = (S == 2 ? 4 : 0) | (f16 ? 2 : 0) | (narrow ? 1 : 0);
  switch (sel) {
    case 0: return conv_nchw_row_table<T, 1, false, false>(Seq());
    case 1: return conv_nchw_row_table<T, 1, false, true>(Seq());
    case 2: return conv_nchw_row_table<T, 1, true, false>(Seq());
    case 3: return conv_nchw_row_table<T, 1, true, true>(Seq());
    case 4: return conv_nchw_row_table<T, 2, false, false>(Seq());
    case 5: return conv_nchw_row_table<T, 2, false, true>(Seq());
    case 6: return conv_nchw_row_table<T, 2, true, false>(Seq());
    default: return conv_nchw_row_table<T, 2, true, true>(Seq());
  }
}

// Row microkernels by pixel stride PS (16, 32 or 64 floats: C x stride of YOLO's narrow convs);
// null for other strides. R: 24 pixels for narrow panels, the GEMM's MR otherwise.
template <class T>
struct ConvRowNhwc {
  // avx512: 24 accumulators of 32 zmm; avx2: 12 of 16 ymm.
  static constexpr int RN = sizeof(typename T::V) == 64 ? 24 : 12, RW = T::MR;
  // narrow: RN pixels, one vector of outputs; narrow_w: the same at RW pixels (a narrow last
  // panel next to wide ones); wide: RW pixels, two vectors.
  ConvUkernel narrow = nullptr, narrow_w = nullptr, wide = nullptr;
};
template <class T, int PS, bool F16>
ConvRowNhwc<T> conv_nhwc_row_pick() {
  ConvRowNhwc<T> k;
  k.narrow = conv_direct_ukernel<T, ConvRowNhwc<T>::RN, PS, F16, true>;
  k.narrow_w = conv_direct_ukernel<T, ConvRowNhwc<T>::RW, PS, F16, true>;
  k.wide = conv_direct_ukernel<T, ConvRowNhwc<T>::RW, PS, F16, false>;
  return k;
}
template <class T>
ConvRowNhwc<T> conv_nhwc_row_kernels(int64_t ps, bool f16) {
  switch (ps) {
    case 16: return f16 ? conv_nhwc_row_pick<T, 16, true>() : conv_nhwc_row_pick<T, 16, false>();
    case 32: return f16 ? conv_nhwc_row_pick<T, 32, true>() : conv_nhwc_row_pick<T, 32, false>();
    case 64: return f16 ? conv_nhwc_row_pick<T, 64, true>() : conv_nhwc_row_pick<T, 64, false>();
    default: return ConvRowNhwc<T>();
  }
}

template <class T, bool F16, bool Narrow, size_t... I>
const ConvUkernel* conv_direct_table(std::index_sequence<I...>) {
  static const ConvUkernel k[] = {conv_direct_ukernel<T, static_cast<int>(I) + 1, 0, F16, Narrow>...};
  return k;
}

// Microkernels for R = 1..MR rows (index R - 1).
template <class T>
const ConvUkernel* conv_direct_kernels(bool f16, bool narrow) {
  using Seq = std::make_index_sequence<T::MR>;
  if (f16) return narrow ? conv_direct_table<T, true, true>(Seq()) : conv_direct_table<T, true, false>(Seq());
  return narrow ? conv_direct_table<T, false, true>(Seq()) : conv_direct_table<T, false, false>(Seq());
}

// Whether the direct path runs this conv. Needs F32 or F16 weights packed by this level, and at least
// 8 channels per tap (below that the per-tap pointer set-up outweighs the FMAs). Pixels that
// are 4 KiB apart in memory (C * stride_w * 4 a multiple of 4096: 1024 channels at stride 1,
// 512 at stride 2) would put all R broadcast streams into one L1 set; those keep the gather.
// PYVITCPP_CONV_DIRECT=0 turns the path off (A/B of the two paths in one build).
inline bool conv_direct_ok(const GemmArgs& a) {
  static const bool enabled = [] {
    const char* e = std::getenv("PYVITCPP_CONV_DIRECT");
    return !(e && e[0] == '0');
  }();
  if (!enabled || !a.conv || !a.W_packed || (a.wtype != DType::F32 && a.wtype != DType::F16)) return false;
  const ConvGather& g = *a.conv;
  if (!g.allow_direct) return false;
  if (g.nchw) return true;  // one float per entry, pixels stride floats apart
  if (g.cg < 8) return false;
  const int64_t step = g.C * g.w.stride * static_cast<int64_t>(sizeof(float));
  return step % 4096 != 0;
}

template <class T>
void conv_direct_run(const GemmArgs& a, int ith, int nth) {
  constexpr int MR = T::MR, NR = T::NR;
  const ConvGather& g = *a.conv;
  const int64_t M = a.M, N = a.N;
  if (M <= 0 || N <= 0) return;
  const int64_t npanels = gemm_ceil_div(N, NR);
  GemmRect rect;
  if (!gemm_thread_rect(M, npanels, ith, nth, MR, NR, T::RMIN, &rect)) return;
  const int64_t m0 = rect.m0, m1 = rect.m1, q0 = rect.q0, q1 = rect.q1;

  const int64_t cg = g.cg, KH = g.h.k, KW = g.w.k, taps = KH * KW;
  const int64_t K = taps * cg;
  // Pointer-table entries per pixel and floats each entry points at (NCHW: (tap, channel), 1).
  const int64_t ents = g.nchw ? K : taps, ucg = g.nchw ? 1 : cg;
  // Zeros standing in for taps in the padding (cg floats, grown and cleared on demand).
  static thread_local GemmScratch zero_s, ptr_s;
  static thread_local size_t zero_n = 0;
  float* zeros = zero_s.get(static_cast<size_t>(cg));
  if (zero_s.n != zero_n) {  // new (or grown) buffer
    std::memset(zeros, 0, zero_s.n * sizeof(float));
    zero_n = zero_s.n;
  }
  // Pointer tables of one tile: taps * MR pixel pointers, taps panel-slice pointers.
  const size_t ptr_floats = (static_cast<size_t>(ents) * (MR + 1) * sizeof(void*) + sizeof(float) - 1) / sizeof(float);
  const float** xp = reinterpret_cast<const float**>(ptr_s.get(ptr_floats));
  int64_t* boff = reinterpret_cast<int64_t*>(xp + ents * MR);

  // Tiles: the thread's rows in balanced tiles of <= MR rows.
  const int64_t rows = m1 - m0;
  const int64_t ntiles = gemm_ceil_div(rows, MR);
  // Rows per block: the input they read, about rows * C * sh * sw floats, within ~256 KiB.
  const int64_t per_row = std::max<int64_t>(1, g.C * g.h.stride * g.w.stride * static_cast<int64_t>(sizeof(float)));
  const int64_t blk_tiles = std::max<int64_t>(1, (int64_t{1} << 18) / per_row / MR);
  const bool f16 = a.wtype == DType::F16;
  const ConvUkernel* kern = conv_direct_kernels<T>(f16, false);
  const ConvUkernel* kern_narrow = conv_direct_kernels<T>(f16, true);
  const char* Wp = static_cast<const char*>(a.W_packed);
  const int64_t esz = f16 ? 2 : 4;

  const int64_t OW = g.w.out, OH = g.h.out;
  // NCHW row microkernels (stride 1 or 2; narrow for panels of <= one vector of outputs).
  constexpr int64_t VW = static_cast<int64_t>(sizeof(typename T::V) / sizeof(float));
  const int64_t SW = g.w.stride;
  const bool row_ok = g.nchw && (SW == 1 || SW == 2);
  const ConvRowUkernel* rowk = row_ok ? conv_nchw_row_kernels<T>(static_cast<int>(SW), f16, false) : nullptr;
  const ConvRowUkernel* rowk_narrow = row_ok ? conv_nchw_row_kernels<T>(static_cast<int>(SW), f16, true) : nullptr;
  bool row_mode = false;  // set by tables(): the tile runs the row microkernel
  // The tile's pointer tables: xp (nt taps x R pixels) and boff (the kept taps' offsets in a
  // panel); in row mode xp holds one pointer per entry. Returns nt.
  auto tables = [&](int64_t r0, int R) {
    row_mode = false;
    if (row_ok) {
      const int64_t ox0 = r0 % OW, q = r0 / OW, oy = q % OH, b = q / OH;
      const int64_t ix_first = ox0 * SW - g.w.pad0;
      const int64_t ix_last = (ox0 + R - 1) * SW - g.w.pad0 + (KW - 1) * g.w.dil;
      if (ox0 + R <= OW && ix_first >= 0 && ix_last < g.w.in) {
        row_mode = true;
        const int64_t plane = g.h.in * g.w.in;
        const float* xb = g.X + (b * g.C + g.c0) * plane + ix_first;
        int64_t nt = 0;
        for (int64_t ky = 0; ky < KH; ++ky) {
          const int64_t iy = oy * g.h.stride - g.h.pad0 + ky * g.h.dil;
          if (iy < 0 || iy >= g.h.in) continue;  // zeros for the whole row of pixels
          for (int64_t kx = 0; kx < KW; ++kx)
            for (int64_t c = 0; c < cg; ++c) {
              xp[nt] = xb + c * plane + iy * g.w.in + kx * g.w.dil;
              boff[nt++] = ((ky * KW + kx) * cg + c) * NR;
            }
        }
        return nt;
      }
    }
    int64_t iy0[MR], ix0[MR];
    const float* xb[MR];
    int64_t ox = r0 % OW, q = r0 / OW, oy = q % OH, b = q / OH;
    const int64_t plane = g.h.in * g.w.in;
    for (int i = 0; i < R; ++i) {
      iy0[i] = oy * g.h.stride - g.h.pad0;
      ix0[i] = ox * g.w.stride - g.w.pad0;
      xb[i] = g.X + b * plane * g.C + (g.nchw ? g.c0 * plane : g.c0);
      if (++ox == OW) {
        ox = 0;
        if (++oy == OH) {
          oy = 0;
          ++b;
        }
      }
    }
    int64_t nt = 0;
    if (g.nchw) {
      int64_t off[MR];
      for (int64_t ky = 0; ky < KH; ++ky) {
        for (int64_t kx = 0; kx < KW; ++kx) {
          bool any = false;
          for (int i = 0; i < R; ++i) {
            const int64_t iy = iy0[i] + ky * g.h.dil, ix = ix0[i] + kx * g.w.dil;
            const bool in = iy >= 0 && iy < g.h.in && ix >= 0 && ix < g.w.in;
            off[i] = in ? iy * g.w.in + ix : -1;
            any |= in;
          }
          if (!any) continue;
          for (int64_t c = 0; c < cg; ++c) {
            const float** xr = xp + nt * R;
            for (int i = 0; i < R; ++i) xr[i] = off[i] >= 0 ? xb[i] + c * plane + off[i] : zeros;
            boff[nt++] = ((ky * KW + kx) * cg + c) * NR;
          }
        }
      }
      return nt;
    }
    for (int64_t ky = 0; ky < KH; ++ky) {
      for (int64_t kx = 0; kx < KW; ++kx) {
        const float** xr = xp + nt * R;
        bool any = false;
        for (int i = 0; i < R; ++i) {
          const int64_t iy = iy0[i] + ky * g.h.dil, ix = ix0[i] + kx * g.w.dil;
          if (iy >= 0 && iy < g.h.in && ix >= 0 && ix < g.w.in) {
            xr[i] = xb[i] + (iy * g.w.in + ix) * g.C;
            any = true;
          } else {
            xr[i] = zeros;
          }
        }
        if (!any) continue;
        boff[nt++] = (ky * KW + kx) * cg * NR;
      }
    }
    return nt;
  };
  // The epilogue of panel p for the tile starting at output row r0.
  auto epilogue_at = [&](int64_t p, int64_t r0) {
    const int64_t n0 = p * NR;
    GemmEpilogue e;
    e.nr = static_cast<int>(std::min<int64_t>(NR, N - n0));
    e.act = a.act;
    e.relu_out = a.relu_out;
    e.ldy = a.ldy;
    e.ldr = a.ldr;
    e.bias = a.bias ? a.bias + n0 : nullptr;
    e.y = a.Y + r0 * a.ldy + n0;
    e.res = a.residual ? a.residual + r0 * a.ldr + n0 : nullptr;
    return e;
  };
  auto run_tile = [&](int64_t p, int64_t r0, int R, int64_t nt) {
    const GemmEpilogue e = epilogue_at(p, r0);
    if (row_mode) (e.nr <= VW ? rowk_narrow : rowk)[R - 1](nt, xp, boff, Wp + p * K * NR * esz, e);
    else (e.nr <= VW ? kern_narrow : kern)[R - 1](nt, xp, boff, Wp + p * K * NR * esz, ucg, e);
  };
  auto tile_rows = [&](int64_t t, int64_t* r0) {
    *r0 = m0 + rows * t / ntiles;
    return static_cast<int>(m0 + rows * (t + 1) / ntiles - *r0);
  };
  // NHWC row tiles (conv_direct_ukernel with PS > 0) for the pixels whose taps are all inside
  // the image columns, when the pixel stride C x stride is one the row microkernels are built for.
  static const bool row_enabled = [] {
    const char* e = std::getenv("PYVITCPP_CONV_ROW");
    return !(e && e[0] == '0');
  }();
  const ConvRowNhwc<T> rowk_nhwc =
      !g.nchw && g.allow_row && row_enabled ? conv_nhwc_row_kernels<T>(g.C * SW, f16) : ConvRowNhwc<T>();
  if (rowk_nhwc.wide && taps <= 64 && K * NR * (q1 - q0) * esz <= (int64_t{1} << 19)) {
    // A row tile: all panels narrow (one vector of outputs) -> RN pixels, else RW.
    const bool all_narrow = N - q0 * NR <= VW;
    const int RT = all_narrow ? ConvRowNhwc<T>::RN : ConvRowNhwc<T>::RW;
    // Output columns whose taps all fall inside the image columns: [ox_lo, ox_hi).
    const int64_t dw = g.w.dil, reach = (KW - 1) * dw;
    const int64_t ox_lo = (g.w.pad0 + SW - 1) / SW;
    const int64_t last = g.w.in - 1 - reach + g.w.pad0;  // ox * SW <= last
    const int64_t ox_hi = last < 0 ? 0 : std::min(OW, last / SW + 1);
    int64_t xo[64], toff[64];  // per tap: input offset of pixel ox = 0 (may be negative), panel row
    auto general = [&](int64_t r0, int64_t n) {  // pixels [r0, r0 + n) of one output row
      for (int64_t done = 0; done < n;) {
        const int R = static_cast<int>(std::min<int64_t>(MR, n - done));
        const int64_t nt = tables(r0 + done, R);
        for (int64_t p = q0; p < q1; ++p) run_tile(p, r0 + done, R, nt);
        done += R;
      }
    };
    for (int64_t r = m0; r < m1;) {
      const int64_t ox0 = r % OW, q = r / OW, oy = q % OH, b = q / OH;
      const int64_t oxe = std::min(OW, ox0 + (m1 - r));  // this output row's end in the range
      const int64_t a0 = std::max(ox0, std::min(ox_lo, oxe)), a1 = std::max(a0, std::min(oxe, ox_hi));
      general(r, a0 - ox0);
      // Taps of this output row: those whose input row is inside the image.
      const float* xrow = g.X + b * g.h.in * g.w.in * g.C + g.c0;
      int64_t nt = 0;
      for (int64_t ky = 0; ky < KH; ++ky) {
        const int64_t iy = oy * g.h.stride - g.h.pad0 + ky * g.h.dil;
        if (iy < 0 || iy >= g.h.in) continue;
        for (int64_t kx = 0; kx < KW; ++kx) {
          xo[nt] = (iy * g.w.in - g.w.pad0 + kx * dw) * g.C;  // + ox * SW * C per tile
          toff[nt++] = (ky * KW + kx) * cg * NR;
        }
      }
      int64_t ox = a0;
      for (; ox + RT <= a1; ox += RT) {
        const float* xtt[64];
        for (int64_t t = 0; t < nt; ++t) xtt[t] = xrow + (xo[t] + ox * SW * g.C);
        const int64_t r0 = r + (ox - ox0);
        for (int64_t p = q0; p < q1; ++p) {
          const GemmEpilogue e = epilogue_at(p, r0);
          const ConvUkernel k = e.nr > VW ? rowk_nhwc.wide : (all_narrow ? rowk_nhwc.narrow : rowk_nhwc.narrow_w);
          k(nt, xtt, toff, Wp + p * K * NR * esz, cg, e);
        }
      }
      general(r + (ox - ox0), oxe - ox);  // the interior's remainder and the right edge
      r += oxe - ox0;
    }
    return;
  }
  if (K * NR * (q1 - q0) * esz <= (int64_t{1} << 19)) {
    // The thread's panels fit in L2: each tile's input stays in L1 across them.
    for (int64_t t = 0; t < ntiles; ++t) {
      int64_t r0;
      const int R = tile_rows(t, &r0);
      const int64_t nt = tables(r0, R);
      for (int64_t p = q0; p < q1; ++p) run_tile(p, r0, R, nt);
    }
    return;
  }
  // Large weights: a panel stays in L2 while a block of tiles (their input in L2 too) uses it.
  for (int64_t tb = 0; tb < ntiles; tb += blk_tiles) {
    const int64_t te = std::min(ntiles, tb + blk_tiles);
    for (int64_t p = q0; p < q1; ++p) {
      for (int64_t t = tb; t < te; ++t) {
        int64_t r0;
        const int R = tile_rows(t, &r0);
        run_tile(p, r0, R, tables(r0, R));
      }
    }
  }
}

// A plain GEMM with few output columns as a 1x1 conv: X's M rows are the pixels of one image
// row (pixel stride ldx, channels [0, K)), so the direct conv's microkernels broadcast X in place
// instead of the GEMM packing it into row tiles first, which for N <= 4 panels is a large share
// of the work (EfficientNet's and YOLO's narrow 1x1 convs, ResNet-50's 256 -> 64 and 512 -> 128,
// Swin's stage-1 MLP output; docs/PERFORMANCE.md, "Narrow GEMMs as 1x1 direct convs"). Each
// output is the same single FMA chain over k in order as in the packed GEMM (whose K blocks
// carry their partial sums exactly), with the same epilogue: the same bits. The avx512 level
// uses it; on the avx2 level (6 x 16 tiles, less packing per FMA) it measured a tie or a loss.
inline ConvGather linear_gather(const GemmArgs& a) {
  ConvGather g;
  g.X = a.X;
  g.B = 1;
  g.C = a.ldx;
  g.cg = a.K;
  g.h.in = g.h.out = 1;
  g.w.in = g.w.out = a.M;
  return g;
}

// NR: the level's panel width (a panel is NR output columns).
inline bool linear_direct_ok(const GemmArgs& a, int NR) {
  // F32 weights only: F16 panels would be widened in every row tile here, once per K slice in
  // the packed GEMM (EfficientNet-Lite0 F16 batch 1 measured 1.03x the time).
  if (!a.allow_direct || a.conv || a.cat || !a.X || a.wtype != DType::F32 || a.N > 4 * NR || a.ldx < a.K)
    return false;
  const ConvGather g = linear_gather(a);
  GemmArgs b = a;
  b.conv = &g;
  return conv_direct_ok(b);  // packed weights, K >= 8, a pixel stride off 4 KiB multiples
}

template <class T>
void linear_direct_run(const GemmArgs& a, int ith, int nth) {
  const ConvGather g = linear_gather(a);
  GemmArgs b = a;
  b.conv = &g;
  conv_direct_run<T>(b, ith, nth);
}

}  // namespace
}  // namespace PYVITCPP_GEMM_ISA
}  // namespace pyvitcpp
