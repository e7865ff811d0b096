// AVX-512 (F/BW/DQ/VL) conv and pooling kernels (NHWC: channels are the vector lanes): the
// shared body kernels/conv_body.h (depthwise conv with 4-pixel blocking, max/avg pooling) over
// this level's vector traits (vec_avx512.h). Specification: kernels/ref/conv_ref.cpp. Compiled
// with the avx512 flags only; everything except the registration hook has internal linkage.
#include <immintrin.h>

#include <cstdint>
#include <limits>

#include "kernels/avx512/vec_avx512.h"
#include "kernels/kernels.h"
#include "kernels/simd_act.h"

namespace pyvitcpp {
namespace avx512 {
namespace {

#include "kernels/split_range.h"  // split(): this thread's share of n items
#include "kernels/conv_body.h"

}  // namespace
}  // namespace avx512

void register_conv_avx512(KernelTable& t) {
  t.dwconv2d = avx512::dwconv2d;
  t.pool2d = avx512::pool2d;
}

}  // namespace pyvitcpp
