// Test-only harness (tests/test_kernels_quant.py::test_avx512_kernel_under_simde): runs the avx512
// quantized GEMM, compiled against SIMDe's portable AVX-512 emulation, against the ref twin at
// awkward sizes, every type, thread splits, bias, GELU, residual and a NaN row. Exit status 0 = agree.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>
#include "kernels/kernels.h"
#include "kernels/ref/act_ref.h"
#include "quant/quantize.h"
namespace pyvitcpp { namespace avx512 { void act_inplace(float* y, int64_t n, Act act) { for (int64_t i = 0; i < n; ++i) y[i] = ref::act_scalar(y[i], act); } } }
using namespace pyvitcpp;
int main() {
  KernelTable r, v;
  register_quant_ref(r);
  register_quant_avx512(v);
  std::mt19937 g(1);
  std::normal_distribution<float> nd;
  DType types[] = {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1};
  int sizes[][3] = {{1, 1, 32}, {3, 17, 64}, {4, 32, 32}, {5, 33, 96}, {13, 47, 800}, {37, 16, 64}, {2, 97, 96}, {9, 70, 96}};
  int fails = 0, checks = 0;
  double worst = 0;
  for (auto t : types) for (auto& s : sizes) for (int nth : {1, 3}) for (int act : {0, 1}) {
    int M = s[0], N = s[1], K = s[2];
    std::vector<float> X(M * K), W(N * K), bias(N), res(M * N), y0(M * N), y1(M * N);
    for (auto& x : X) x = nd(g);
    for (int i = 0; i < M * K; i += 7) X[i] *= 4;
    if (M > 3) { X[0] = NAN; }  // row 0 NaN
    for (auto& x : W) x = 0.05f * nd(g);
    for (auto& x : bias) x = nd(g);
    for (auto& x : res) x = nd(g);
    size_t rb; row_bytes((uint32_t)t, K, &rb);
    std::vector<uint8_t> Wq(rb * N);
    quantize_rows(t, W.data(), N, K, Wq.data(), 1);
    std::vector<uint8_t> packed(v.qgemm_pack_size(t, N, K) + 64);
    v.qgemm_pack(Wq.data(), t, N, K, packed.data());
    GemmArgs a; a.M = M; a.N = N; a.K = K; a.X = X.data(); a.ldx = K; a.W_raw = Wq.data(); a.wtype = t;
    a.bias = bias.data(); a.act = (Act)act; a.residual = res.data(); a.ldr = N; a.ldy = N;
    a.Y = y0.data(); a.W_packed = nullptr;
    for (int i = 0; i < nth; ++i) r.qgemm(a, i, nth);
    a.Y = y1.data(); a.W_packed = packed.data();
    for (int i = 0; i < nth; ++i) v.qgemm(a, i, nth);
    for (int i = 0; i < M * N; ++i) {
      ++checks;
      bool both_nan = std::isnan(y0[i]) && std::isnan(y1[i]);
      double e = std::fabs((double)y0[i] - y1[i]) / (1e-3 + std::fabs(y0[i]));
      if (!both_nan && !(e < 1e-4)) { if (fails < 10) printf("FAIL type %d M%d N%d K%d nth%d act%d i%d: %g vs %g\n", (int)t, M, N, K, nth, act, i, y0[i], y1[i]); ++fails; }
      else if (!both_nan) worst = std::max(worst, e);
    }
  }
  printf("%d checks, %d fails, worst rel err %.3g\n", checks, fails, worst);
  return fails != 0;
}
