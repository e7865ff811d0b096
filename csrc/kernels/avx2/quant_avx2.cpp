// quant kernels at the avx2 level (none yet: the level below's entries stay in the table).
#include "kernels/kernels.h"

namespace pyvitcpp {

void register_quant_avx2(KernelTable& t) { (void)t; }

}  // namespace pyvitcpp
