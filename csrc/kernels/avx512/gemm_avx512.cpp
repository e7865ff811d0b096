// AVX-512 GEMM: 12x32 register tile (24 zmm accumulators, 2 for the W row, broadcasts), W
// packed in 32-column panels (F32 or F16 as stored), X read in place. Blocking and threading
// live in kernels/gemm_driver.h (ISA-neutral, instantiated privately in this TU).
#include <immintrin.h>

#define PYVITCPP_GEMM_ISA avx512
#include "kernels/gemm_driver.h"
#include "kernels/conv_direct_driver.h"
#include "kernels/conv_winograd_driver.h"
#include "kernels/avx512/vec_avx512.h"
#include "kernels/avx512/gemm_avx512.h"
#include "kernels/simd_act.h"

namespace pyvitcpp {
namespace avx512 {
namespace {

constexpr int kMR = kGemmMR;
constexpr int kNR = kGemmNR;

inline __mmask16 tail_mask(int n) {  // lanes j < n (n may be <= 0 or > 16)
  if (n >= 16) return static_cast<__mmask16>(0xffff);
  if (n <= 0) return 0;
  return static_cast<__mmask16>((1u << n) - 1u);
}

template <int R>
PYVITCPP_GEMM_FORCEINLINE void epilogue(__m512 (&c)[R][2], const GemmEpilogue& e) {
  const __mmask16 m0 = tail_mask(e.nr), m1 = tail_mask(e.nr - 16);
  __m512 b0 = _mm512_setzero_ps(), b1 = _mm512_setzero_ps();
  if (e.bias) {
    b0 = _mm512_maskz_loadu_ps(m0, e.bias);
    b1 = _mm512_maskz_loadu_ps(m1, e.bias + 16);
  }
  alignas(64) float tmp[R * kNR];
  // ReLU / ReLU6 / the leaky ReLUs stay in registers, with act_apply's own operations (max(0, v),
  // max(slope v, v): a NaN in v passes through); the other activations go through act_apply on
  // the tile.
  const bool leaky = e.act == Act::LeakyRelu || e.act == Act::LeakyRelu01;
  const bool relu = e.act == Act::Relu || e.act == Act::Relu6 || leaky;
  const __m512 zero = _mm512_setzero_ps(), six = _mm512_set1_ps(6.0f);
  const __m512 slope = _mm512_set1_ps(e.act == Act::LeakyRelu01 ? 0.1f : 0.01f);
  auto clamp = [&](__m512 v) {
    if (leaky) return _mm512_max_ps(_mm512_mul_ps(slope, v), v);
    v = _mm512_max_ps(zero, v);
    return e.act == Act::Relu6 ? _mm512_min_ps(six, v) : v;
  };
  const bool act = e.act != Act::None && !relu;
  // A tile of at most 16 valid columns (a 16-channel conv, the last panel of 80 or 144) holds
  // its values in c[i][0] only: the activation then runs on R x 16 floats, not R x 32 (SiLU
  // on the unused half was a third of the epilogue of yolov8n's 16-channel convs).
  const int ld = e.nr <= 16 ? 16 : kNR;
  if (act) {
    #pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      _mm512_store_ps(tmp + i * ld, _mm512_add_ps(c[i][0], b0));
      if (ld == kNR) _mm512_store_ps(tmp + i * kNR + 16, _mm512_add_ps(c[i][1], b1));
    }
    act_inplace(tmp, R * ld, e.act);
  }
  #pragma GCC unroll 16
  for (int i = 0; i < R; ++i) {
    __m512 v0 = act ? _mm512_load_ps(tmp + i * ld) : _mm512_add_ps(c[i][0], b0);
    __m512 v1 = act ? (ld == kNR ? _mm512_load_ps(tmp + i * kNR + 16) : _mm512_setzero_ps())
                    : _mm512_add_ps(c[i][1], b1);
    if (relu) {
      v0 = clamp(v0);
      v1 = clamp(v1);
    }
    float* y = e.y + i * e.ldy;
    if (e.res) {
      const float* r = e.res + i * e.ldr;
      v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, r));
      v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, r + 16));
    }
    if (e.relu_out) {
      v0 = _mm512_max_ps(zero, v0);
      v1 = _mm512_max_ps(zero, v1);
    }
    _mm512_mask_storeu_ps(y, m0, v0);
    _mm512_mask_storeu_ps(y + 16, m1, v1);
  }
}

template <bool F16>
inline void load_b(const void* B, int64_t k, __m512& b0, __m512& b1) {
  if (F16) {
    const uint16_t* p = static_cast<const uint16_t*>(B) + k * kNR;
    b0 = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    b1 = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 16)));
  } else {
    const float* p = static_cast<const float*>(B) + k * kNR;
    b0 = _mm512_loadu_ps(p);
    b1 = _mm512_loadu_ps(p + 16);
  }
}

template <int R, bool F16>
void ukernel(int64_t kc, const float* A, const void* B, float* cbuf, bool load_c,
             const GemmEpilogue* epi) {
  __m512 c[R][2];
  if (load_c) {
    #pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      c[i][0] = _mm512_load_ps(cbuf + i * kNR);
      c[i][1] = _mm512_load_ps(cbuf + i * kNR + 16);
    }
  } else {
    #pragma GCC unroll 16
    for (int i = 0; i < R; ++i) c[i][0] = c[i][1] = _mm512_setzero_ps();
  }
#pragma GCC unroll 2
  for (int64_t k = 0; k < kc; ++k) {
    __m512 b0, b1;
    load_b<F16>(B, k, b0, b1);
    #pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      const __m512 x = _mm512_set1_ps(A[k * kMR + i]);
      c[i][0] = _mm512_fmadd_ps(x, b0, c[i][0]);
      c[i][1] = _mm512_fmadd_ps(x, b1, c[i][1]);
    }
  }
  if (!epi) {
    #pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      _mm512_store_ps(cbuf + i * kNR, c[i][0]);
      _mm512_store_ps(cbuf + i * kNR + 16, c[i][1]);
    }
    return;
  }
  epilogue<R>(c, *epi);
}

template <bool F16>
const GemmUkernel* kernels() {
  static const GemmUkernel k[kMR] = {
      ukernel<1, F16>, ukernel<2, F16>, ukernel<3, F16>, ukernel<4, F16>,  ukernel<5, F16>,  ukernel<6, F16>,
      ukernel<7, F16>, ukernel<8, F16>, ukernel<9, F16>, ukernel<10, F16>, ukernel<11, F16>, ukernel<12, F16>};
  return k;
}

struct Traits {
  static constexpr int MR = kMR, NR = kNR;
  static constexpr int KC = 128, MC = 144, MC1 = MC, NCP = 16, RMIN = 2;
  static const GemmUkernel* f32_kernels() { return kernels<false>(); }
  static const GemmUkernel* f16_kernels() { return kernels<true>(); }
  // For the direct conv's microkernel (conv_direct_driver.h).
  using V = __m512;
  static V vzero() { return _mm512_setzero_ps(); }
  static V bcast(const float* p) { return _mm512_set1_ps(*p); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  // The level's vector traits (vec_avx512.h), for the Winograd conv's transforms.
  using VT = avx512::VT;
  template <bool F16>
  static void load_b(const void* B, int64_t k, V& b0, V& b1) { avx512::load_b<F16>(B, k, b0, b1); }
  template <int R>
  static void epilogue(V (&c)[R][2], const GemmEpilogue& e) { avx512::epilogue<R>(c, e); }
  static void cvt_f16(const uint16_t* src, float* dst, int64_t n) {
    for (int64_t i = 0; i < n; i += 16)
      _mm512_store_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i))));
  }
};
static_assert(Traits::MC % Traits::MR == 0 && Traits::MC1 % Traits::MR == 0, "MC, MC1 must be multiples of MR");

void (*g_fallback)(const GemmArgs&, int, int) = nullptr;

void gemm(const GemmArgs& a, int ith, int nth) {
  if (winograd_ok<Traits>(a)) winograd_run<Traits>(a, ith, nth);
  else if (conv_direct_ok(a)) conv_direct_run<Traits>(a, ith, nth);
  else if (linear_direct_ok(a, Traits::NR)) linear_direct_run<Traits>(a, ith, nth);
  else gemm_run<Traits>(a, ith, nth, g_fallback);
}

}  // namespace

namespace {

// `iters` rounds of acc[i] = step(acc[i]) over 24 independent chains (of the 32 zmm registers),
// kept in registers and the loop kept from being folded away: the probes' common loop.
template <class V, class Init, class Step, class Add>
V run_chains(int64_t iters, const Init& init, const Step& step, const Add& add) {
  V acc[24];
#pragma GCC unroll 24
  for (int i = 0; i < 24; ++i) acc[i] = init(i);
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 24
    for (int i = 0; i < 24; ++i) acc[i] = step(acc[i]);
#if defined(__GNUC__) && defined(__AVX512F__)  // not in the SIMDe-emulated test build: no zmm there
    __asm__ volatile("" : "+v"(acc[0]), "+v"(acc[1]), "+v"(acc[2]), "+v"(acc[3]), "+v"(acc[4]),
                     "+v"(acc[5]), "+v"(acc[6]), "+v"(acc[7]), "+v"(acc[8]), "+v"(acc[9]),
                     "+v"(acc[10]), "+v"(acc[11]));
    __asm__ volatile("" : "+v"(acc[12]), "+v"(acc[13]), "+v"(acc[14]), "+v"(acc[15]), "+v"(acc[16]),
                     "+v"(acc[17]), "+v"(acc[18]), "+v"(acc[19]), "+v"(acc[20]), "+v"(acc[21]),
                     "+v"(acc[22]), "+v"(acc[23]));
#endif
  }
  V s = acc[0];
#pragma GCC unroll 24
  for (int i = 1; i < 24; ++i) s = add(s, acc[i]);
  return s;  // the sum of the chains, for the caller to consume
}

}  // namespace

double gemm_fma_probe(int64_t iters) {
  const __m512 m = _mm512_set1_ps(0.999999f), d = _mm512_set1_ps(1e-7f);
  const __m512 s = run_chains<__m512>(
      iters, [](int i) { return _mm512_set1_ps(static_cast<float>(i) * 1e-3f); },
      [&](__m512 a) { return _mm512_fmadd_ps(a, m, d); }, [](__m512 a, __m512 b) { return _mm512_add_ps(a, b); });
  volatile float sink = _mm512_reduce_add_ps(s);
  (void)sink;
  return static_cast<double>(iters) * 24 * 16 * 2;
}

double gemm_int8_probe(int64_t iters) {
  // vpdpbusd (u8 x s8, 4 products summed into each int32 lane): the instruction of the avx512
  // block-quantized GEMM (kernels/avx512/quant_avx512.cpp).
  const __m512i u = _mm512_set1_epi8(3), w = _mm512_set1_epi8(-2);
  const __m512i s = run_chains<__m512i>(
      iters, [](int i) { return _mm512_set1_epi32(i); }, [&](__m512i a) { return _mm512_dpbusd_epi32(a, u, w); },
      [](__m512i a, __m512i b) { return _mm512_add_epi32(a, b); });
  volatile int sink = _mm512_reduce_add_epi32(s);
  (void)sink;
  return static_cast<double>(iters) * 24 * 64 * 2;
}

}  // namespace avx512

void register_gemm_avx512(KernelTable& t) {
  avx512::g_fallback = t.gemm;  // the level below: used only when W is not packed
  t.gemm_pack_size = avx512::gemm_packed_size<avx512::kNR>;
  t.gemm_pack = avx512::gemm_pack<avx512::kNR>;
  t.gemm = avx512::gemm;
  t.gemm_pack_nr = avx512::kNR;
  t.wino_pack_size = avx512::wino_packed_size<avx512::kNR>;
  t.wino_pack = avx512::wino_pack<avx512::kNR>;
}

}  // namespace pyvitcpp
