// How fast one core streams a conv's weights from memory while it computes with them
// (docs/PERFORMANCE.md, "Weight streaming, GEMM blocking and Winograd for layer 4"). The loop of
// the direct conv on ResNet-50's layer-4 3x3 convs at batch 1: weight panels of K = 4608 rows x
// 32 floats (590 KB, the packed layout of kernels/gemm_driver.h), each used by T tiles of 10 rows
// (49 output pixels are 5 tiles), 128 panels (75 MB, more than this VM keeps in cache between
// passes). Prefetch modes for the next panel, while the current one is used:
//   0  none (the hardware prefetchers only)
//   1  a burst of prefetcht1 over this tile's share of the next panel before each tile
//   2  prefetcht0 4 KiB ahead in the current panel, one per k step
//   3  one prefetcht1 of the next panel every second k step inside the loop (wrapping over the
//      tile's share)
//   4  one prefetcht1 of the next panel every k step inside the loop until the tile's share is
//      fetched
// Prints GFLOP/s and the weight bytes per second, per pass (timestamp counter taken as the
// nominal clock: pass TSC_GHZ=... for another one).
//   g++ -O3 -mavx512f -mfma -o /tmp/wsprobe scripts/probes/weight_stream_probe.cpp
//   for m in 0 1 2 3 4; do /tmp/wsprobe 5 $m; done
#include <immintrin.h>
#include <x86intrin.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

constexpr int kRows = 10;
constexpr int64_t kK = 4608, kPanels = 128, kNR = 32;
constexpr int64_t kPanelBytes = kK * kNR * 4;

// One tile: kRows x 32 outputs over K, X k-major (kRows of 12 per k as the GEMM packs it).
__attribute__((noinline)) void tile(const float* x, const float* w, float* out, int mode, const char* pf,
                                    int64_t pf_bytes) {
  __m512 c[kRows][2];
  for (int i = 0; i < kRows; ++i) c[i][0] = c[i][1] = _mm512_setzero_ps();
  int64_t pfo = 0;
  for (int64_t k = 0; k < kK; ++k) {
    const __m512 b0 = _mm512_loadu_ps(w + k * kNR), b1 = _mm512_loadu_ps(w + k * kNR + 16);
    if (mode == 2) _mm_prefetch(reinterpret_cast<const char*>(w + k * kNR) + 4096, _MM_HINT_T0);
    if (mode == 3 && (k & 1) == 0) {
      _mm_prefetch(pf + pfo, _MM_HINT_T1);
      pfo += 64;
      if (pfo >= pf_bytes) pfo = 0;
    }
    if (mode == 4 && pfo < pf_bytes) {
      _mm_prefetch(pf + pfo, _MM_HINT_T1);
      pfo += 64;
    }
    for (int i = 0; i < kRows; ++i) {
      const __m512 v = _mm512_set1_ps(x[k * 12 + i]);
      c[i][0] = _mm512_fmadd_ps(v, b0, c[i][0]);
      c[i][1] = _mm512_fmadd_ps(v, b1, c[i][1]);
    }
  }
  for (int i = 0; i < kRows; ++i) {
    _mm512_storeu_ps(out + i * kNR, c[i][0]);
    _mm512_storeu_ps(out + i * kNR + 16, c[i][1]);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s TILES_PER_PANEL MODE(0-4)\n", argv[0]);
    return 2;
  }
  const int tiles = std::max(1, std::atoi(argv[1]));
  const int mode = std::atoi(argv[2]);
  const char* ghz_env = std::getenv("TSC_GHZ");
  const double ghz = ghz_env ? std::atof(ghz_env) : 2.6;
  float* w = static_cast<float*>(std::aligned_alloc(64, kPanels * kPanelBytes));
  if (!w) return 1;
  for (int64_t i = 0; i < kPanels * kPanelBytes / 4; ++i) w[i] = 1e-3f * static_cast<float>(i % 7);
  std::vector<float> x(kK * 12, 0.5f), out(16 * kRows * kNR);
  const int64_t share = (kPanelBytes / tiles + 63) / 64 * 64;  // a tile's part of the next panel
  for (int pass = 0; pass < 3; ++pass) {
    const uint64_t t0 = __rdtsc();
    for (int64_t p = 0; p < kPanels; ++p) {
      const float* panel = w + p * kPanelBytes / 4;
      const char* next = reinterpret_cast<const char*>(w + ((p + 1) % kPanels) * kPanelBytes / 4);
      for (int t = 0; t < tiles; ++t) {
        const int64_t b0 = std::min<int64_t>(kPanelBytes, t * share), b1 = std::min<int64_t>(kPanelBytes, b0 + share);
        if (mode == 1)
          for (int64_t o = b0; o < b1; o += 64) _mm_prefetch(next + o, _MM_HINT_T1);
        tile(x.data(), panel, out.data() + (t % 16) * kRows * kNR, mode, next + b0, b1 - b0);
      }
    }
    const double sec = static_cast<double>(__rdtsc() - t0) / (ghz * 1e9);
    const double flops = 2.0 * kRows * kNR * kK * tiles * kPanels;
    std::printf("tiles %d mode %d pass %d: %.1f GFLOP/s, weights %.2f GB/s\n", tiles, mode, pass, flops / sec / 1e9,
                static_cast<double>(kPanels * kPanelBytes) / sec / 1e9);
  }
  std::printf("checksum %g\n", static_cast<double>(out[3]));
  std::free(w);
  return 0;
}
