// Repacks ggml block rows into the column-panel layout of kernels/quant_gemm.h.
#include <cstring>

#include "core/blocks.h"
#include "core/fp16.h"
#include "kernels/quant_gemm.h"

namespace pyvitcpp {

namespace {

// Codes u (0..31; Q8_0: its int8 code + 128, the unsigned operand of vpmaddubsw / vpdpbusd
// with zero point 128), scale and offset of one block.
void block_codes(DType t, const uint8_t* blk, uint8_t* u, float* d, float* m) {
  *m = 0.0f;
  auto nib = [](const uint8_t* qs, int i) { return static_cast<uint8_t>(i < 16 ? (qs[i] & 15) : (qs[i - 16] >> 4)); };
  switch (t) {
    case DType::Q8_0: {
      const auto* b = reinterpret_cast<const block_q8_0*>(blk);
      *d = fp16_to_fp32(b->d);
      for (int i = 0; i < 32; ++i) u[i] = static_cast<uint8_t>(static_cast<uint8_t>(b->qs[i]) ^ 0x80u);
      break;
    }
    case DType::Q4_0: {
      const auto* b = reinterpret_cast<const block_q4_0*>(blk);
      *d = fp16_to_fp32(b->d);
      for (int i = 0; i < 32; ++i) u[i] = nib(b->qs, i);
      break;
    }
    case DType::Q4_1: {
      const auto* b = reinterpret_cast<const block_q4_1*>(blk);
      *d = fp16_to_fp32(b->d);
      *m = fp16_to_fp32(b->m);
      for (int i = 0; i < 32; ++i) u[i] = nib(b->qs, i);
      break;
    }
    case DType::Q5_0: {
      const auto* b = reinterpret_cast<const block_q5_0*>(blk);
      *d = fp16_to_fp32(b->d);
      for (int i = 0; i < 32; ++i) u[i] = static_cast<uint8_t>(nib(b->qs, i) | (((b->qh[i / 8] >> (i % 8)) & 1) << 4));
      break;
    }
    case DType::Q5_1: {
      const auto* b = reinterpret_cast<const block_q5_1*>(blk);
      *d = fp16_to_fp32(b->d);
      *m = fp16_to_fp32(b->m);
      for (int i = 0; i < 32; ++i) u[i] = static_cast<uint8_t>(nib(b->qs, i) | (((b->qh[i / 8] >> (i % 8)) & 1) << 4));
      break;
    }
    default: break;
  }
}

}  // namespace

size_t qgemm_pack_size_generic(DType wtype, int64_t N, int64_t K) {
  if (!is_block_quant(wtype) || K % 32 != 0) return 0;
  const int64_t panels = (N + kQPanel - 1) / kQPanel;
  return static_cast<size_t>(panels * qpack_panel_bytes(wtype, K));
}

void qgemm_pack_generic(const void* W_raw, DType wtype, int64_t N, int64_t K, void* dst) {
  const int64_t nb = K / 32, panels = (N + kQPanel - 1) / kQPanel;
  const size_t bs = dtype_traits(wtype).type_size;
  const int64_t BB = qpack_block_bytes(wtype), CB = qpack_code_bytes(wtype);
  const bool nibbles = qpack_nibbles(wtype), has_m = qpack_has_m(wtype);
  uint8_t* out = static_cast<uint8_t*>(dst);
  std::memset(out, 0, qgemm_pack_size_generic(wtype, N, K));
  const uint8_t* raw = static_cast<const uint8_t*>(W_raw);
  uint8_t u[32];
  for (int64_t p = 0; p < panels; ++p) {
    for (int64_t c = 0; c < kQPanel; ++c) {
      const int64_t n = p * kQPanel + c;
      if (n >= N) break;
      for (int64_t b = 0; b < nb; ++b) {
        float d = 0.0f, m = 0.0f;
        block_codes(wtype, raw + (n * nb + b) * bs, u, &d, &m);
        uint8_t* blk = out + (p * nb + b) * BB;
        if (nibbles) {
          for (int s = 0; s < 4; ++s)
            for (int j = 0; j < 4; ++j)
              blk[s * 64 + c * 4 + j] = static_cast<uint8_t>(u[4 * s + j] | (u[16 + 4 * s + j] << 4));
        } else {
          for (int s = 0; s < 8; ++s)
            for (int j = 0; j < 4; ++j) blk[s * 64 + c * 4 + j] = u[4 * s + j];
        }
        std::memcpy(blk + CB + 4 * c, &d, 4);
        if (has_m) std::memcpy(blk + CB + 64 + 4 * c, &m, 4);
      }
    }
  }
}

}  // namespace pyvitcpp
