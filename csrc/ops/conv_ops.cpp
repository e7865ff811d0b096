#include "ops/conv_ops.h"

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

ConvGather conv_geometry(const Node& n, const float* X) {
  ConvGather g;
  g.X = X;
  g.B = n.B;
  g.C = n.C;
  g.c0 = n.c0;
  g.cg = n.cg;
  g.h = n.ch;
  g.w = n.cw;
  return g;
}

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

void nhwc_to_nchw(const float* X, int64_t B, int64_t HW, int64_t C, float* Y, int ith, int nth) {
  // Work items are (image, 8-channel strip): each reads whole NHWC rows' cache lines once.
  const int64_t strips = (C + 7) / 8;
  int64_t r0, r1;
  split(B * strips, ith, nth, &r0, &r1);
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t b = r / strips, c0 = (r % strips) * 8, c1 = c0 + 8 < C ? c0 + 8 : C;
    const float* xb = X + b * HW * C;
    float* yb = Y + b * C * HW;
    for (int64_t p = 0; p < HW; ++p)
      for (int64_t c = c0; c < c1; ++c) yb[c * HW + p] = xb[p * C + c];
  }
}

void exec_cnn_op(const KernelTable& kt, const Node& n, const float* x, const TensorDesc& xd, float* y,
                 const TensorDesc& yd, int ith, int nth) {
  switch (n.op) {
    case OpType::Im2col:
      im2col(conv_geometry(n, x), n.nchw, y, ith, nth);
      break;
    case OpType::DwConv: {
      DwConv2dArgs a;
      a.B = n.B;
      a.C = n.C;
      a.h = n.ch;
      a.w = n.cw;
      a.X = x;
      a.Wt = n.dw_w;
      a.bias = n.dw_b;
      a.act = n.act;
      a.Y = y;
      kt.dwconv2d(a, ith, nth);
      break;
    }
    case OpType::Pool2d: {
      Pool2dArgs a;
      a.B = n.B;
      a.C = n.C;
      a.h = n.ch;
      a.w = n.cw;
      a.kind = n.pool_kind;
      a.count_include_pad = n.count_include_pad;
      a.X = x;
      a.Y = y;
      kt.pool2d(a, ith, nth);
      break;
    }
    case OpType::GlobalAvgPool:
      kt.global_avgpool(x, n.B, xd.rows / n.B, xd.cols, y, ith, nth);
      break;
    case OpType::Activation:
      kt.activation(x, y, xd.rows * xd.cols, n.act, ith, nth);
      break;
    case OpType::ToNCHW:
      nhwc_to_nchw(x, n.B, xd.rows / n.B, xd.cols, y, ith, nth);
      break;
    default:
      throw std::logic_error("exec_cnn_op: not a CNN op");
  }
  (void)yd;
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
