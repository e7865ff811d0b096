// ISA-neutral GEMM driver (blocking, threading, packing of W), shared by the avx2 and avx512
// GEMMs. Each of those translation units instantiates it with its own microkernel traits.
//
// Everything here sits in an unnamed namespace inside the including level's namespace
// (PYVITCPP_GEMM_ISA, defined by the includer before including): each TU gets a private copy
// with internal linkage, so code compiled with -mavx512f can never be picked by the linker for
// the avx2 TU (a plain inline function in a shared header would be an ODR trap between TUs
// compiled with different -m flags), and every instantiation carries its level in its name
// (tests/test_isa_isolation.py checks that from the built module's symbols).
//
// Layout of the packed weight (private to this driver): column panels of NR outputs; panel p
// holds W[p*NR + j][k] at element (p*K + k)*NR + j, zero-padded to NR columns, so
// gemm_pack_size = ceil(N/NR)*NR * K * (4 for F32, 2 for F16). F16 stays F16: with one row
// tile the microkernel converts it (vcvtph2ps) as it loads; with more, each kc x NR slice is
// converted once into a small L1 scratch and reused by every row tile of the block.
//
// Per-thread scratch (thread_local, grown on first use, freed at thread exit; calls from
// different threads never share it): packed X, ~min(MC, 2^18/K) rows x K floats (<= ~1 MiB
// unless K > 2^18/MR); partial sums, MC x NCP*NR floats when K > KC (avx2 192 KiB, avx512
// 288 KiB); F16 slice, KC x NR floats (16 KiB).
//
// Loop nest per thread (its rectangle of rows x panels, see gemm_choose_grid):
//   ic: mc rows of X, packed once (gemm_pack_x, or gathered from a conv's feature map by
//       gemm_pack_x_gather: a conv's or a Concat's) into a per-thread buffer (mc x K, <= ~1 MiB)
//    jc: NCP panels                 (partial sums of mc x NCP*NR live in a per-thread scratch)
//     kb: K blocks of <= KC         (the packed mc x kc block of X is reused from L2)
//      p: panels in jc              (the kc x NR slice of W is reused from L1 by every tile;
//                                    the next slice is prefetched into L2 meanwhile)
//       t: MR-row tiles in ic       microkernel R x NR, R <= MR; the epilogue (bias, act,
//                                    residual) runs on the tile at the last K block
// Partial sums over K blocks go to the scratch, never to Y, so a residual that aliases Y is
// read intact by the epilogue. Each output's summation order depends only on K and KC, not on
// the thread split, so any nth gives the same bits.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include <xmmintrin.h>

#if defined(__GNUC__)
#define PYVITCPP_GEMM_FORCEINLINE __attribute__((always_inline)) inline
#elif defined(_MSC_VER)
#define PYVITCPP_GEMM_FORCEINLINE __forceinline
#else
#define PYVITCPP_GEMM_FORCEINLINE inline
#endif

#include "kernels/kernels.h"

#ifndef PYVITCPP_GEMM_ISA
#error "define PYVITCPP_GEMM_ISA (the level's namespace: avx2, avx512) before including gemm_driver.h"
#endif

namespace pyvitcpp {
namespace PYVITCPP_GEMM_ISA {
namespace {  // NOLINT(google-build-namespaces): see the comment at the top

// What the microkernel needs to finish a tile (only passed for the last K block).
struct GemmEpilogue {
  float* y;              // Y at (row0, n0)
  int64_t ldy;
  const float* bias;     // at n0, or null
  const float* res;      // residual at (row0, n0), or null; may equal y
  int64_t ldr;
  Act act;
  int nr;                // valid columns in this tile (1..NR)
  bool relu_out = false;  // max(y, 0) after the residual (GemmArgs::relu_out)
};

// Microkernel: C[R x NR] (+)= X[R rows, kc] . B[kc x NR]; X packed k-major, X[r][k] at
// A[k*MR + r] (see gemm_pack_x); B k-major with row stride NR. load_c: start from the partial sums in cbuf (tile of MR x NR, row
// stride NR) instead of zero. epi == null: store the sums to cbuf; else finish the tile.
using GemmUkernel = void (*)(int64_t kc, const float* A, const void* B, float* cbuf,
                             bool load_c, const GemmEpilogue* epi);

// Per-thread scratch that grows on demand and is never freed before the thread exits:
// no allocation in the steady state.
struct GemmScratch {
  float* p = nullptr;
  size_t n = 0;
  GemmScratch() = default;
  GemmScratch(const GemmScratch&) = delete;
  GemmScratch& operator=(const GemmScratch&) = delete;
  ~GemmScratch() { release(); }
  void release() {
    if (p) ::operator delete(p, std::align_val_t(64));
    p = nullptr;
    n = 0;
  }
  float* get(size_t need) {
    if (need > n) {
      release();
      p = static_cast<float*>(::operator new(need * sizeof(float), std::align_val_t(64)));
      n = need;
    }
    return p;
  }
};

inline int64_t gemm_ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Split the output among nth threads as a pm x pn grid (pm row ranges of arbitrary length,
// pn ranges of whole panels). Picks the grid with the smallest per-thread work, modelling a
// tail tile of r < MR rows as costing max(r, rmin) rows (small tiles are latency bound); grids
// within 2% of that are treated as equal and the one with the smallest per-thread input
// footprint (rows + columns, each times K: X rows each thread packs, W it streams) wins.
inline void gemm_choose_grid(int64_t M, int64_t npanels, int nth, int MR, int NR, int rmin,
                             int* pm_out, int* pn_out) {
  int best_pm = 1;
  double best_work = -1.0;
  for (int pass = 0; pass < 2; ++pass) {  // pass 0: least work; pass 1: least footprint near it
    double best_foot = -1.0;
    for (int pm = 1; pm <= nth; ++pm) {
      if (nth % pm) continue;
      const int pn = nth / pm;
      const int64_t rows = gemm_ceil_div(M, pm);
      const int64_t panels = gemm_ceil_div(npanels, pn);
      const int64_t tail = rows % MR;
      const double rowcost = static_cast<double>(rows - tail) +
                             (tail ? static_cast<double>(std::max<int64_t>(tail, rmin)) : 0.0);
      const double work = rowcost * static_cast<double>(panels);
      const double foot = static_cast<double>(rows) + static_cast<double>(panels * NR);
      if (pass == 0) {
        if (best_work < 0 || work < best_work) best_work = work;
      } else if (work <= best_work * 1.02 && (best_foot < 0 || foot < best_foot)) {
        best_foot = foot;
        best_pm = pm;
      }
    }
  }
  *pm_out = best_pm;
  *pn_out = nth / best_pm;
}

// Thread ith's rectangle of the output under gemm_choose_grid: rows [m0, m1) x panels [q0, q1).
// False when it is empty.
struct GemmRect {
  int64_t m0 = 0, m1 = 0, q0 = 0, q1 = 0;
};
inline bool gemm_thread_rect(int64_t M, int64_t npanels, int ith, int nth, int MR, int NR, int rmin, GemmRect* r) {
  int pm = 1, pn = 1;
  gemm_choose_grid(M, npanels, nth, MR, NR, rmin, &pm, &pn);
  const int im = ith / pn, in = ith % pn;
  r->m0 = M * im / pm;
  r->m1 = M * (im + 1) / pm;
  r->q0 = npanels * in / pn;
  r->q1 = npanels * (in + 1) / pn;
  return r->m0 < r->m1 && r->q0 < r->q1;
}

// Copies rows [0, rows) x columns [0, K) of X (row stride ldx) into tiles of MR rows, each
// K x MR, k-major (X[r0 + i][k] at dst[r0*K + k*MR + i]): the microkernel then reads one
// contiguous stream whatever ldx is (rows at a stride that is a multiple of 4 KiB would
// otherwise all fall into one L1 set). Rows past `rows` in the last tile are left unset: the
// R-row microkernel never reads them. 4x4 SSE transposes (SSE is baseline x86-64).
template <int MR, int R>
inline void gemm_pack_x_tile(const float* x, int64_t ldx, int64_t K, float* d) {
  int64_t k = 0;
  for (; k + 4 <= K; k += 4) {
    if ((k & 15) == 0) {  // X usually comes from L3 or memory: run ahead of the row streams
#pragma GCC unroll 16
      for (int i = 0; i < R; ++i) _mm_prefetch(reinterpret_cast<const char*>(x + i * ldx + k + 128), _MM_HINT_T0);
    }
    int i = 0;
#pragma GCC unroll 4
    for (; i + 4 <= R; i += 4) {
      __m128 r0 = _mm_loadu_ps(x + (i + 0) * ldx + k), r1 = _mm_loadu_ps(x + (i + 1) * ldx + k);
      __m128 r2 = _mm_loadu_ps(x + (i + 2) * ldx + k), r3 = _mm_loadu_ps(x + (i + 3) * ldx + k);
      _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
      _mm_storeu_ps(d + (k + 0) * MR + i, r0);
      _mm_storeu_ps(d + (k + 1) * MR + i, r1);
      _mm_storeu_ps(d + (k + 2) * MR + i, r2);
      _mm_storeu_ps(d + (k + 3) * MR + i, r3);
    }
    if (i + 2 <= R) {
      const __m128 r0 = _mm_loadu_ps(x + i * ldx + k), r1 = _mm_loadu_ps(x + (i + 1) * ldx + k);
      const __m128 lo = _mm_unpacklo_ps(r0, r1), hi = _mm_unpackhi_ps(r0, r1);
      _mm_storel_pi(reinterpret_cast<__m64*>(d + (k + 0) * MR + i), lo);
      _mm_storeh_pi(reinterpret_cast<__m64*>(d + (k + 1) * MR + i), lo);
      _mm_storel_pi(reinterpret_cast<__m64*>(d + (k + 2) * MR + i), hi);
      _mm_storeh_pi(reinterpret_cast<__m64*>(d + (k + 3) * MR + i), hi);
      i += 2;
    }
    if (i < R) {
      for (int j = 0; j < 4; ++j) d[(k + j) * MR + i] = x[i * ldx + k + j];
    }
  }
  for (; k < K; ++k)
    for (int i = 0; i < R; ++i) d[k * MR + i] = x[i * ldx + k];
}

template <int MR, int R = MR>
struct GemmPackX {
  static void tile(int r, const float* x, int64_t ldx, int64_t K, float* d) {
    if (r == R) gemm_pack_x_tile<MR, R>(x, ldx, K, d);
    else GemmPackX<MR, R - 1>::tile(r, x, ldx, K, d);
  }
};
template <int MR>
struct GemmPackX<MR, 0> {
  static void tile(int, const float*, int64_t, int64_t, float*) {}
};

// Layout: K blocks of kcb columns, one after the other; inside block kb (k0 = kb*kcb, width kc)
// the row tiles follow each other, tile t holding X[r0 + t*MR + i][k0 + k] at
// [k0*mtiles*MR + t*MR*kc + k*MR + i]. A K block is one contiguous stream over all tiles, so
// the hardware prefetcher runs ahead into the next tile.
template <int MR>
void gemm_pack_x(const float* X, int64_t ldx, int64_t rows, int64_t K, int64_t kcb, float* dst) {
  const int64_t mtiles = gemm_ceil_div(rows, MR);
  for (int64_t k0 = 0; k0 < K; k0 += kcb) {
    const int64_t kc = std::min(kcb, K - k0);
    for (int64_t t = 0; t < mtiles; ++t) {
      const int R = static_cast<int>(std::min<int64_t>(MR, rows - t * MR));
      GemmPackX<MR>::tile(R, X + t * MR * ldx + k0, ldx, kc, dst + k0 * mtiles * MR + t * MR * kc);
    }
  }
}

// gemm_pack_x for a GEMM whose X is a convolution's im2col matrix (GemmArgs::conv): each row
// tile's K block is gathered from the feature map into `rowbuf` (MR x kcb floats, L1) and
// packed from there, so the matrix never exists in memory (it was written by an Im2col op and
// read back from L3 or DRAM: 7 MB for a ResNet-50 layer-1 3x3 conv at batch 1).
// The same for a fused Concat's column blocks (GemmArgs::cat): gemm_gather_row serves both.
template <int MR>
void gemm_pack_x_gather(const GemmArgs& a, int64_t row0, int64_t rows, int64_t K, int64_t kcb, float* rowbuf,
                        float* dst) {
  const int64_t mtiles = gemm_ceil_div(rows, MR);
  for (int64_t k0 = 0; k0 < K; k0 += kcb) {
    const int64_t kc = std::min(kcb, K - k0);
    for (int64_t t = 0; t < mtiles; ++t) {
      const int R = static_cast<int>(std::min<int64_t>(MR, rows - t * MR));
      for (int i = 0; i < R; ++i) gemm_gather_row(a, row0 + t * MR + i, k0, kc, rowbuf + i * kc);
      GemmPackX<MR>::tile(R, rowbuf, kc, kc, dst + k0 * mtiles * MR + t * MR * kc);
    }
  }
}

template <int NR>
size_t gemm_packed_size(DType wtype, int64_t N, int64_t K) {
  if (wtype != DType::F32 && wtype != DType::F16) return 0;
  const size_t esz = wtype == DType::F32 ? 4 : 2;
  return static_cast<size_t>(gemm_ceil_div(N, NR)) * NR * static_cast<size_t>(K) * esz;
}

template <int NR, typename T>
void gemm_pack_panels(const T* W, int64_t N, int64_t K, T* dst) {
  const int64_t np = gemm_ceil_div(N, NR);
  for (int64_t p = 0; p < np; ++p) {
    T* d = dst + p * K * NR;
    for (int j = 0; j < NR; ++j) {
      const int64_t n = p * NR + j;
      if (n < N) {
        const T* w = W + n * K;
        for (int64_t k = 0; k < K; ++k) d[k * NR + j] = w[k];
      } else {
        for (int64_t k = 0; k < K; ++k) d[k * NR + j] = T(0);
      }
    }
  }
}

// F32 panels through 4x4 SSE transposes (four W rows at a time, four k per step): the
// element-wise loop above costs ~3 cycles per weight, which is most of a cold start.
template <int NR>
void gemm_pack_panels_f32(const float* W, int64_t N, int64_t K, float* dst) {
  static_assert(NR % 4 == 0, "NR must be a multiple of 4");
  const int64_t np = gemm_ceil_div(N, NR);
  for (int64_t p = 0; p < np; ++p) {
    float* d = dst + p * K * NR;
    for (int j = 0; j < NR; j += 4) {
      const int64_t n = p * NR + j;
      if (n + 4 > N) {  // the panel's last, partial row group: element-wise, zero-padded
        for (int jj = j; jj < j + 4; ++jj) {
          const int64_t nn = p * NR + jj;
          for (int64_t k = 0; k < K; ++k) d[k * NR + jj] = nn < N ? W[nn * K + k] : 0.0f;
        }
        continue;
      }
      const float* w0 = W + n * K;
      const float* w1 = w0 + K;
      const float* w2 = w1 + K;
      const float* w3 = w2 + K;
      int64_t k = 0;
      for (; k + 4 <= K; k += 4) {
        __m128 r0 = _mm_loadu_ps(w0 + k), r1 = _mm_loadu_ps(w1 + k);
        __m128 r2 = _mm_loadu_ps(w2 + k), r3 = _mm_loadu_ps(w3 + k);
        _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
        _mm_storeu_ps(d + (k + 0) * NR + j, r0);
        _mm_storeu_ps(d + (k + 1) * NR + j, r1);
        _mm_storeu_ps(d + (k + 2) * NR + j, r2);
        _mm_storeu_ps(d + (k + 3) * NR + j, r3);
      }
      for (; k < K; ++k) {
        d[k * NR + j + 0] = w0[k];
        d[k * NR + j + 1] = w1[k];
        d[k * NR + j + 2] = w2[k];
        d[k * NR + j + 3] = w3[k];
      }
    }
  }
}

template <int NR>
void gemm_pack(const void* W_raw, DType wtype, int64_t N, int64_t K, void* dst) {
  if (wtype == DType::F32)
    gemm_pack_panels_f32<NR>(static_cast<const float*>(W_raw), N, K, static_cast<float*>(dst));
  else if (wtype == DType::F16)
    gemm_pack_panels<NR>(static_cast<const uint16_t*>(W_raw), N, K, static_cast<uint16_t*>(dst));
}

// Traits (per ISA TU) provide:
//   MR, NR, KC (max K block), MC (rows per block, multiple of MR), MC1 (rows per block when K
//   fits one K block), NCP (panels per block),
//   RMIN (see gemm_choose_grid),
//   static const GemmUkernel* f32_kernels() / f16_kernels()  (index R-1, R = 1..MR),
//   static void cvt_f16(const uint16_t* src, float* dst, int64_t n)  (n multiple of NR).
template <class T>
void gemm_run(const GemmArgs& a, int ith, int nth, void (*fallback)(const GemmArgs&, int, int)) {
  constexpr int MR = T::MR, NR = T::NR;
  if (!a.W_packed || (a.wtype != DType::F32 && a.wtype != DType::F16)) {
    fallback(a, ith, nth);
    return;
  }
  const int64_t M = a.M, N = a.N, K = a.K;
  if (M <= 0 || N <= 0 || K <= 0) return;
  const int64_t npanels = gemm_ceil_div(N, NR);
  GemmRect rect;
  if (!gemm_thread_rect(M, npanels, ith, nth, MR, NR, T::RMIN, &rect)) return;
  const int64_t m0 = rect.m0, m1 = rect.m1, q0 = rect.q0, q1 = rect.q1;

  const int64_t nkb = gemm_ceil_div(K, T::KC);
  const int64_t kcb = gemm_ceil_div(K, nkb);  // balanced K blocks
  const bool f16 = a.wtype == DType::F16;

  // Rows per block: at most MC, fewer for long K so the packed rows (MC x K) stay near 1 MiB.
  // With a single K block (no partial-sum scratch, which grows with the rows per block) up to
  // MC1 rows, so that a batch-1 transformer's 197 rows are one block: W is then streamed once
  // per thread instead of once per block. The blocks are balanced (197 rows with MC 96 were
  // 96 + 96 + 5: a last block of one tile that streams all of W for 5 rows).
  const int64_t mc_cap = std::max<int64_t>(
      MR, std::min<int64_t>(nkb == 1 ? T::MC1 : T::MC, (int64_t{1} << 18) / K) / MR * MR);
  const int64_t nblk = gemm_ceil_div(m1 - m0, mc_cap);
  const int64_t mc = gemm_ceil_div(gemm_ceil_div(m1 - m0, nblk), MR) * MR;  // <= mc_cap
  static thread_local GemmScratch cbuf_s, bconv_s, xpack_s, rowbuf_s;
  float* xpack = xpack_s.get(static_cast<size_t>(gemm_ceil_div(mc, MR) * MR) * K);
  float* rowbuf = a.conv || a.cat ? rowbuf_s.get(static_cast<size_t>(MR) * kcb) : nullptr;
  float* cbuf = nkb > 1 ? cbuf_s.get(static_cast<size_t>(mc) * T::NCP * NR) : nullptr;
  float* bconv = f16 ? bconv_s.get(static_cast<size_t>(kcb) * NR) : nullptr;

  const GemmUkernel* kf32 = T::f32_kernels();
  const GemmUkernel* kf16 = T::f16_kernels();
  const int64_t ncp = nkb > 1 ? T::NCP : (q1 - q0);

  for (int64_t ic = m0; ic < m1; ic += mc) {
    const int64_t mrows = std::min<int64_t>(mc, m1 - ic);
    const int64_t mtiles = gemm_ceil_div(mrows, MR);
    if (a.conv || a.cat) gemm_pack_x_gather<MR>(a, ic, mrows, K, kcb, rowbuf, xpack);
    else gemm_pack_x<MR>(a.X + ic * a.ldx, a.ldx, mrows, K, kcb, xpack);
    for (int64_t jc = q0; jc < q1; jc += ncp) {
      const int64_t je = std::min(q1, jc + ncp);
      for (int64_t kb = 0; kb < nkb; ++kb) {
        const int64_t k0 = kb * kcb;
        const int64_t kc = std::min(kcb, K - k0);
        const bool first = kb == 0, last = kb == nkb - 1;
        for (int64_t p = jc; p < je; ++p) {
          const int64_t n0 = p * NR;
          const void* B;
          const GemmUkernel* kern = kf32;
          if (!f16) {
            B = static_cast<const float*>(a.W_packed) + (p * K + k0) * NR;
          } else {
            const uint16_t* bh = static_cast<const uint16_t*>(a.W_packed) + (p * K + k0) * NR;
            if (mtiles > 1) {  // convert once per slice, reuse for every row tile
              T::cvt_f16(bh, bconv, kc * NR);
              B = bconv;
            } else {
              B = bh;
              kern = kf16;
            }
          }
          // The next W slice is in L3 or memory; fetch it into L2 a piece per row tile of
          // this one, so the first tile of the next panel does not stall on it.
          const char* nxt = nullptr;
          int64_t nxt_bytes = 0;
          {
            int64_t np_ = p + 1, nk0 = k0, nkc = kc;
            if (np_ >= je && kb + 1 < nkb) {  // first panel of the next K block
              np_ = jc;
              nk0 = k0 + kcb;
              nkc = std::min(kcb, K - nk0);
            } else if (np_ >= je) {  // first panel of the next column block
              nk0 = 0;
              nkc = std::min(kcb, K);
            }
            if (np_ < q1) {
              const size_t esz = f16 ? 2 : 4;
              nxt = static_cast<const char*>(a.W_packed) + static_cast<size_t>((np_ * K + nk0) * NR) * esz;
              nxt_bytes = nkc * NR * static_cast<int64_t>(esz);
            }
          }
          const int64_t pf_step = gemm_ceil_div(gemm_ceil_div(nxt_bytes, mtiles), 64) * 64;
          GemmEpilogue e;
          e.nr = static_cast<int>(std::min<int64_t>(NR, N - n0));
          e.act = a.act;
          e.relu_out = a.relu_out;
          e.ldy = a.ldy;
          e.ldr = a.ldr;
          for (int64_t t = 0; t < mtiles; ++t) {
            const int64_t r0 = ic + t * MR;
            const int R = static_cast<int>(std::min<int64_t>(MR, m1 - r0));
            float* ct = cbuf ? cbuf + (((p - jc) * mtiles + t) * MR * NR) : nullptr;
            const GemmEpilogue* ep = nullptr;
            if (last) {
              e.y = a.Y + r0 * a.ldy + n0;
              e.bias = a.bias ? a.bias + n0 : nullptr;
              e.res = a.residual ? a.residual + r0 * a.ldr + n0 : nullptr;
              ep = &e;
            }
            if (last && t + 1 < mtiles) {  // Y rows of the next tile, for the epilogue
              const int64_t rn = std::min<int64_t>(MR, m1 - r0 - MR);
              for (int64_t i = 0; i < rn; ++i) {
                const char* yr = reinterpret_cast<const char*>(a.Y + (r0 + MR + i) * a.ldy + n0);
                _mm_prefetch(yr, _MM_HINT_T0);
                _mm_prefetch(yr + NR * 4 - 1, _MM_HINT_T0);
              }
            }
            if (nxt) {
              const int64_t b0 = t * pf_step, b1 = std::min(nxt_bytes, b0 + pf_step);
              for (int64_t off = b0; off < b1; off += 64) _mm_prefetch(nxt + off, _MM_HINT_T1);
            }
            kern[R - 1](kc, xpack + k0 * mtiles * MR + t * MR * kc, B, ct, !first, ep);
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace PYVITCPP_GEMM_ISA
}  // namespace pyvitcpp
