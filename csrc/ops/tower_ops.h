// Memory-bound ops of the vision towers (CLIP / SigLIP / DINOv2), one portable implementation
// each (threading as in kernels/kernels.h).
#pragma once
#include <cstdint>

namespace pyvitcpp {

// out[b] = [prefix tokens (n_prefix rows of `prefix`), patch tokens of image b], plus position
// rows: pos row r is added to prefix token r for r < n_pos_prefix, and pos rows n_pos_prefix..
// to the patch tokens (prefix tokens from n_pos_prefix on get none: DINOv2 registers). pos may
// be null.
void embed_prefixed(const float* patches, const float* prefix, const float* pos, int64_t B, int64_t n_patches,
                    int64_t n_prefix, int64_t n_pos_prefix, int64_t D, float* out, int ith, int nth);

// x [rows, 2F] -> out [rows, F]: silu(x[:, :F]) * x[:, F:] (SwiGLU with the gate first).
void swiglu(const float* x, int64_t rows, int64_t F, float* out, int ith, int nth);

// Per image of x [B, T, D]: out [B, t1 - t0, D] = x[:, t0:t1].
void token_slice(const float* x, int64_t B, int64_t T, int64_t D, int64_t t0, int64_t t1, float* out, int ith,
                 int nth);

// Per image of x [B, T, D] with tokens t0 .. t0 + gh*gw on a gh x gw grid:
// out [B, D, gh, gw] (channels first, as a conv feature map).
void feature_map(const float* x, int64_t B, int64_t T, int64_t D, int64_t t0, int64_t gh, int64_t gw, float* out,
                 int ith, int nth);

}  // namespace pyvitcpp
