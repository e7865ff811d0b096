#include "ops/tower_ops.h"

#include <cmath>
#include <cstring>

namespace pyvitcpp {

namespace {
#include "kernels/split_range.h"  // split(): this thread's share of n items
}  // namespace

void embed_prefixed(const float* patches, const float* prefix, const float* pos, int64_t B, int64_t n_patches,
                    int64_t n_prefix, int64_t n_pos_prefix, int64_t D, float* out, int ith, int nth) {
  const int64_t T = n_prefix + n_patches;
  int64_t r0, r1;
  split(B * T, ith, nth, &r0, &r1);
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t t = r % T, b = r / T;
    const float* src = t < n_prefix ? prefix + t * D : patches + (b * n_patches + (t - n_prefix)) * D;
    const float* pp = nullptr;
    if (pos) {
      if (t < n_prefix) pp = t < n_pos_prefix ? pos + t * D : nullptr;
      else pp = pos + (n_pos_prefix + t - n_prefix) * D;
    }
    float* o = out + r * D;
    if (pp)
      for (int64_t d = 0; d < D; ++d) o[d] = src[d] + pp[d];
    else
      std::memcpy(o, src, sizeof(float) * D);
  }
}

void swiglu(const float* x, int64_t rows, int64_t F, float* out, int ith, int nth) {
  int64_t r0, r1;
  split(rows, ith, nth, &r0, &r1);
  for (int64_t r = r0; r < r1; ++r) {
    const float* g = x + r * 2 * F;
    const float* u = g + F;
    float* o = out + r * F;
    for (int64_t i = 0; i < F; ++i) o[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
  }
}

void token_slice(const float* x, int64_t B, int64_t T, int64_t D, int64_t t0, int64_t t1, float* out, int ith,
                 int nth) {
  const int64_t n = t1 - t0;
  int64_t r0, r1;
  split(B * n, ith, nth, &r0, &r1);
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t b = r / n, t = r % n;
    std::memcpy(out + r * D, x + (b * T + t0 + t) * D, sizeof(float) * D);
  }
}

void feature_map(const float* x, int64_t B, int64_t T, int64_t D, int64_t t0, int64_t gh, int64_t gw, float* out,
                 int ith, int nth) {
  const int64_t N = gh * gw;
  int64_t r0, r1;
  split(B * D, ith, nth, &r0, &r1);
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t b = r / D, d = r % D;
    const float* src = x + (b * T + t0) * D + d;
    float* o = out + r * N;
    for (int64_t i = 0; i < N; ++i) o[i] = src[i * D];
  }
}

}  // namespace pyvitcpp
