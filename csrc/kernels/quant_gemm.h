// Block-quantized Linear: Y[M,N] = act(X[M,K] . W[N,K]^T + bias) + residual, W in Q8_0, Q4_0,
// Q4_1, Q5_0 or Q5_1 (ggml rows of K, see core/blocks.h). Every level computes the same
// integer math (the ref twin in kernels/ref/quant_ref.cpp is the specification):
//
//   Activations are quantized on the fly, per row and block of 32: dx = amax / Q, q = rint(x / dx)
//   (to nearest even; f32 scale, not rounded to F16 as ggml's Q8_0 activations are), S = sum q.
//   Q = KernelTable::qgemm_act_qmax(type): 127, except Q8_0 at the avx2 level, Q = 64. Without
//   VNNI the products go through vpmaddubsw (u8 x s8, pair sums saturate at 2^15): with the
//   Q8_0 codes offset to u8 (0..255), 255 * 64 * 2 < 2^15 leaves each step one vpmaddubsw +
//   one vpmaddwd, where 8-bit activations need the sign trick (vpsignb + vpabsb on the same
//   two Zen 3 pipes): measured in isolation 43-45 against 59-66 cycles per 2x16x32 block
//   (per_cycle kernel probe, best of repeated runs on a shared Zen 3), and on a ViT-B GEMM the
//   kernel reaches about 1.5x the F32 GEMM's flop per cycle. The price is one bit of
//   activation precision for Q8_0 on AVX2-only CPUs (the accuracy figures per level are in
//   README's quantization table).
//   Weight block: w = dw (u - z) + mw, u the stored code (Q8_0 int8 z=0, packed as u = c + 128
//   with z = 128; Q4_0 nibble z=8; Q5_0 5 bits z=16; Q4_1/Q5_1 z=0 with offset mw).
//   Per output and block: isum = sum_i (u_i - z) q_i (exact int32), then in f32
//   acc += float(isum) * (dw * dx)      [+ acc += mw * (dx * float(S)) for the _1 types]
//   over blocks in order; then y = act(acc + bias) + residual.
//
// The SIMD levels differ from ref only by fused multiply-adds in the f32 accumulation (<= 1
// rounding per block). Against the exact product with the dequantized weights, the error is
// the activation rounding: |sum_i w_i (x_i - dx q_i)| <= sum_blocks dx/2 * sum_i |w_i|.
//
// Packed layout (shared by the avx2 and avx512 levels; ref computes from the raw blocks):
// panels of 16 output columns (the last zero-padded), per panel the K/32 blocks in order, each
//   codes:  byte types (Q8_0 code + 128 as u8, Q5_x 0..31): 8 steps x 64 bytes, byte s*64 + c*4 + j holds
//           column c's code for k = 32b + 4s + j;
//           nibble types (Q4_x): 4 steps x 64 bytes, low nibble k = 32b + 4s + j, high nibble
//           k = 32b + 16 + 4s + j (the same split as ggml's qs);
//   dw[16]  f32 scales; mw[16] f32 offsets (Q4_1, Q5_1 only).
// Q8_0 packs to 1.125 bytes per weight (raw 1.0625), Q5_x to 1.125 (raw 0.69/0.75: the high
// bits are spread once at load instead of per use), Q4_x to 0.625/0.75 (raw 0.56/0.63).
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace pyvitcpp {

constexpr int64_t kQPanel = 16;

inline bool qpack_nibbles(DType t) { return t == DType::Q4_0 || t == DType::Q4_1; }
inline bool qpack_has_m(DType t) { return t == DType::Q4_1 || t == DType::Q5_1; }
// Zero point z of the packed codes (w = dw (u - z) + mw): Q8_0 is packed as c + 128.
inline int qpack_zero_point(DType t) {
  return t == DType::Q8_0 ? 128 : t == DType::Q4_0 ? 8 : t == DType::Q5_0 ? 16 : 0;
}
inline int64_t qpack_code_bytes(DType t) { return qpack_nibbles(t) ? 256 : 512; }
inline int64_t qpack_block_bytes(DType t) { return qpack_code_bytes(t) + 64 + (qpack_has_m(t) ? 64 : 0); }
inline int64_t qpack_panel_bytes(DType t, int64_t K) { return (K / 32) * qpack_block_bytes(t); }

// qgemm_act_qmax of the levels that quantize every type's activations to |q| <= 127.
inline int qgemm_act_qmax_full(DType) { return 127; }

// Generic (ISA-free) packers registered by the avx2 and avx512 levels (quant/qpack.cpp).
size_t qgemm_pack_size_generic(DType wtype, int64_t N, int64_t K);
void qgemm_pack_generic(const void* W_raw, DType wtype, int64_t N, int64_t K, void* dst);

}  // namespace pyvitcpp
