// Memory-bound ops with one portable implementation each (no SIMD twin needed: they move
// data, the compiler vectorises the inner loops). Threading as in kernels/kernels.h.
#pragma once
#include <cstdint>

namespace pyvitcpp {

// pixels [B, C, H, W] -> rows (b, gy, gx), columns (c, ky, kx): the conv weight's flattening,
// so patch embedding is this followed by a GEMM with the [D, C*p*p] weight.
void patchify(const float* px, int64_t B, int64_t C, int64_t H, int64_t W, int64_t p, float* out,
              int ith, int nth);

// out[b, t] = token_t + pos[t] where token_0 = cls (if any), token_1 = dist (if any), then the
// patch tokens of image b. pos may be null.
void embed_tokens(const float* patches, const float* cls, const float* dist, const float* pos,
                  int64_t B, int64_t n_patches, int64_t n_prefix, int64_t D, float* out, int ith, int nth);

// Per image b of x [B, T, D]: out[b] = x[b, t0] (Token), (x[b, t0] + x[b, t1]) / 2 (MeanOfTwo),
// or the mean of x[b, t0:t1] (MeanRange). mode is a PoolMode value.
void token_pool(const float* x, int64_t B, int64_t T, int64_t D, int mode, int64_t t0, int64_t t1,
                float* out, int ith, int nth);

// y = alpha * (a + b) over n elements.
void add_scaled(const float* a, const float* b, float alpha, float* y, int64_t n, int ith, int nth);

}  // namespace pyvitcpp

namespace pyvitcpp {
// y = residual + scale[col] * t over rows x cols (layer scale on a residual branch).
void scale_residual(const float* residual, const float* t, const float* scale, float* y, int64_t rows, int64_t cols,
                    int ith, int nth);
}  // namespace pyvitcpp
