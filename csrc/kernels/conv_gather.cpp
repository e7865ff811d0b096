// The im2col matrix of a convolution, one row piece at a time (kernels.h, ConvGather): shared by
// the Im2col op (ops/conv_ops.cpp) and every level's GEMM, which gathers X from the feature map
// as it packs it when GemmArgs::conv is set. ISA-neutral (baseline flags); one memcpy or memset
// per tap, so its cost per element falls as the channel count grows.
#include <algorithm>
#include <cstring>

#include "kernels/kernels.h"

namespace pyvitcpp {

void conv_gather_row(const ConvGather& g, int64_t r, int64_t k0, int64_t n, float* dst) {
  const int64_t ox = r % g.w.out, q = r / g.w.out, oy = q % g.h.out, b = q / g.h.out;
  const int64_t iy0 = oy * g.h.stride - g.h.pad0, ix0 = ox * g.w.stride - g.w.pad0;
  if (g.nchw) {  // one element per column (NCHW pixels: the few-channel stem, the ref level)
    for (int64_t k = k0; k < k0 + n; ++k) {
      const int64_t tap = k / g.cg, c = k - tap * g.cg;
      const int64_t iy = iy0 + (tap / g.w.k) * g.h.dil, ix = ix0 + (tap % g.w.k) * g.w.dil;
      dst[k - k0] = iy < 0 || iy >= g.h.in || ix < 0 || ix >= g.w.in
                        ? 0.0f
                        : g.X[((b * g.C + g.c0 + c) * g.h.in + iy) * g.w.in + ix];
    }
    return;
  }
  for (int64_t k = k0, end = k0 + n; k < end;) {
    const int64_t tap = k / g.cg, c = k - tap * g.cg, len = std::min(g.cg - c, end - k);
    const int64_t iy = iy0 + (tap / g.w.k) * g.h.dil, ix = ix0 + (tap % g.w.k) * g.w.dil;
    float* d = dst + (k - k0);
    if (iy < 0 || iy >= g.h.in || ix < 0 || ix >= g.w.in)
      std::memset(d, 0, sizeof(float) * static_cast<size_t>(len));
    else
      std::memcpy(d, g.X + ((b * g.h.in + iy) * g.w.in + ix) * g.C + g.c0 + c, sizeof(float) * static_cast<size_t>(len));
    k += len;
  }
}

void cat_gather_row(const CatGather& g, int64_t r, int64_t k0, int64_t n, float* dst) {
  const int64_t end = k0 + n;
  for (int i = 0; i < g.n && k0 < end; ++i) {
    if (g.k[i + 1] <= k0) continue;
    const int64_t len = std::min(end, g.k[i + 1]) - k0;
    std::memcpy(dst, g.X[i] + r * g.ld[i] + (k0 - g.k[i]), sizeof(float) * static_cast<size_t>(len));
    dst += len;
    k0 += len;
  }
}

void gemm_gather_row(const GemmArgs& a, int64_t r, int64_t k0, int64_t n, float* dst) {
  if (a.conv) conv_gather_row(*a.conv, r, k0, n, dst);
  else cat_gather_row(*a.cat, r, k0, n, dst);
}

}  // namespace pyvitcpp
