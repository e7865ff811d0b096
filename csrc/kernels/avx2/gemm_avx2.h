// Extra entry points of the avx2 GEMM TU (beyond the KernelTable registration).
// Only call these after isa_supported(Isa::Avx2).
#pragma once
#include <cstdint>

namespace pyvitcpp {
namespace avx2 {
// Register tile of the microkernel: MR rows of X by NR outputs (one packed W panel).
constexpr int kGemmMR = 6;
constexpr int kGemmNR = 16;
// Runs `iters` rounds of 12 independent 8-wide FMAs in registers (no memory traffic);
// returns the flops done. Used to measure this core's FMA peak at the avx2 vector width.
double gemm_fma_probe(int64_t iters);
// Runs `iters` rounds of 12 independent vpmaddubsw (u8 x s8, 32 products each) in registers;
// returns the int8 ops done (multiply-add = 2): the int8 peak of the avx2 block-quantized
// GEMM's product instruction (no VNNI at this level).
double gemm_int8_probe(int64_t iters);
}  // namespace avx2
}  // namespace pyvitcpp
