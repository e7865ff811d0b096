// conv kernels at the ref level (none yet: the level below's entries stay in the table).
#include "kernels/kernels.h"

namespace pyvitcpp {

void register_conv_ref(KernelTable& t) { (void)t; }

}  // namespace pyvitcpp
