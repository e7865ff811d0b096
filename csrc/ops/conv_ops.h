// CNN graph ops over NHWC activations ([B, H, W, C] stored as rows B*H*W, cols C): the
// memory movers (im2col, NCHW output transpose) and the dispatch of the conv/pool kernels.
#pragma once
#include <cstdint>

#include "core/graph.h"
#include "kernels/conv.h"

namespace pyvitcpp {

// The conv geometry of a CNN node (B, C, channel slice, axes) over its input X.
ConvGather conv_geometry(const Node& n, const float* X);

// The im2col matrix of g (kernels.h, ConvGather), written out: Y [B*OH*OW, KH*KW*cg]. g.X is
// NHWC, or NCHW (pixels) when nchw.
void im2col(const ConvGather& g, bool nchw, float* Y, int ith, int nth);

// [B*HW, C] -> [B, C, HW].
void nhwc_to_nchw(const float* X, int64_t B, int64_t HW, int64_t C, float* Y, int ith, int nth);

// Runs one of the CNN OpTypes (Im2col, DwConv, Pool2d, GlobalAvgPool, Activation, ToNCHW).
void exec_cnn_op(const KernelTable& kt, const Node& n, const float* x, const TensorDesc& xd, float* y,
                 const TensorDesc& yd, int ith, int nth);

}  // namespace pyvitcpp

namespace pyvitcpp {
// PyTorch conv weight [OC, Cg, KH, KW] (F32 or F16 elements) -> [OC, KH, KW, Cg] in the same type,
// the column order im2col produces; dst holds OC*KH*KW*Cg elements of that type.
void permute_conv_weight_khwc(const void* src, DType type, int64_t OC, int64_t Cg, int64_t KH, int64_t KW, void* dst);
// PyTorch depthwise weight [C, 1, KH, KW] -> tap-major F32 [KH*KW, C] (F16 widened).
void depthwise_weight_taps(const void* src, DType type, int64_t C, int64_t KH, int64_t KW, float* dst);
}  // namespace pyvitcpp
