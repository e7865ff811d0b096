// Layout and elementwise kernels at the avx2 level: the shared body (kernels/layout_body.h)
// compiled with this level's flags.
#include <cstdint>
#include <cstring>

#include "kernels/kernels.h"
#include "kernels/simd_act.h"

namespace pyvitcpp {
namespace avx2 {
namespace {

#include "kernels/split_range.h"  // split(): this thread's share of n items
#include "kernels/layout_body.h"

}  // namespace
}  // namespace avx2

void register_layout_avx2(KernelTable& t) {
  t.copy_strided = avx2::copy_strided;
  t.pad = avx2::pad;
  t.roll = avx2::roll;
  t.eltwise = avx2::eltwise;
  t.mean = avx2::mean;
}

}  // namespace pyvitcpp
