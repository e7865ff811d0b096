// What Q8_0's per-block scales cost the avx2 quantized GEMM (docs/PERFORMANCE.md, "Quantized
// GEMM on AVX2 without VNNI"). The microkernel of kernels/avx2/quant_avx2.cpp (2 rows x 16
// columns, u8 codes x 7-bit activations: vpmaddubsw + vpmaddwd + vpaddd per step) run two ways
// over K = 768 with the data in L1:
//   blocks:    Q8_0 math, each block of 32 ends in int -> float, scale dw*dx, FMA (our kernel);
//   per-tensor: the same steps with one int32 sum over the whole K, as ONNX Runtime's dynamic
//               int8 (one scale per matrix) can do.
// Reports multiply-add flop per user cycle of one thread (perf_event_open), best of 300
// short windows, so that time lost to other tenants of a shared core mostly drops out.
//   g++ -O3 -mavx2 -mfma -Icsrc -o /tmp/q8probe scripts/probes/q8_epilogue_probe.cpp && /tmp/q8probe
#include <immintrin.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/cycles.h"

namespace {

constexpr int64_t kBlockBytes = 512 + 64;  // codes of 16 columns x 32 k, then 16 f32 scales

inline __m256i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

template <bool kBlocks>
__attribute__((noinline)) void kernel(int64_t nb, const int8_t* xq, int64_t ldq, const float* xd, const int32_t* xzs,
                                      const uint8_t* wp, float* out) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 f[2][2];
  __m256i acc[2][2];
  for (int r = 0; r < 2; ++r)
    for (int h = 0; h < 2; ++h) {
      f[r][h] = _mm256_setzero_ps();
      acc[r][h] = _mm256_setzero_si256();
    }
  for (int64_t b = 0; b < nb; ++b) {
    if (kBlocks)
      for (int r = 0; r < 2; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
    const int8_t* xb = xq + 32 * b;
#pragma GCC unroll 2
    for (int s = 0; s < 8; ++s) {
      const __m256i x0 = bcast4(xb + 4 * s), x1 = bcast4(xb + ldq + 4 * s);
      for (int h = 0; h < 2; ++h) {
        const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp + s * 64 + 32 * h));
        acc[0][h] = _mm256_add_epi32(acc[0][h], _mm256_madd_epi16(_mm256_maddubs_epi16(w, x0), ones));
        acc[1][h] = _mm256_add_epi32(acc[1][h], _mm256_madd_epi16(_mm256_maddubs_epi16(w, x1), ones));
      }
    }
    if (kBlocks) {
      for (int r = 0; r < 2; ++r) {
        const __m256 dx = _mm256_set1_ps(xd[r * nb + b]);
        const __m256i zs = _mm256_set1_epi32(xzs[r * nb + b]);
        for (int h = 0; h < 2; ++h) {
          const __m256 dw = _mm256_loadu_ps(reinterpret_cast<const float*>(wp + 512) + 8 * h);
          const __m256 v = _mm256_cvtepi32_ps(_mm256_sub_epi32(acc[r][h], zs));
          f[r][h] = _mm256_fmadd_ps(v, _mm256_mul_ps(dw, dx), f[r][h]);
        }
      }
    }
    wp += kBlockBytes;
  }
  for (int r = 0; r < 2; ++r)
    for (int h = 0; h < 2; ++h)
      _mm256_storeu_ps(out + r * 16 + 8 * h, kBlocks ? f[r][h] : _mm256_cvtepi32_ps(acc[r][h]));
}

}  // namespace

int main() {
  const int64_t K = 768, nb = K / 32, M = 64;
  std::vector<int8_t> xq(M * K);
  for (auto& v : xq) v = static_cast<int8_t>(std::rand() % 129 - 64);
  std::vector<float> xd(M * nb, 0.01f);
  std::vector<int32_t> xzs(M * nb, 5);
  // Every byte in [0x20, 0x60): the scales read as normal floats (denormals would add assists).
  std::vector<uint8_t> w(nb * kBlockBytes);
  for (auto& v : w) v = static_cast<uint8_t>(0x20 + std::rand() % 64);
  float out[32];
  const pyvitcpp::CycleCounter cc;
  if (cc.read() < 0) {
    std::fprintf(stderr, "no cycle counter (perf_event_open failed)\n");
    return 1;
  }
  using Fn = void (*)(int64_t, const int8_t*, int64_t, const float*, const int32_t*, const uint8_t*, float*);
  const Fn fns[2] = {kernel<true>, kernel<false>};
  const char* names[2] = {"Q8_0 blocks (our kernel)", "per-tensor int32 (no block epilogue)"};
  double best[2] = {1e30, 1e30};
  for (int t = 0; t < 300; ++t)
    for (int v = 0; v < 2; ++v) {
      const double c0 = cc.read();
      for (int it = 0; it < 4; ++it)
        for (int64_t r = 0; r + 2 <= M; r += 2)
          fns[v](nb, xq.data() + r * K, K, xd.data() + r * nb, xzs.data() + r * nb, w.data(), out);
      const double c = cc.read() - c0;
      const double flop = 2.0 * 2 * 16 * K * (M / 2) * 4;
      if (c / flop < best[v]) best[v] = c / flop;
    }
  for (int v = 0; v < 2; ++v) std::printf("%-38s %5.1f flop/cycle\n", names[v], 1.0 / best[v]);
  return 0;
}
