// AVX2+FMA+F16C GEMM: 6x16 register tile (12 ymm accumulators, 2 for the W row, 1 broadcast),
// W packed in 16-column panels (F32 or F16 as stored), X read in place. Blocking and
// threading live in gemm_driver.h; this file holds the microkernels and their epilogue.
#include <immintrin.h>

#include <cstring>

#include "kernels/avx2/gemm_avx2.h"
#define PYVITCPP_GEMM_ISA avx2
#include "kernels/gemm_driver.h"
#include "kernels/conv_direct_driver.h"
#include "kernels/conv_winograd_driver.h"
#include "kernels/avx2/vec_avx2.h"
#include "kernels/simd_act.h"

namespace pyvitcpp {
namespace avx2 {
namespace {

constexpr int kMR = kGemmMR;
constexpr int kNR = kGemmNR;

inline __m256i tail_mask(int n) {  // lanes j < n set (n may exceed 8)
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx);
}

template <int R>
PYVITCPP_GEMM_FORCEINLINE void epilogue(__m256 (&c)[R][2], const GemmEpilogue& e) {
  const bool full = e.nr == kNR;
  const __m256i m0 = tail_mask(e.nr), m1 = tail_mask(e.nr - 8);
  __m256 b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();
  if (e.bias) {
    b0 = full ? _mm256_loadu_ps(e.bias) : _mm256_maskload_ps(e.bias, m0);
    b1 = full ? _mm256_loadu_ps(e.bias + 8) : _mm256_maskload_ps(e.bias + 8, m1);
  }
  alignas(32) float tmp[R * kNR];
  // ReLU / ReLU6 / the leaky ReLUs stay in registers, with act_apply's own operations (max(0, v),
  // max(slope v, v): a NaN in v passes through); the other activations go through act_apply on
  // the tile.
  const bool leaky = e.act == Act::LeakyRelu || e.act == Act::LeakyRelu01;
  const bool relu = e.act == Act::Relu || e.act == Act::Relu6 || leaky;
  const __m256 zero = _mm256_setzero_ps(), six = _mm256_set1_ps(6.0f);
  const __m256 slope = _mm256_set1_ps(e.act == Act::LeakyRelu01 ? 0.1f : 0.01f);
  auto clamp = [&](__m256 v) {
    if (leaky) return _mm256_max_ps(_mm256_mul_ps(slope, v), v);
    v = _mm256_max_ps(zero, v);
    return e.act == Act::Relu6 ? _mm256_min_ps(six, v) : v;
  };
  const bool act = e.act != Act::None && !relu;
  // A tile of at most 8 valid columns holds its values in c[i][0] only: the activation then
  // runs on R x 8 floats, not R x 16 (the avx512 twin has the reason).
  const int ld = e.nr <= 8 ? 8 : kNR;
  if (act) {
    #pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      _mm256_store_ps(tmp + i * ld, _mm256_add_ps(c[i][0], b0));
      if (ld == kNR) _mm256_store_ps(tmp + i * kNR + 8, _mm256_add_ps(c[i][1], b1));
    }
    act_inplace(tmp, R * ld, e.act);
  }
  #pragma GCC unroll 16
  for (int i = 0; i < R; ++i) {
    __m256 v0 = act ? _mm256_load_ps(tmp + i * ld) : _mm256_add_ps(c[i][0], b0);
    __m256 v1 = act ? (ld == kNR ? _mm256_load_ps(tmp + i * kNR + 8) : _mm256_setzero_ps())
                    : _mm256_add_ps(c[i][1], b1);
    if (relu) {
      v0 = clamp(v0);
      v1 = clamp(v1);
    }
    float* y = e.y + i * e.ldy;
    if (e.res) {
      const float* r = e.res + i * e.ldr;
      v0 = _mm256_add_ps(v0, full ? _mm256_loadu_ps(r) : _mm256_maskload_ps(r, m0));
      v1 = _mm256_add_ps(v1, full ? _mm256_loadu_ps(r + 8) : _mm256_maskload_ps(r + 8, m1));
    }
    if (e.relu_out) {
      v0 = _mm256_max_ps(_mm256_setzero_ps(), v0);
      v1 = _mm256_max_ps(_mm256_setzero_ps(), v1);
    }
    if (full) {
      _mm256_storeu_ps(y, v0);
      _mm256_storeu_ps(y + 8, v1);
    } else {
      _mm256_maskstore_ps(y, m0, v0);
      _mm256_maskstore_ps(y + 8, m1, v1);
    }
  }
}

template <bool F16>
inline void load_b(const void* B, int64_t k, __m256& b0, __m256& b1) {
  if (F16) {
    const uint16_t* p = static_cast<const uint16_t*>(B) + k * kNR;
    b0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    b1 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8)));
  } else {
    const float* p = static_cast<const float*>(B) + k * kNR;
    b0 = _mm256_loadu_ps(p);
    b1 = _mm256_loadu_ps(p + 8);
  }
}

template <int R, bool F16>
void ukernel(int64_t kc, const float* A, const void* B, float* cbuf, bool load_c,
             const GemmEpilogue* epi) {
  __m256 c[R][2];
  if (load_c) {
    #pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      c[i][0] = _mm256_load_ps(cbuf + i * kNR);
      c[i][1] = _mm256_load_ps(cbuf + i * kNR + 8);
    }
  } else {
    #pragma GCC unroll 16
    for (int i = 0; i < R; ++i) c[i][0] = c[i][1] = _mm256_setzero_ps();
  }
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    __m256 b0, b1;
    load_b<F16>(B, k, b0, b1);
    #pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      const __m256 x = _mm256_broadcast_ss(A + k * kMR + i);
      c[i][0] = _mm256_fmadd_ps(x, b0, c[i][0]);
      c[i][1] = _mm256_fmadd_ps(x, b1, c[i][1]);
    }
  }
  if (!epi) {
    #pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      _mm256_store_ps(cbuf + i * kNR, c[i][0]);
      _mm256_store_ps(cbuf + i * kNR + 8, c[i][1]);
    }
    return;
  }
  epilogue<R>(c, *epi);
}

struct Traits {
  static constexpr int MR = kMR, NR = kNR;
  static constexpr int KC = 256, MC = 96, MC1 = 204, NCP = 32, RMIN = 4;
  static const GemmUkernel* f32_kernels() {
    static const GemmUkernel k[kMR] = {ukernel<1, false>, ukernel<2, false>, ukernel<3, false>,
                                       ukernel<4, false>, ukernel<5, false>, ukernel<6, false>};
    return k;
  }
  static const GemmUkernel* f16_kernels() {
    static const GemmUkernel k[kMR] = {ukernel<1, true>, ukernel<2, true>, ukernel<3, true>,
                                       ukernel<4, true>, ukernel<5, true>, ukernel<6, true>};
    return k;
  }
  // For the direct conv's microkernel (conv_direct_driver.h).
  using V = __m256;
  static V vzero() { return _mm256_setzero_ps(); }
  static V bcast(const float* p) { return _mm256_broadcast_ss(p); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  // The level's vector traits (vec_avx2.h), for the Winograd conv's transforms.
  using VT = avx2::VT;
  template <bool F16>
  static void load_b(const void* B, int64_t k, V& b0, V& b1) { avx2::load_b<F16>(B, k, b0, b1); }
  template <int R>
  static void epilogue(V (&c)[R][2], const GemmEpilogue& e) { avx2::epilogue<R>(c, e); }
  static void cvt_f16(const uint16_t* src, float* dst, int64_t n) {
    for (int64_t i = 0; i < n; i += 8)
      _mm256_store_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  }
};
static_assert(Traits::MC % Traits::MR == 0 && Traits::MC1 % Traits::MR == 0, "MC, MC1 must be multiples of MR");

void (*g_fallback)(const GemmArgs&, int, int) = nullptr;

void gemm(const GemmArgs& a, int ith, int nth) {
  if (winograd_ok<Traits>(a)) winograd_run<Traits>(a, ith, nth);
  else if (conv_direct_ok(a)) conv_direct_run<Traits>(a, ith, nth);
  else gemm_run<Traits>(a, ith, nth, g_fallback);
}

}  // namespace

namespace {

// `iters` rounds of acc[i] = step(acc[i]) over 12 independent chains (enough to cover FMA
// latency x throughput, 4 x 2), kept in registers and the loop kept from being folded away:
// the probes' common loop.
template <class V, class Init, class Step, class Add>
V run_chains(int64_t iters, const Init& init, const Step& step, const Add& add) {
  V acc[12];
#pragma GCC unroll 24
  for (int i = 0; i < 12; ++i) acc[i] = init(i);
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 24
    for (int i = 0; i < 12; ++i) acc[i] = step(acc[i]);
#if defined(__GNUC__)
    __asm__ volatile("" : "+x"(acc[0]), "+x"(acc[1]), "+x"(acc[2]), "+x"(acc[3]), "+x"(acc[4]),
                     "+x"(acc[5]), "+x"(acc[6]), "+x"(acc[7]), "+x"(acc[8]), "+x"(acc[9]),
                     "+x"(acc[10]), "+x"(acc[11]));
#endif
  }
  V s = acc[0];
#pragma GCC unroll 24
  for (int i = 1; i < 12; ++i) s = add(s, acc[i]);
  return s;  // the sum of the chains, for the caller to consume
}

// Reads a byte of v into a volatile, so that the chains' results are used.
template <class V>
void sink(V v) {
  unsigned char out[sizeof(V)];
  std::memcpy(out, &v, sizeof(V));
  volatile unsigned char keep = out[0];
  (void)keep;
}

}  // namespace

double gemm_fma_probe(int64_t iters) {
  const __m256 m = _mm256_set1_ps(0.999999f), d = _mm256_set1_ps(1e-7f);
  sink(run_chains<__m256>(
      iters, [](int i) { return _mm256_set1_ps(static_cast<float>(i) * 1e-3f); },
      [&](__m256 a) { return _mm256_fmadd_ps(a, m, d); }, [](__m256 a, __m256 b) { return _mm256_add_ps(a, b); }));
  return static_cast<double>(iters) * 12 * 8 * 2;
}

double gemm_int8_probe(int64_t iters) {
  // vpmaddubsw (u8 x s8, pairs summed into int16): the product instruction of the avx2
  // block-quantized GEMM (kernels/avx2/quant_avx2.cpp). Each chain feeds its int16 result back
  // as the next unsigned bytes (a constant pair of operands would be hoisted out of the loop);
  // the values saturate harmlessly, only the rate is measured.
  const __m256i w = _mm256_set1_epi8(-2);
  sink(run_chains<__m256i>(
      iters, [](int i) { return _mm256_set1_epi16(static_cast<int16_t>(i)); },
      [&](__m256i a) { return _mm256_maddubs_epi16(a, w); },
      [](__m256i a, __m256i b) { return _mm256_add_epi16(a, b); }));
  return static_cast<double>(iters) * 12 * 32 * 2;
}

}  // namespace avx2

void register_gemm_avx2(KernelTable& t) {
  avx2::g_fallback = t.gemm;  // the level below (ref): used only when W is not packed
  t.gemm_pack_size = avx2::gemm_packed_size<avx2::kNR>;
  t.gemm_pack = avx2::gemm_pack<avx2::kNR>;
  t.gemm = avx2::gemm;
  t.gemm_pack_nr = avx2::kNR;
  t.wino_pack_size = avx2::wino_packed_size<avx2::kNR>;
  t.wino_pack = avx2::wino_pack<avx2::kNR>;
}

}  // namespace pyvitcpp
