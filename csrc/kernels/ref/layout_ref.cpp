// Layout and elementwise kernels at the ref level: the shared body (kernels/layout_body.h)
// compiled with this level's flags.
#include <cstdint>
#include <cstring>

#include "kernels/kernels.h"
#include "kernels/simd_act.h"

namespace pyvitcpp {
namespace ref {
namespace {

#include "kernels/split_range.h"  // split(): this thread's share of n items
#include "kernels/layout_body.h"

}  // namespace
}  // namespace ref

void register_layout_ref(KernelTable& t) {
  t.copy_strided = ref::copy_strided;
  t.pad = ref::pad;
  t.roll = ref::roll;
  t.eltwise = ref::eltwise;
  t.mean = ref::mean;
}

}  // namespace pyvitcpp
