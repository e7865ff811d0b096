#include "quant/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

#include "core/fp16.h"

namespace pyvitcpp {

namespace {

// gguf-py's np_roundf (and C's roundf): half away from zero.
inline float round_away(float v) { return std::round(v); }

// The 4/5-bit types: argmax(|x|) takes the first index of the largest magnitude (numpy's rule).
inline float signed_absmax(const float* x) {
  float amax = 0.0f, max = 0.0f;
  for (int i = 0; i < kQK; ++i) {
    const float a = std::fabs(x[i]);
    if (a > amax) { amax = a; max = x[i]; }
  }
  return max;
}

inline void min_max(const float* x, float* mn, float* mx) {
  float lo = x[0], hi = x[0];
  for (int i = 1; i < kQK; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  *mn = lo;
  *mx = hi;
}

// float -> uint8 the way `np.trunc(v).astype(np.uint8).clip(0, top)` does for v in [0, 256).
inline uint8_t trunc_clip(float v, int top) {
  int q = static_cast<int>(v);  // v >= 0 here: truncation
  return static_cast<uint8_t>(std::min(q, top));
}

// Every arithmetic step below is one float32 operation, as numpy does it; this file is compiled
// without FMA, so the compiler cannot fuse x * id + 8.5f into one rounding.
void quant_q8_0(const float* x, block_q8_0* b) {
  float amax = 0.0f;
  for (int i = 0; i < kQK; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  b->d = fp32_to_fp16(d);
  for (int i = 0; i < kQK; ++i) b->qs[i] = static_cast<int8_t>(round_away(x[i] * id));
}

void quant_q4_0(const float* x, block_q4_0* b) {
  const float max = signed_absmax(x);
  const float d = max / -8.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  b->d = fp32_to_fp16(d);
  for (int i = 0; i < 16; ++i) {
    const uint8_t lo = trunc_clip(x[i] * id + 8.5f, 15);
    const uint8_t hi = trunc_clip(x[i + 16] * id + 8.5f, 15);
    b->qs[i] = static_cast<uint8_t>(lo | (hi << 4));
  }
}

void quant_q4_1(const float* x, block_q4_1* b) {
  float mn, mx;
  min_max(x, &mn, &mx);
  const float d = (mx - mn) / 15.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  b->d = fp32_to_fp16(d);
  b->m = fp32_to_fp16(mn);
  for (int i = 0; i < 16; ++i) {
    const uint8_t lo = trunc_clip((x[i] - mn) * id + 0.5f, 15);
    const uint8_t hi = trunc_clip((x[i + 16] - mn) * id + 0.5f, 15);
    b->qs[i] = static_cast<uint8_t>(lo | (hi << 4));
  }
}

void pack5(const uint8_t* q, uint8_t* qh, uint8_t* qs) {
  uint32_t h = 0;
  for (int i = 0; i < kQK; ++i) h |= static_cast<uint32_t>((q[i] >> 4) & 1u) << i;
  for (int i = 0; i < 4; ++i) qh[i] = static_cast<uint8_t>(h >> (8 * i));
  for (int i = 0; i < 16; ++i) qs[i] = static_cast<uint8_t>((q[i] & 15) | ((q[i + 16] & 15) << 4));
}

void quant_q5_0(const float* x, block_q5_0* b) {
  const float max = signed_absmax(x);
  const float d = max / -16.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  b->d = fp32_to_fp16(d);
  uint8_t q[kQK];
  for (int i = 0; i < kQK; ++i) q[i] = trunc_clip(x[i] * id + 16.5f, 31);
  pack5(q, b->qh, b->qs);
}

void quant_q5_1(const float* x, block_q5_1* b) {
  float mn, mx;
  min_max(x, &mn, &mx);
  const float d = (mx - mn) / 31.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  b->d = fp32_to_fp16(d);
  b->m = fp32_to_fp16(mn);
  uint8_t q[kQK];
  for (int i = 0; i < kQK; ++i) q[i] = trunc_clip((x[i] - mn) * id + 0.5f, 31);
  pack5(q, b->qh, b->qs);
}

inline int nib(const uint8_t* qs, int i) { return i < 16 ? (qs[i] & 15) : (qs[i - 16] >> 4); }
inline int hbit(const uint8_t* qh, int i) { return (qh[i / 8] >> (i % 8)) & 1; }

template <typename F>
void parallel_rows(int64_t rows, int nthreads, F&& f) {
  if (nthreads <= 0) nthreads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  nthreads = static_cast<int>(std::min<int64_t>(nthreads, std::max<int64_t>(1, rows / 16)));
  if (nthreads <= 1) {
    f(0, rows);
    return;
  }
  std::vector<std::thread> ts;
  ts.reserve(static_cast<size_t>(nthreads));
  for (int t = 0; t < nthreads; ++t) {
    const int64_t r0 = rows * t / nthreads, r1 = rows * (t + 1) / nthreads;
    try {
      ts.emplace_back([&f, r0, r1] { f(r0, r1); });
    } catch (const std::system_error&) {
      f(r0, r1);  // no thread to be had (too many, address space): this share runs here
    }
  }
  for (auto& th : ts) th.join();
}

void check_n(DType t, int64_t n) {
  if (!is_block_quant(t)) throw std::invalid_argument("not a block-quantized type: " + dtype_name(static_cast<uint32_t>(t)));
  if (n % kQK != 0)
    throw std::invalid_argument("row length " + std::to_string(n) + " is not a multiple of the block size 32 of " +
                                dtype_name(static_cast<uint32_t>(t)));
}

}  // namespace

void quantize_row(DType t, const float* x, int64_t n, void* dst) {
  check_n(t, n);
  const int64_t nb = n / kQK;
  for (int64_t b = 0; b < nb; ++b) {
    const float* xb = x + b * kQK;
    switch (t) {
      case DType::Q8_0: quant_q8_0(xb, static_cast<block_q8_0*>(dst) + b); break;
      case DType::Q4_0: quant_q4_0(xb, static_cast<block_q4_0*>(dst) + b); break;
      case DType::Q4_1: quant_q4_1(xb, static_cast<block_q4_1*>(dst) + b); break;
      case DType::Q5_0: quant_q5_0(xb, static_cast<block_q5_0*>(dst) + b); break;
      case DType::Q5_1: quant_q5_1(xb, static_cast<block_q5_1*>(dst) + b); break;
      default: break;
    }
  }
}

void dequantize_row(DType t, const void* src, int64_t n, float* y) {
  check_n(t, n);
  const int64_t nb = n / kQK;
  for (int64_t b = 0; b < nb; ++b) {
    float* yb = y + b * kQK;
    switch (t) {
      case DType::Q8_0: {
        const block_q8_0& q = static_cast<const block_q8_0*>(src)[b];
        const float d = fp16_to_fp32(q.d);
        for (int i = 0; i < kQK; ++i) yb[i] = static_cast<float>(q.qs[i]) * d;
        break;
      }
      case DType::Q4_0: {
        const block_q4_0& q = static_cast<const block_q4_0*>(src)[b];
        const float d = fp16_to_fp32(q.d);
        for (int i = 0; i < kQK; ++i) yb[i] = d * static_cast<float>(nib(q.qs, i) - 8);
        break;
      }
      case DType::Q4_1: {
        const block_q4_1& q = static_cast<const block_q4_1*>(src)[b];
        const float d = fp16_to_fp32(q.d), m = fp16_to_fp32(q.m);
        for (int i = 0; i < kQK; ++i) yb[i] = d * static_cast<float>(nib(q.qs, i)) + m;
        break;
      }
      case DType::Q5_0: {
        const block_q5_0& q = static_cast<const block_q5_0*>(src)[b];
        const float d = fp16_to_fp32(q.d);
        for (int i = 0; i < kQK; ++i) yb[i] = d * static_cast<float>((nib(q.qs, i) | (hbit(q.qh, i) << 4)) - 16);
        break;
      }
      case DType::Q5_1: {
        const block_q5_1& q = static_cast<const block_q5_1*>(src)[b];
        const float d = fp16_to_fp32(q.d), m = fp16_to_fp32(q.m);
        for (int i = 0; i < kQK; ++i) yb[i] = d * static_cast<float>(nib(q.qs, i) | (hbit(q.qh, i) << 4)) + m;
        break;
      }
      default: break;
    }
  }
}

void quantize_rows(DType t, const float* x, int64_t rows, int64_t n, void* dst, int nthreads) {
  check_n(t, n);
  size_t rb = 0;
  row_bytes(static_cast<uint32_t>(t), n, &rb);
  parallel_rows(rows, nthreads, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) quantize_row(t, x + r * n, n, static_cast<uint8_t*>(dst) + r * rb);
  });
}

void dequantize_rows(DType t, const void* src, int64_t rows, int64_t n, float* y, int nthreads) {
  check_n(t, n);
  size_t rb = 0;
  row_bytes(static_cast<uint32_t>(t), n, &rb);
  parallel_rows(rows, nthreads, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) dequantize_row(t, static_cast<const uint8_t*>(src) + r * rb, n, y + r * n);
  });
}

DType parse_quant_type(const std::string& name) {
  std::string s = name;
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (s == "q8_0") return DType::Q8_0;
  if (s == "q4_0") return DType::Q4_0;
  if (s == "q4_1") return DType::Q4_1;
  if (s == "q5_0") return DType::Q5_0;
  if (s == "q5_1") return DType::Q5_1;
  if (s == "f16") return DType::F16;
  if (s == "f32") return DType::F32;
  throw std::invalid_argument("unknown quantization type '" + name + "'; choose q8_0, q4_0, q4_1, q5_0, q5_1 (or f16, f32)");
}

}  // namespace pyvitcpp
