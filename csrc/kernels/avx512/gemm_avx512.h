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
// Runs `iters` rounds of 24 independent vpdpbusd (VNNI u8 x s8 -> s32, 64 products each) in
// registers; returns the int8 ops done (multiply-add = 2, as a GEMM's 2MNK counts them). The
// int8 peak the avx512 block-quantized GEMM is judged by.
double gemm_int8_probe(int64_t iters);
}  // namespace avx512
}  // namespace pyvitcpp
