// Test-only C API over the avx512 kernels built against SIMDe (tests/avx512_emu/immintrin.h),
// loaded with ctypes by tests/test_avx512_emulated.py. Each entry mirrors one hook of
// pyvitcpp._testing for the avx512 level (same argument structs, every ith in 0..nth-1 run
// in turn), so the Python side compares it with the real ref level under the existing error
// models. No validation: the Python wrapper passes well-formed arrays.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/fp16.h"
#include "kernels/conv.h"
#include "kernels/kernels.h"
#include "kernels/simd_act.h"
#include "kernels/avx512/gemm_avx512.h"

using namespace pyvitcpp;

namespace {
const KernelTable& emu_table() {
  static const KernelTable t = [] {
    KernelTable k;
    k.isa = Isa::Avx512;
    register_gemm_ref(k);  // the fallback register_gemm_avx512 keeps for an unpacked W
    register_ops_ref(k);
    register_conv_ref(k);
    register_gemm_avx512(k);
    register_ops_avx512(k);
    register_conv_avx512(k);
    register_quant_ref(k);
    register_quant_avx512(k);
    return k;
  }();
  return t;
}
ConvAxis axis(int64_t in, int64_t k, int64_t s, int64_t d, int64_t pad, int same) {
  return same ? conv_axis_same(in, k, s, d) : conv_axis_sym(in, k, s, d, pad);
}
}  // namespace

extern "C" {

// out[0] = output size, out[1] = pad0 of one axis (the hooks' geometry).
void emu_axis(int64_t in, int64_t k, int64_t s, int64_t d, int64_t pad, int same, int64_t* out) {
  ConvAxis a = axis(in, k, s, d, pad, same);
  out[0] = a.out;
  out[1] = a.pad0;
}

void emu_dwconv2d(const float* X, const float* Wt, const float* bias, int64_t B, int64_t H, int64_t W, int64_t C,
                  int64_t k, int64_t s, int64_t d, int64_t pad, int same, int act, float* Y, int nth) {
  DwConv2dArgs a;
  a.B = B; a.C = C;
  a.h = axis(H, k, s, d, pad, same);
  a.w = axis(W, k, s, d, pad, same);
  a.X = X; a.Wt = Wt; a.bias = bias; a.act = static_cast<Act>(act); a.Y = Y;
  for (int i = 0; i < nth; ++i) emu_table().dwconv2d(a, i, nth);
}

void emu_pool2d(const float* X, int64_t B, int64_t H, int64_t W, int64_t C, int64_t k, int64_t s, int64_t pad,
                int same, int is_max, int cip, float* Y, int nth) {
  Pool2dArgs a;
  a.B = B; a.C = C;
  a.h = axis(H, k, s, 1, pad, same);
  a.w = axis(W, k, s, 1, pad, same);
  a.kind = is_max ? PoolKind::Max : PoolKind::Avg;
  a.count_include_pad = cip != 0;
  a.X = X; a.Y = Y;
  for (int i = 0; i < nth; ++i) emu_table().pool2d(a, i, nth);
}

void emu_layernorm(const float* X, int64_t ldx, float* Y, int64_t ldy, int64_t rows, int64_t D, const float* gamma,
                   const float* beta, float eps, int nth) {
  LayerNormArgs a;
  a.rows = rows; a.D = D; a.X = X; a.ldx = ldx; a.Y = Y; a.ldy = ldy; a.gamma = gamma; a.beta = beta; a.eps = eps;
  for (int i = 0; i < nth; ++i) emu_table().layernorm(a, i, nth);
}

void emu_activation(const float* X, float* Y, int64_t n, int act, int nth) {
  for (int i = 0; i < nth; ++i) emu_table().activation(X, Y, n, static_cast<Act>(act), i, nth);
}

// Strides in elements: s[0..2] = Q (b, t, h), s[3..5] = K, s[6..8] = V, s[9..11] = O.
void emu_attention(int64_t B, int64_t H, int64_t Tq, int64_t Tk, int64_t Dh, const float* Q, const float* K,
                   const float* V, float* O, const int64_t* s, float scale, int nth) {
  AttentionArgs a;
  a.B = B; a.H = H; a.Tq = Tq; a.Tk = Tk; a.Dh = Dh;
  a.Q = Q; a.q_sb = s[0]; a.q_st = s[1]; a.q_sh = s[2];
  a.K = K; a.k_sb = s[3]; a.k_st = s[4]; a.k_sh = s[5];
  a.V = V; a.v_sb = s[6]; a.v_st = s[7]; a.v_sh = s[8];
  a.O = O; a.o_sb = s[9]; a.o_st = s[10]; a.o_sh = s[11];
  a.scale = scale;
  const KernelTable& t = emu_table();
  // Offset by one byte like the hook: the kernel must not assume an aligned workspace.
  std::vector<unsigned char> ws(t.attention_workspace(a) * static_cast<size_t>(nth) + 1);
  for (int i = 0; i < nth; ++i) t.attention(a, ws.data() + 1, i, nth);
}

// emu_attention with the additive score terms (AttentionArgs bias / mask / rel_h, rel_w; null: absent).
// t[0..4] = bias_sh, bias_st, mask_nw, mask_sw, mask_st; t[5..6] = rel_gh, rel_gw.
void emu_attention_terms(int64_t B, int64_t H, int64_t Tq, int64_t Tk, int64_t Dh, const float* Q, const float* K,
                         const float* V, float* O, const int64_t* s, float scale, int nth, const float* bias,
                         const float* mask, const float* rel_h, const float* rel_w, const int64_t* t) {
  AttentionArgs a;
  a.B = B; a.H = H; a.Tq = Tq; a.Tk = Tk; a.Dh = Dh;
  a.Q = Q; a.q_sb = s[0]; a.q_st = s[1]; a.q_sh = s[2];
  a.K = K; a.k_sb = s[3]; a.k_st = s[4]; a.k_sh = s[5];
  a.V = V; a.v_sb = s[6]; a.v_st = s[7]; a.v_sh = s[8];
  a.O = O; a.o_sb = s[9]; a.o_st = s[10]; a.o_sh = s[11];
  a.scale = scale;
  a.bias = bias; a.bias_sh = t[0]; a.bias_st = t[1];
  a.mask = mask; a.mask_nw = t[2]; a.mask_sw = t[3]; a.mask_st = t[4];
  a.rel_h = rel_h; a.rel_w = rel_w; a.rel_gh = t[5]; a.rel_gw = t[6];
  const KernelTable& tb = emu_table();
  std::vector<unsigned char> ws(tb.attention_workspace(a) * static_cast<size_t>(nth) + 1);
  for (int i = 0; i < nth; ++i) tb.attention(a, ws.data() + 1, i, nth);
}

// wtype 0 = F32, 1 = F16 (W raw bits). residual may equal Y (then ldr == ldy).
void emu_gemm(int64_t M, int64_t N, int64_t K, const float* X, int64_t ldx, const void* W, int wtype,
              const float* bias, int act, const float* residual, int64_t ldr, float* Y, int64_t ldy, int packed_w,
              int nth, int relu_out, int direct) {
  const KernelTable& t = emu_table();
  const DType dt = wtype ? DType::F16 : DType::F32;
  void* packed = nullptr;
  if (packed_w) {
    const size_t bytes = t.gemm_pack_size(dt, N, K);
    if (bytes) {
      packed = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
      t.gemm_pack(W, dt, N, K, packed);
    }
  }
  GemmArgs a;
  a.M = M; a.N = N; a.K = K; a.X = X; a.ldx = ldx; a.W_raw = W; a.wtype = dt; a.W_packed = packed;
  a.bias = bias; a.act = static_cast<Act>(act); a.residual = residual; a.ldr = ldr; a.Y = Y; a.ldy = ldy;
  a.relu_out = relu_out != 0;
  a.allow_direct = direct != 0;
  for (int i = 0; i < nth; ++i) t.gemm(a, i, nth);
  std::free(packed);
}

// A convolution as the CNN graphs run it: per group, the GEMM gathers its X from the NHWC map
// (GemmArgs::conv). Wk: per group [OC/groups, k*k*Cg] in (ky, kx, c) column order. Y: NHWC.
// direct: the level may run the conv directly (ConvGather::allow_direct); row: the direct conv
// may use its NHWC row tiles (allow_row); f16: the weight is stored as F16 (the caller gives
// values already rounded to fp16), as the _testing hook's arguments of the same names.
void emu_conv2d(const float* X, int64_t B, int64_t H, int64_t W, int64_t C, const float* Wk, int64_t OC,
                int64_t groups, int64_t k, int64_t s, int64_t d, int64_t pad, int same, const float* bias, int act,
                const float* residual, float* Y, int nth, int direct, int f16, int row,
                int winograd, int relu_out) {
  const KernelTable& t = emu_table();
  const int64_t Cg = C / groups, OCg = OC / groups, K = k * k * Cg;
  ConvGather g;
  g.X = X; g.B = B; g.C = C; g.cg = Cg;
  g.h = axis(H, k, s, d, pad, same);
  g.w = axis(W, k, s, d, pad, same);
  g.allow_direct = direct != 0;
  g.allow_row = row != 0;
  const DType wt = f16 ? DType::F16 : DType::F32;
  std::vector<uint16_t> wh(f16 ? static_cast<size_t>(OCg * K) : 0);
  for (int64_t gi = 0; gi < groups; ++gi) {
    g.c0 = gi * Cg;
    const float* wg = Wk + gi * OCg * K;
    for (size_t i = 0; i < wh.size(); ++i) wh[i] = fp32_to_fp16(wg[i]);
    const void* wraw = f16 ? static_cast<const void*>(wh.data()) : wg;
    const size_t bytes = t.gemm_pack_size(wt, OCg, K);
    void* packed = bytes ? std::aligned_alloc(64, (bytes + 63) / 64 * 64) : nullptr;
    if (packed) t.gemm_pack(wraw, wt, OCg, K, packed);
    void* wino = nullptr;  // Winograd weights (3x3 only), as the hook makes them
    if (winograd && k == 3 && t.wino_pack) {
      wino = std::aligned_alloc(64, (t.wino_pack_size(OCg, Cg) + 63) / 64 * 64);
      t.wino_pack(wraw, wt, OCg, Cg, wino);
    }
    g.wino = static_cast<const float*>(wino);
    GemmArgs a;
    a.M = B * g.h.out * g.w.out; a.N = OCg; a.K = K; a.conv = &g;
    a.W_raw = wraw; a.wtype = wt; a.W_packed = packed;
    a.bias = bias ? bias + gi * OCg : nullptr; a.act = static_cast<Act>(act);
    a.residual = residual ? residual + gi * OCg : nullptr; a.ldr = OC;
    a.relu_out = relu_out != 0;
    a.Y = Y + gi * OCg; a.ldy = OC;
    for (int i = 0; i < nth; ++i) t.gemm(a, i, nth);
    std::free(packed);
    std::free(wino);
  }
}

// type: 0..4 = q8_0, q4_0, q4_1, q5_0, q5_1; W rows are ggml blocks. Y arrives NaN-filled, or
// holding the residual when residual == Y.
void emu_qgemm(int64_t M, int64_t N, int64_t K, const float* X, const void* W, int type, const float* bias, int act,
               const float* residual, float* Y, int nth, int relu_out) {
  static const DType types[] = {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1};
  const KernelTable& t = emu_table();
  const DType dt = types[type];
  void* packed = nullptr;
  if (const size_t bytes = t.qgemm_pack_size(dt, N, K)) {
    packed = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    t.qgemm_pack(W, dt, N, K, packed);
  }
  GemmArgs a;
  a.M = M; a.N = N; a.K = K; a.X = X; a.ldx = K; a.W_raw = W; a.wtype = dt; a.W_packed = packed;
  a.bias = bias; a.act = static_cast<Act>(act); a.residual = residual; a.ldr = N; a.Y = Y; a.ldy = N;
  a.relu_out = relu_out != 0;
  for (int i = 0; i < nth; ++i) t.qgemm(a, i, nth);
  std::free(packed);
}

int emu_qgemm_act_qmax(int type) {
  static const DType types[] = {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1};
  return emu_table().qgemm_act_qmax(types[type]);
}

void emu_act_inplace(float* y, int64_t n, int act) { avx512::act_inplace(y, n, static_cast<Act>(act)); }

void emu_gemm_tile(int* mr_nr) {
  mr_nr[0] = avx512::kGemmMR;
  mr_nr[1] = avx512::kGemmNR;
}

}  // extern "C"
