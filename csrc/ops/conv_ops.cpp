#include "ops/conv_ops.h"
#include "ops/executors.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace pyvitcpp {

namespace {
#include "kernels/split_range.h"  // split(): this thread's share of n items
}  // namespace

namespace {

// NCHW pixels (the stem, a few channels). Column j = (ky, kx, c) of output pixel ox reads
// X[src[j] + ox * stride] when ox is in [lo[j], hi[j]) and is 0 (padding) otherwise; the
// bounds are worked out once per output row, and the ox range where every column is inside the
// image is copied without tests. The output is written in order (a 7x7 stem on 3 channels
// tested bounds per tap at ~18 cycles each).
struct NchwCols {
  std::vector<int64_t> src, lo, hi;
};

void im2col_nchw_row(const ConvGather& g, int64_t b, int64_t oy, int64_t K, float* Yrow, NchwCols& t) {
  const float* X = g.X;
  const int64_t C = g.C, c0 = g.c0, cg = g.cg;
  const ConvAxis &h = g.h, &w = g.w;
  t.src.resize(static_cast<size_t>(K));
  t.lo.resize(static_cast<size_t>(K));
  t.hi.resize(static_cast<size_t>(K));
  const int64_t s = w.stride;
  int64_t all_lo = 0, all_hi = w.out;
  for (int64_t ky = 0, j = 0; ky < h.k; ++ky) {
    const int64_t iy = oy * h.stride - h.pad0 + ky * h.dil;
    const bool row_in = iy >= 0 && iy < h.in;
    for (int64_t kx = 0; kx < w.k; ++kx) {
      const int64_t off = kx * w.dil - w.pad0;  // ix = ox * s + off
      int64_t lo = off >= 0 ? 0 : (-off + s - 1) / s;
      int64_t hi = w.in - off <= 0 ? 0 : (w.in - off + s - 1) / s;
      if (!row_in) lo = hi = 0;
      lo = std::min(lo, w.out);
      hi = std::max(lo, std::min(hi, w.out));
      all_lo = std::max(all_lo, lo);
      all_hi = std::min(all_hi, hi);
      for (int64_t c = 0; c < cg; ++c, ++j) {
        t.src[j] = ((b * C + c0 + c) * h.in + (row_in ? iy : 0)) * w.in + off;
        t.lo[j] = lo;
        t.hi[j] = hi;
      }
    }
  }
  if (all_hi < all_lo) all_hi = all_lo;
  const int64_t* src = t.src.data();
  for (int64_t ox = 0; ox < w.out; ++ox) {
    float* y = Yrow + ox * K;
    const int64_t o = ox * s;
    if (ox >= all_lo && ox < all_hi) {
      const float* xo = X + o;
      int64_t j = 0;
      for (; j + 4 <= K; j += 4) {
        const float v0 = xo[src[j]], v1 = xo[src[j + 1]], v2 = xo[src[j + 2]], v3 = xo[src[j + 3]];
        y[j] = v0; y[j + 1] = v1; y[j + 2] = v2; y[j + 3] = v3;
      }
      for (; j < K; ++j) y[j] = xo[src[j]];
    } else {
      for (int64_t j = 0; j < K; ++j) y[j] = ox >= t.lo[j] && ox < t.hi[j] ? X[src[j] + o] : 0.0f;
    }
  }
}

}  // namespace

void im2col(const ConvGather& g, bool nchw, float* Y, int ith, int nth) {
  const ConvAxis &h = g.h, &w = g.w;
  const int64_t K = h.k * w.k * g.cg;
  int64_t r0, r1;
  split(g.B * h.out, ith, nth, &r0, &r1);
  if (nchw) {
    NchwCols cols;
    for (int64_t r = r0; r < r1; ++r) im2col_nchw_row(g, r / h.out, r % h.out, K, Y + r * w.out * K, cols);
    return;
  }
  for (int64_t r = r0 * w.out; r < r1 * w.out; ++r) conv_gather_row(g, r, 0, K, Y + r * K);
}

void exec_im2col(const OpCtx& c, int ith, int nth) {
  const Im2colOp& p = c.n.as<Im2colOp>();
  im2col(conv_gather(p.conv, c.x[0]), p.nchw, c.y, ith, nth);
}

void exec_dwconv(const OpCtx& c, int ith, int nth) {
  const DwConvOp& p = c.n.as<DwConvOp>();
  DwConv2dArgs a;
  a.B = p.conv.B;
  a.C = p.conv.C;
  a.h = p.conv.h;
  a.w = p.conv.w;
  a.X = c.x[0];
  a.Wt = p.taps;
  a.bias = p.bias;
  a.act = p.act;
  a.Y = c.y;
  c.kt.dwconv2d(a, ith, nth);
}

void exec_pool2d(const OpCtx& c, int ith, int nth) {
  const Pool2dOp& p = c.n.as<Pool2dOp>();
  Pool2dArgs a;
  a.B = p.conv.B;
  a.C = p.conv.C;
  a.h = p.conv.h;
  a.w = p.conv.w;
  a.kind = p.kind;
  a.count_include_pad = p.count_include_pad;
  a.X = c.x[0];
  a.Y = c.y;
  c.kt.pool2d(a, ith, nth);
}

}  // namespace pyvitcpp

#include "core/fp16.h"

namespace pyvitcpp {

namespace {
template <class T>
void permute_khwc(const T* s, int64_t OC, int64_t Cg, int64_t KH, int64_t KW, T* d) {
  const int64_t taps = KH * KW;
  for (int64_t o = 0; o < OC; ++o, s += Cg * taps, d += Cg * taps)
    for (int64_t c = 0; c < Cg; ++c)
      for (int64_t t = 0; t < taps; ++t) d[t * Cg + c] = s[c * taps + t];
}
}  // namespace

void permute_conv_weight_khwc(const void* src, DType type, int64_t OC, int64_t Cg, int64_t KH, int64_t KW, void* dst) {
  if (type == DType::F32)
    permute_khwc(static_cast<const float*>(src), OC, Cg, KH, KW, static_cast<float*>(dst));
  else
    permute_khwc(static_cast<const uint16_t*>(src), OC, Cg, KH, KW, static_cast<uint16_t*>(dst));
}

void depthwise_weight_taps(const void* src, DType type, int64_t C, int64_t KH, int64_t KW, float* dst) {
  for (int64_t c = 0; c < C; ++c)
    for (int64_t t = 0; t < KH * KW; ++t) {
      const int64_t i = c * KH * KW + t;
      float v;
      if (type == DType::F32) std::memcpy(&v, static_cast<const char*>(src) + 4 * i, 4);
      else v = fp16_to_fp32(static_cast<const uint16_t*>(src)[i]);
      dst[t * C + c] = v;
    }
}

}  // namespace pyvitcpp
