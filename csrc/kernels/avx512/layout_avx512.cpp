// Layout and elementwise kernels at the avx512 level: the shared body (kernels/layout_body.h)
// compiled with this level's flags.
#include <cstdint>
#include <cstring>

#include "kernels/kernels.h"
#include "kernels/simd_act.h"

namespace pyvitcpp {
namespace avx512 {
namespace {

#include "kernels/split_range.h"  // split(): this thread's share of n items
#include "kernels/layout_body.h"

}  // namespace
}  // namespace avx512

void register_layout_avx512(KernelTable& t) {
  t.copy_strided = avx512::copy_strided;
  t.pad = avx512::pad;
  t.roll = avx512::roll;
  t.eltwise = avx512::eltwise;
  t.mean = avx512::mean;
}

}  // namespace pyvitcpp
