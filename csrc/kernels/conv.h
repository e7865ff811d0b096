// Convolution helpers shared by the conv kernels, the conv ops and the test hooks.
// NHWC throughout: a [B, H, W, C] activation is the graph's 2-D [B*H*W, C] buffer.
#pragma once
#include <cstdint>

#include "kernels/kernels.h"

namespace pyvitcpp {

// Output size of an axis with explicit padding (PyTorch Conv2d/MaxPool2d semantics, floor mode).
inline int64_t conv_out_size(int64_t in, int64_t k, int64_t stride, int64_t dil, int64_t pad_total) {
  return (in + pad_total - dil * (k - 1) - 1) / stride + 1;
}

// Symmetric padding p on both sides.
inline ConvAxis conv_axis_sym(int64_t in, int64_t k, int64_t stride, int64_t dil, int64_t pad) {
  ConvAxis a;
  a.in = in; a.k = k; a.stride = stride; a.dil = dil; a.pad0 = pad;
  a.out = conv_out_size(in, k, stride, dil, 2 * pad);
  return a;
}

// TF "SAME": out = ceil(in / s); total padding max((out-1)s + (k-1)d + 1 - in, 0), the smaller
// half first (timm's pad_same / get_same_padding).
inline ConvAxis conv_axis_same(int64_t in, int64_t k, int64_t stride, int64_t dil) {
  ConvAxis a;
  a.in = in; a.k = k; a.stride = stride; a.dil = dil;
  a.out = (in + stride - 1) / stride;
  int64_t total = (a.out - 1) * stride + (k - 1) * dil + 1 - in;
  if (total < 0) total = 0;
  a.pad0 = total / 2;
  return a;
}

// The general convolution's specification (scalar, direct): PyTorch Conv2d weight layout
// [OC, C/groups, KH, KW]; input NHWC, or NCHW pixels when nchw_input; output NHWC.
// Y = act(conv + bias) + residual (the Linear epilogue's order); residual may be null.
struct Conv2dRefArgs {
  int64_t B = 0, C = 0, OC = 0, groups = 1;
  ConvAxis h, w;
  bool nchw_input = false;
  const float* X = nullptr;
  const float* W = nullptr;
  const float* bias = nullptr;
  Act act = Act::None;
  const float* residual = nullptr;
  bool relu_out = false;  // max(Y, 0) after the residual (GemmArgs::relu_out)
  float* Y = nullptr;
};

namespace ref {
void conv2d_direct(const Conv2dRefArgs& a, int ith, int nth);
}

}  // namespace pyvitcpp
