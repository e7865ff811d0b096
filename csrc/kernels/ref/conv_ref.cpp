// Reference conv and pooling kernels: the specification the SIMD twins and the im2col + GEMM
// convolution are tested against. Straight loops, fp32 accumulation in tap order (ky, kx, c).
#include <cmath>
#include <limits>

#include "kernels/conv.h"
#include "kernels/kernels.h"
#include "kernels/ref/act_ref.h"

namespace pyvitcpp {
namespace ref {

namespace {

#include "kernels/split_range.h"  // split(): this thread's share of n items

void dwconv2d(const DwConv2dArgs& a, int ith, int nth) {
  const int64_t C = a.C;
  int64_t r0, r1;
  split(a.B * a.h.out, ith, nth, &r0, &r1);
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t b = r / a.h.out, oy = r % a.h.out;
    for (int64_t ox = 0; ox < a.w.out; ++ox) {
      float* y = a.Y + ((b * a.h.out + oy) * a.w.out + ox) * C;
      for (int64_t c = 0; c < C; ++c) {
        float acc = a.bias ? a.bias[c] : 0.0f;
        for (int64_t ky = 0; ky < a.h.k; ++ky) {
          const int64_t iy = oy * a.h.stride - a.h.pad0 + ky * a.h.dil;
          if (iy < 0 || iy >= a.h.in) continue;
          for (int64_t kx = 0; kx < a.w.k; ++kx) {
            const int64_t ix = ox * a.w.stride - a.w.pad0 + kx * a.w.dil;
            if (ix < 0 || ix >= a.w.in) continue;
            acc += a.X[((b * a.h.in + iy) * a.w.in + ix) * C + c] * a.Wt[(ky * a.w.k + kx) * C + c];
          }
        }
        y[c] = act_scalar(acc, a.act);
      }
    }
  }
}

void pool2d(const Pool2dArgs& a, int ith, int nth) {
  const int64_t C = a.C;
  int64_t r0, r1;
  split(a.B * a.h.out, ith, nth, &r0, &r1);
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t b = r / a.h.out, oy = r % a.h.out;
    for (int64_t ox = 0; ox < a.w.out; ++ox) {
      float* y = a.Y + ((b * a.h.out + oy) * a.w.out + ox) * C;
      for (int64_t c = 0; c < C; ++c) {
        float acc = a.kind == PoolKind::Max ? -std::numeric_limits<float>::infinity() : 0.0f;
        int64_t count = 0;
        for (int64_t ky = 0; ky < a.h.k; ++ky) {
          const int64_t iy = oy * a.h.stride - a.h.pad0 + ky * a.h.dil;
          if (iy < 0 || iy >= a.h.in) continue;
          for (int64_t kx = 0; kx < a.w.k; ++kx) {
            const int64_t ix = ox * a.w.stride - a.w.pad0 + kx * a.w.dil;
            if (ix < 0 || ix >= a.w.in) continue;
            const float v = a.X[((b * a.h.in + iy) * a.w.in + ix) * C + c];
            if (a.kind == PoolKind::Max) acc = (v > acc || std::isnan(v)) ? v : acc;  // NaN propagates
            else acc += v;
            ++count;
          }
        }
        if (a.kind == PoolKind::Avg) {
          const int64_t div = a.count_include_pad ? a.h.k * a.w.k : count;
          acc = div > 0 ? acc / static_cast<float>(div) : 0.0f;
        }
        y[c] = acc;
      }
    }
  }
}

}  // namespace

void conv2d_direct(const Conv2dRefArgs& a, int ith, int nth) {
  const int64_t Cg = a.C / a.groups, OCg = a.OC / a.groups;
  int64_t r0, r1;
  split(a.B * a.h.out, ith, nth, &r0, &r1);
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t b = r / a.h.out, oy = r % a.h.out;
    for (int64_t ox = 0; ox < a.w.out; ++ox) {
      const int64_t row = (b * a.h.out + oy) * a.w.out + ox;
      for (int64_t oc = 0; oc < a.OC; ++oc) {
        const int64_t g = oc / OCg;
        float acc = 0.0f;
        for (int64_t ky = 0; ky < a.h.k; ++ky) {
          const int64_t iy = oy * a.h.stride - a.h.pad0 + ky * a.h.dil;
          if (iy < 0 || iy >= a.h.in) continue;
          for (int64_t kx = 0; kx < a.w.k; ++kx) {
            const int64_t ix = ox * a.w.stride - a.w.pad0 + kx * a.w.dil;
            if (ix < 0 || ix >= a.w.in) continue;
            for (int64_t c = 0; c < Cg; ++c) {
              const int64_t ci = g * Cg + c;
              const float x = a.nchw_input ? a.X[((b * a.C + ci) * a.h.in + iy) * a.w.in + ix]
                                           : a.X[((b * a.h.in + iy) * a.w.in + ix) * a.C + ci];
              acc += x * a.W[((oc * Cg + c) * a.h.k + ky) * a.w.k + kx];
            }
          }
        }
        if (a.bias) acc += a.bias[oc];
        acc = act_scalar(acc, a.act);
        if (a.residual) acc += a.residual[row * a.OC + oc];
        a.Y[row * a.OC + oc] = a.relu_out ? act_scalar(acc, Act::Relu) : acc;
      }
    }
  }
}

}  // namespace ref

void register_conv_ref(KernelTable& t) {
  t.dwconv2d = ref::dwconv2d;
  t.pool2d = ref::pool2d;
}

}  // namespace pyvitcpp
