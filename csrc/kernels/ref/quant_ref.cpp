// quant kernels at the ref level (none yet: the level below's entries stay in the table).
#include "kernels/kernels.h"

namespace pyvitcpp {

void register_quant_ref(KernelTable& t) { (void)t; }

}  // namespace pyvitcpp
