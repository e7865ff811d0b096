// Extra entry points of the avx512 GEMM TU (beyond the KernelTable registration).
// Only call these after isa_supported(Isa::Avx512).
#pragma once
#include <cstdint>

namespace pyvitcpp {
namespace avx512 {
// Register tile of the microkernel: MR rows of X by NR outputs (one packed W panel).
constexpr int kGemmMR = 12;
constexpr int kGemmNR = 32;
// Runs `iters` rounds of 24 independent 16-wide FMAs in registers (no memory traffic);
// returns the flops done. Used to measure this core's FMA peak at the avx512 vector width.
double gemm_fma_probe(int64_t iters);
}  // namespace avx512
}  // namespace pyvitcpp
