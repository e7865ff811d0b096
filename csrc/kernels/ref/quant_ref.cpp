// Scalar reference of the block-quantized GEMM (the specification in kernels/quant_gemm.h),
// computed straight from ggml's raw blocks.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/blocks.h"
#include "core/fp16.h"
#include "kernels/kernels.h"
#include "kernels/quant_gemm.h"
#include "kernels/ref/act_ref.h"

namespace pyvitcpp {
namespace ref {
namespace {

size_t qgemm_pack_size_none(DType, int64_t, int64_t) { return 0; }
void qgemm_pack_none(const void*, DType, int64_t, int64_t, void*) {}

// Activation row -> int8 codes (|q| <= qmax), f32 scale and code sum per block of 32.
void quantize_act_row(const float* x, int64_t K, float qmax, int8_t* q, float* d, int32_t* S) {
  for (int64_t b = 0; b < K / 32; ++b) {
    const float* xb = x + 32 * b;
    float amax = 0.0f;
    bool finite = true;
    for (int i = 0; i < 32; ++i) {
      amax = std::max(amax, std::fabs(xb[i]));
      finite = finite && std::isfinite(xb[i]);
    }
    // A NaN or Inf in the block makes its scale NaN (codes 0): every output it feeds is NaN.
    const float db = finite ? amax / qmax : std::nanf("");
    const float id = finite && db != 0.0f ? 1.0f / db : 0.0f;
    int32_t s = 0;
    for (int i = 0; i < 32; ++i) {
      const int v = finite ? static_cast<int>(std::nearbyint(xb[i] * id)) : 0;
      q[32 * b + i] = static_cast<int8_t>(v);
      s += v;
    }
    d[b] = db;
    S[b] = s;
  }
}

// Weight block codes (u - z as int), scale and offset.
void weight_block(DType t, const uint8_t* blk, int* w, float* d, float* m) {
  *m = 0.0f;
  auto nib = [](const uint8_t* qs, int i) { return i < 16 ? (qs[i] & 15) : (qs[i - 16] >> 4); };
  switch (t) {
    case DType::Q8_0: {
      const auto* b = reinterpret_cast<const block_q8_0*>(blk);
      *d = fp16_to_fp32(b->d);
      for (int i = 0; i < 32; ++i) w[i] = b->qs[i];
      break;
    }
    case DType::Q4_0: {
      const auto* b = reinterpret_cast<const block_q4_0*>(blk);
      *d = fp16_to_fp32(b->d);
      for (int i = 0; i < 32; ++i) w[i] = nib(b->qs, i) - 8;
      break;
    }
    case DType::Q4_1: {
      const auto* b = reinterpret_cast<const block_q4_1*>(blk);
      *d = fp16_to_fp32(b->d);
      *m = fp16_to_fp32(b->m);
      for (int i = 0; i < 32; ++i) w[i] = nib(b->qs, i);
      break;
    }
    case DType::Q5_0: {
      const auto* b = reinterpret_cast<const block_q5_0*>(blk);
      *d = fp16_to_fp32(b->d);
      for (int i = 0; i < 32; ++i) w[i] = (nib(b->qs, i) | (((b->qh[i / 8] >> (i % 8)) & 1) << 4)) - 16;
      break;
    }
    case DType::Q5_1: {
      const auto* b = reinterpret_cast<const block_q5_1*>(blk);
      *d = fp16_to_fp32(b->d);
      *m = fp16_to_fp32(b->m);
      for (int i = 0; i < 32; ++i) w[i] = nib(b->qs, i) | (((b->qh[i / 8] >> (i % 8)) & 1) << 4);
      break;
    }
    default: break;
  }
}

void qgemm_ref(const GemmArgs& a, int ith, int nth) {
  const int64_t nb = a.K / 32;
  const size_t bs = dtype_traits(a.wtype).type_size;
  const bool has_m = qpack_has_m(a.wtype);
  const uint8_t* W = static_cast<const uint8_t*>(a.W_raw);
  const int64_t m0 = a.M * ith / nth, m1 = a.M * (ith + 1) / nth;
  const float qmax = static_cast<float>(a.act_qmax >= 1 && a.act_qmax <= 127 ? a.act_qmax : 127);
  std::vector<int8_t> q(static_cast<size_t>(a.K));
  std::vector<float> dx(static_cast<size_t>(nb)), row(static_cast<size_t>(a.N));
  std::vector<int32_t> S(static_cast<size_t>(nb));
  int w[32];
  for (int64_t m = m0; m < m1; ++m) {
    quantize_act_row(a.X + m * a.ldx, a.K, qmax, q.data(), dx.data(), S.data());
    for (int64_t n = 0; n < a.N; ++n) {
      float acc = 0.0f;
      for (int64_t b = 0; b < nb; ++b) {
        float dw, mw;
        weight_block(a.wtype, W + (n * nb + b) * bs, w, &dw, &mw);
        int32_t isum = 0;
        for (int i = 0; i < 32; ++i) isum += w[i] * q[32 * b + i];
        acc = acc + static_cast<float>(isum) * (dw * dx[b]);
        if (has_m) acc = acc + mw * (dx[b] * static_cast<float>(S[b]));
      }
      float v = acc + (a.bias ? a.bias[n] : 0.0f);
      row[n] = act_scalar(v, a.act);
    }
    for (int64_t n = 0; n < a.N; ++n) {
      const float v = row[n] + (a.residual ? a.residual[m * a.ldr + n] : 0.0f);
      a.Y[m * a.ldy + n] = a.relu_out ? act_scalar(v, Act::Relu) : v;
    }
  }
}

}  // namespace
}  // namespace ref

void register_quant_ref(KernelTable& t) {
  t.qgemm_pack_size = ref::qgemm_pack_size_none;
  t.qgemm_pack = ref::qgemm_pack_none;
  t.qgemm = ref::qgemm_ref;
  t.qgemm_act_qmax = qgemm_act_qmax_full;
}

}  // namespace pyvitcpp
