#include "ops/token_ops.h"

#include <cstring>

namespace pyvitcpp {

namespace {
#include "kernels/split_range.h"  // split(): this thread's share of n items
}  // namespace

void patchify(const float* px, int64_t B, int64_t C, int64_t H, int64_t W, int64_t p, float* out,
              int ith, int nth) {
  const int64_t gh = H / p, gw = W / p, cols = C * p * p;
  int64_t r0, r1;
  split(B * gh * gw, ith, nth, &r0, &r1);
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t gx = r % gw, gy = (r / gw) % gh, b = r / (gw * gh);
    float* o = out + r * cols;
    for (int64_t c = 0; c < C; ++c)
      for (int64_t ky = 0; ky < p; ++ky) {
        const float* src = px + ((b * C + c) * H + gy * p + ky) * W + gx * p;
        std::memcpy(o + (c * p + ky) * p, src, sizeof(float) * p);
      }
  }
}

void embed_tokens(const float* patches, const float* cls, const float* dist, const float* pos,
                  int64_t B, int64_t n_patches, int64_t n_prefix, int64_t D, float* out, int ith, int nth) {
  const int64_t T = n_prefix + n_patches;
  int64_t r0, r1;
  split(B * T, ith, nth, &r0, &r1);
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t t = r % T, b = r / T;
    const float* src;
    if (t < n_prefix) src = (t == 0 && cls) ? cls : dist;
    else src = patches + (b * n_patches + (t - n_prefix)) * D;
    float* o = out + r * D;
    if (pos) {
      const float* pp = pos + t * D;
      for (int64_t d = 0; d < D; ++d) o[d] = src[d] + pp[d];
    } else {
      std::memcpy(o, src, sizeof(float) * D);
    }
  }
}

void token_pool(const float* x, int64_t B, int64_t T, int64_t D, int mode, int64_t t0, int64_t t1,
                float* out, int ith, int nth) {
  // Split over (image, feature chunk) so small batches still use every thread.
  const int64_t chunk = 64, n_chunks = (D + chunk - 1) / chunk;
  int64_t w0, w1;
  split(B * n_chunks, ith, nth, &w0, &w1);
  for (int64_t w = w0; w < w1; ++w) {
    const int64_t b = w / n_chunks, d0 = (w % n_chunks) * chunk;
    const int64_t d1 = d0 + chunk < D ? d0 + chunk : D;
    const float* xb = x + b * T * D;
    float* o = out + b * D;
    if (mode == 0) {
      for (int64_t d = d0; d < d1; ++d) o[d] = xb[t0 * D + d];
    } else if (mode == 1) {
      for (int64_t d = d0; d < d1; ++d) o[d] = (xb[t0 * D + d] + xb[t1 * D + d]) * 0.5f;
    } else {
      for (int64_t d = d0; d < d1; ++d) o[d] = 0.0f;
      for (int64_t t = t0; t < t1; ++t)
        for (int64_t d = d0; d < d1; ++d) o[d] += xb[t * D + d];
      const float inv = 1.0f / static_cast<float>(t1 - t0);
      for (int64_t d = d0; d < d1; ++d) o[d] *= inv;
    }
  }
}

void add_scaled(const float* a, const float* b, float alpha, float* y, int64_t n, int ith, int nth) {
  int64_t i0, i1;
  split(n, ith, nth, &i0, &i1);
  for (int64_t i = i0; i < i1; ++i) y[i] = alpha * (a[i] + b[i]);
}

}  // namespace pyvitcpp

namespace pyvitcpp {
void scale_residual(const float* residual, const float* t, const float* scale, float* y, int64_t rows, int64_t cols,
                    int ith, int nth) {
  const int64_t r0 = rows * ith / nth, r1 = rows * (ith + 1) / nth;
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t c = 0; c < cols; ++c) y[r * cols + c] = residual[r * cols + c] + scale[c] * t[r * cols + c];
}
}  // namespace pyvitcpp
