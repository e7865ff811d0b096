// AVX2+FMA conv and pooling kernels (NHWC: channels are the vector lanes): the shared body
// kernels/conv_body.h (depthwise conv with 4-pixel blocking, max/avg pooling) over this level's
// vector traits (vec_avx2.h). Specification: kernels/ref/conv_ref.cpp. Compiled with
// -mavx2 -mfma -mf16c only; everything except the registration hook has internal linkage.
#include <immintrin.h>

#include <cstdint>
#include <limits>

#include "kernels/avx2/vec_avx2.h"
#include "kernels/kernels.h"
#include "kernels/simd_act.h"

namespace pyvitcpp {
namespace avx2 {
namespace {

#include "kernels/split_range.h"  // split(): this thread's share of n items
#include "kernels/conv_body.h"

}  // namespace
}  // namespace avx2

void register_conv_avx2(KernelTable& t) {
  t.dwconv2d = avx2::dwconv2d;
  t.pool2d = avx2::pool2d;
}

}  // namespace pyvitcpp
