// CNN graph ops over NHWC activations ([B, H, W, C] stored as rows B*H*W, cols C): the
// memory movers (im2col, NCHW output transpose) and the dispatch of the conv/pool kernels.
#pragma once
#include <cstdint>

#include "kernels/conv.h"

namespace pyvitcpp {

// The im2col matrix of g (kernels.h, ConvGather), written out: Y [B*OH*OW, KH*KW*cg]. g.X is
// NHWC, or NCHW (pixels) when nchw.
void im2col(const ConvGather& g, bool nchw, float* Y, int ith, int nth);


}  // namespace pyvitcpp

namespace pyvitcpp {
// PyTorch conv weight [OC, Cg, KH, KW] (F32 or F16 elements) -> [OC, KH, KW, Cg] in the same type,
// the column order im2col produces; dst holds OC*KH*KW*Cg elements of that type.
void permute_conv_weight_khwc(const void* src, DType type, int64_t OC, int64_t Cg, int64_t KH, int64_t KW, void* dst);
// PyTorch depthwise weight [C, 1, KH, KW] -> tap-major F32 [KH*KW, C] (F16 widened).
void depthwise_weight_taps(const void* src, DType type, int64_t C, int64_t KH, int64_t KW, float* dst);
}  // namespace pyvitcpp
