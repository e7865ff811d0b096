// quant kernels at the avx512 level (none yet: the level below's entries stay in the table).
#include "kernels/kernels.h"

namespace pyvitcpp {

void register_quant_avx512(KernelTable& t) { (void)t; }

}  // namespace pyvitcpp
