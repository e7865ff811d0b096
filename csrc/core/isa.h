// The kernel levels, named once for the ground layer (cpu feature detection) and the kernels
// above it. isa_name is defined in core/cpu.cpp.
#pragma once

namespace pyvitcpp {

enum class Isa : int { Ref = 0, Avx2 = 1, Avx512 = 2 };
const char* isa_name(Isa isa);

}  // namespace pyvitcpp
