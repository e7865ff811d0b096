// The kernel interface: one table of function pointers per ISA level.
//
// Threading convention (ggml style): every thread of the pool calls the same kernel with its
// index ith in [0, nth); the kernel splits its own work into disjoint parts so that the union
// over ith = 0..nth-1 is the whole op. No kernel synchronises internally, so calling it for
// every ith sequentially on one thread gives exactly the parallel result (tests do this).
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "core/isa.h"

namespace pyvitcpp {

enum class Act : int32_t {
  None = 0,
  GeluErf = 1,    // 0.5 x (1 + erf(x / sqrt 2))            torch GELU(), HF "gelu"
  GeluTanh = 2,   // 0.5 x (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3)))  HF "gelu_pytorch_tanh"
  QuickGelu = 3,  // x * sigmoid(1.702 x)                   CLIP "quick_gelu"
  Tanh = 4,
  Relu = 5,
  Relu6 = 6,      // min(max(x, 0), 6)                      torch ReLU6 (EfficientNet-Lite, MobileNet)
  Silu = 7,       // x * sigmoid(x)                         torch SiLU / swish
  LeakyRelu = 8,  // x >= 0 ? x : 0.01 x                    torch LeakyReLU() (its default slope)
  HardSwish = 9,  // x * min(max(x + 3, 0), 6) / 6          torch Hardswish
  LeakyRelu01 = 10,  // x >= 0 ? x : 0.1 x                 darknet "leaky"
  Mish = 11,      // x * tanh(log(1 + e^x))                 torch Mish, darknet "mish"
  Sigmoid = 12,   // 1 / (1 + e^-x)                         torch sigmoid, darknet "logistic"
};
// The last Act value (hooks validate against it).
constexpr int kActLast = 12;

// Y[M,N] = act(X[M,K] . W[N,K]^T + bias[N]) + residual[M,N], then max(Y, 0) when relu_out
// W is in PyTorch Linear layout (row n holds the K weights of output n; GGUF ne0=K, ne1=N),
// F32 or F16. W_raw is that tensor as stored; W_packed is what this table's gemm_pack made
// of it (null when gemm_pack_size returned 0). residual may be null, or equal Y with ldr==ldy
// (in-place accumulate); X never aliases Y.
struct ConvGather;
struct CatGather;
struct GemmArgs {
  int64_t M = 0, N = 0, K = 0;
  const float* X = nullptr;
  int64_t ldx = 0;
  // Non-null: X is the im2col matrix of a convolution, gathered from the feature map as the
  // GEMM packs it and never materialised (X and ldx unused; F32/F16 weights only, not qgemm).
  const ConvGather* conv = nullptr;
  // Non-null: X is the column blocks of several row-strided matrices (a Concat fused into this
  // GEMM), gathered as the GEMM packs X (X and ldx unused; F32/F16 weights only, not qgemm).
  const CatGather* cat = nullptr;
  const void* W_raw = nullptr;
  DType wtype = DType::F32;
  const void* W_packed = nullptr;
  const float* bias = nullptr;
  Act act = Act::None;
  const float* residual = nullptr;
  int64_t ldr = 0;
  // Y = max(Y, 0) after the residual is added (ResNet's ReLU after the shortcut): Y =
  // relu(act(X W^T + b) + residual).
  bool relu_out = false;
  float* Y = nullptr;
  int64_t ldy = 0;
  // Block-quantized W only: the largest activation code (kernels/quant_gemm.h). 0: the level's
  // own (KernelTable::qgemm_act_qmax); the ref level also honours 1..127 (the twin of a level
  // whose qmax differs); SIMD levels ignore it.
  int act_qmax = 0;
  // A plain F32 GEMM (no conv, no cat) with few output columns may run as a 1x1 direct conv over
  // X's rows (kernels/conv_direct_driver.h, linear_direct_ok: no packing of X, the same bits);
  // false keeps the packed GEMM (tests compare the two).
  bool allow_direct = true;
};

// Y = (X - mean) / sqrt(var + eps) * gamma + beta, per row of D. Y may equal X.
struct LayerNormArgs {
  int64_t rows = 0, D = 0;
  const float* X = nullptr;
  int64_t ldx = 0;
  float* Y = nullptr;
  int64_t ldy = 0;
  const float* gamma = nullptr;  // may be null (= 1)
  const float* beta = nullptr;   // may be null (= 0)
  float eps = 1e-5f;
};

// O[b,i,h,:] = sum_j softmax_j(S[b,h,i,j]) V[b,j,h,:],  S[b,h,i,j] = scale * Q[b,i,h,:] . K[b,j,h,:]
//   + bias[h * bias_sh + i * bias_st + j]                      (when bias is set)
//   + mask[(b % mask_nw) * mask_sw + i * mask_st + j]          (when mask is set)
//   + Q[b,i,h,:] . rel_h[(ih - jh + gh - 1) * Dh + :]          (when rel_h and rel_w are set;
//   + Q[b,i,h,:] . rel_w[(iw - jw + gw - 1) * Dh + :]           i = ih * gw + iw, j = jh * gw + jw)
// Strides are in elements; the head dimension (Dh) is contiguous in Q, K, V and O, the key index
// j is contiguous in bias and mask. Any -inf in the additive terms is allowed as long as every
// query row keeps at least one finite score (else that row is undefined, as in PyTorch).
// No Tq x Tk matrix is materialised beyond a tile per thread: the relative-position term is made
// inside the kernel from q and the two small tables (gh + gw dot products per query row).
struct AttentionArgs {
  int64_t B = 0, H = 0, Tq = 0, Tk = 0, Dh = 0;
  const float* Q = nullptr;
  int64_t q_sb = 0, q_st = 0, q_sh = 0;
  const float* K = nullptr;
  int64_t k_sb = 0, k_st = 0, k_sh = 0;
  const float* V = nullptr;
  int64_t v_sb = 0, v_st = 0, v_sh = 0;
  float* O = nullptr;
  int64_t o_sb = 0, o_st = 0, o_sh = 0;
  float scale = 1.0f;
  // Additive bias [Hb, Tq, Tk], Hb = 1 (bias_sh = 0) or H, the same for every batch index
  // (Swin's relative position bias).
  const float* bias = nullptr;
  int64_t bias_sh = 0, bias_st = 0;
  // Additive mask [mask_nw, Tq, Tk]: batch index b uses window b % mask_nw (Swin's
  // shifted-window mask, batch = images x windows with the window index fastest).
  const float* mask = nullptr;
  int64_t mask_nw = 0, mask_sw = 0, mask_st = 0;
  // Decomposed relative position (Segment Anything's add_decomposed_rel_pos): Tq == Tk ==
  // rel_gh * rel_gw; rel_h [2 gh - 1, Dh] and rel_w [2 gw - 1, Dh], rows contiguous, shared by
  // all heads and batch entries; dotted with the unscaled query row. Both set or both null.
  const float* rel_h = nullptr;
  const float* rel_w = nullptr;
  int64_t rel_gh = 0, rel_gw = 0;
};

// ---- layout and elementwise ops over N-D strided tensors (kernels/layout_body.h) ----
// Shapes are outermost first; strides are in elements and may be 0 (broadcast) on inputs.
// Callers may pass any view; the kernels merge adjacent dimensions that are contiguous in
// every operand and drop size-1 dimensions before iterating.
constexpr int kMaxDims = 6;

// Y[i] = X[i] for every index i of ne (Y strided too: a slice of a larger tensor, e.g. concat).
struct CopyArgs {
  int nd = 0;
  int64_t ne[kMaxDims] = {};
  const float* X = nullptr;
  int64_t xs[kMaxDims] = {};
  float* Y = nullptr;
  int64_t ys[kMaxDims] = {};
};

// Y (contiguous, shape ne) = X placed at offset lo[d] on each axis, `value` elsewhere; X has
// shape xne. lo[d] + xne[d] <= ne[d].
struct PadArgs {
  int nd = 0;
  int64_t ne[kMaxDims] = {}, lo[kMaxDims] = {}, xne[kMaxDims] = {};
  const float* X = nullptr;
  int64_t xs[kMaxDims] = {};
  float* Y = nullptr;
  float value = 0.0f;
};

// Y (contiguous, shape ne)[i] = X[(i_d - shift[d]) mod ne[d]] (torch.roll), 0 <= shift[d] < ne[d].
struct RollArgs {
  int nd = 0;
  int64_t ne[kMaxDims] = {}, shift[kMaxDims] = {};
  const float* X = nullptr;
  int64_t xs[kMaxDims] = {};
  float* Y = nullptr;
};

// Y (contiguous, shape ne) from up to three broadcast inputs:
//   Add:    Y = alpha * (A + B)        Mul:    Y = A * B
//   AddMul: Y = A + B * C              ActMul: Y = act(A) * B  (SwiGLU: silu(gate) * up)
//   Act:    Y = act(A)
enum class EltKind : int32_t { Add = 0, Mul = 1, AddMul = 2, ActMul = 3, Act = 4 };
struct EltwiseArgs {
  int nd = 0;
  int64_t ne[kMaxDims] = {};
  EltKind kind = EltKind::Add;
  Act act = Act::None;
  float alpha = 1.0f;
  const float* A = nullptr;
  int64_t as[kMaxDims] = {};
  const float* B = nullptr;
  int64_t bs[kMaxDims] = {};
  const float* C = nullptr;
  int64_t cs[kMaxDims] = {};
  float* Y = nullptr;
};

// Y[o, i] = mean_j X[o, j, i] over X [outer, n, inner] with strides (xs_o, xs_n, 1); Y contiguous.
struct MeanArgs {
  int64_t outer = 0, n = 0, inner = 0;
  const float* X = nullptr;
  int64_t xs_o = 0, xs_n = 0;
  float* Y = nullptr;
};

// ---- convolution and pooling (CNN backbones) ----

// Output size and padding along one axis. TF "SAME" pads (total) so that out = ceil(in / s)
// with the odd pixel at the end (bottom/right), as TensorFlow and timm's Conv2dSame do.
struct ConvAxis {
  int64_t in = 0, out = 0, k = 1, stride = 1, dil = 1, pad0 = 0;  // pad0: top / left
};

// The im2col matrix of a convolution over an NHWC map X [B, h.in, w.in, C], channels
// [c0, c0 + cg): row r = (b * h.out + oy) * w.out + ox, column k = (ky * w.k + kx) * cg + c,
// holding X[b, oy*sh - pad_t + ky*dh, ox*sw - pad_l + kx*dw, c0 + c], or 0 outside the image.
// nchw: X is NCHW pixels [B, C, h.in, w.in] instead (the stem), the same matrix.
struct ConvGather {
  const float* X = nullptr;
  int64_t B = 0, C = 0, c0 = 0, cg = 0;
  ConvAxis h, w;
  bool nchw = false;
  // The SIMD levels may run such a GEMM as a direct conv (kernels/conv_direct_driver.h) instead
  // of gathering and packing X; false forces the gather (tests compare the two).
  bool allow_direct = true;
  // The direct conv may run interior pixels of an output row through its NHWC row microkernel
  // (same bits as its general microkernel); false keeps the general one (tests compare them).
  bool allow_row = true;
  // Non-null: the conv's 3x3 weight transformed for Winograd F(4x4, 3x3) by this level's
  // wino_pack; the SIMD levels then run a 3x3 stride-1 conv that way where
  // kernels/conv_winograd_driver.h's winograd_ok allows (null: the direct conv).
  const float* wino = nullptr;
};
// Columns [k0, k0 + n) of row r of that matrix into dst (ISA-neutral, kernels/conv_gather.cpp).
void conv_gather_row(const ConvGather& g, int64_t r, int64_t k0, int64_t n, float* dst);

// X as column blocks: columns [k[i], k[i+1]) of row r are X[i][r * ld[i] + (col - k[i])].
constexpr int kMaxCatParts = 16;
struct CatGather {
  int n = 0;
  const float* X[kMaxCatParts] = {};
  int64_t ld[kMaxCatParts] = {};
  int64_t k[kMaxCatParts + 1] = {};
};
void cat_gather_row(const CatGather& g, int64_t r, int64_t k0, int64_t n, float* dst);
// Columns [k0, k0 + n) of row r of a gathered GEMM's X (GemmArgs::conv or ::cat) into dst.
void gemm_gather_row(const GemmArgs& a, int64_t r, int64_t k0, int64_t n, float* dst);

// Depthwise conv (groups == C == output channels), NHWC in and out:
// Y[b,oy,ox,c] = act(bias[c] + sum_{ky,kx} X[b, oy*s - pad_t + ky*d, ox*s - pad_l + kx*d, c] * Wt[ky,kx,c])
// Taps outside the image read 0. Wt is tap-major [KH*KW, C] (PyTorch's [C,1,KH,KW] transposed at load).
struct DwConv2dArgs {
  int64_t B = 0, C = 0;
  ConvAxis h, w;
  const float* X = nullptr;   // [B, h.in, w.in, C]
  const float* Wt = nullptr;  // [h.k * w.k, C]
  const float* bias = nullptr;  // [C] or null
  Act act = Act::None;
  float* Y = nullptr;         // [B, h.out, w.out, C]
};

// Max or average pooling, NHWC. Max ignores padded taps; average divides by the taps inside
// the image (count_include_pad=False) or by KH*KW (true, PyTorch's AvgPool2d default).
enum class PoolKind : int32_t { Max = 0, Avg = 1 };
struct Pool2dArgs {
  int64_t B = 0, C = 0;
  ConvAxis h, w;
  PoolKind kind = PoolKind::Max;
  bool count_include_pad = true;
  const float* X = nullptr;
  float* Y = nullptr;
};

struct KernelTable {
  Isa isa = Isa::Ref;
  // GEMM: the three entries are always registered together (the packed layout is private to
  // the kernel that packed it).
  size_t (*gemm_pack_size)(DType wtype, int64_t N, int64_t K) = nullptr;
  void (*gemm_pack)(const void* W_raw, DType wtype, int64_t N, int64_t K, void* dst) = nullptr;
  void (*gemm)(const GemmArgs& a, int ith, int nth) = nullptr;
  // Output columns per panel of gemm_pack's layout (0: no packing). Panels are independent, so
  // packing rows [p*NR, q*NR) of W alone fills panels [p, q): loaders split big weights that way.
  int gemm_pack_nr = 0;
  // Winograd F(4x4, 3x3) weights of a 3x3 conv (kernels/conv_winograd_driver.h): bytes, and the
  // transform of W [OC, 3, 3, C] ((ky, kx, c) columns, F32 or F16) into them. Null on levels
  // without the Winograd path (ref).
  size_t (*wino_pack_size)(int64_t OC, int64_t C) = nullptr;
  void (*wino_pack)(const void* W, DType wtype, int64_t OC, int64_t C, void* dst) = nullptr;

  void (*layernorm)(const LayerNormArgs& a, int ith, int nth) = nullptr;
  // Elementwise Y = act(X) over n elements; Y may equal X.
  void (*activation)(const float* X, float* Y, int64_t n, Act act, int ith, int nth) = nullptr;
  // Bytes of scratch each thread needs; the caller passes nth * that, thread ith uses its slice.
  size_t (*attention_workspace)(const AttentionArgs& a) = nullptr;
  void (*attention)(const AttentionArgs& a, void* workspace, int ith, int nth) = nullptr;

  // ---- layout and elementwise (one body, kernels/layout_body.h, compiled per level):
  // registered by register_layout_<isa> ----
  void (*copy_strided)(const CopyArgs& a, int ith, int nth) = nullptr;
  void (*pad)(const PadArgs& a, int ith, int nth) = nullptr;
  void (*roll)(const RollArgs& a, int ith, int nth) = nullptr;
  void (*eltwise)(const EltwiseArgs& a, int ith, int nth) = nullptr;
  void (*mean)(const MeanArgs& a, int ith, int nth) = nullptr;

  // ---- convolution and pooling (CNN backbones): registered by register_conv_<isa> ----
  // Activations are NHWC: an image's pixels are rows of C contiguous channels (see conv.h).
  void (*dwconv2d)(const DwConv2dArgs& a, int ith, int nth) = nullptr;
  void (*pool2d)(const Pool2dArgs& a, int ith, int nth) = nullptr;

  // ---- block-quantized weights (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1): registered by register_quant_<isa> ----
  // GEMM with a block-quantized W (GemmArgs.wtype Q8_0/Q4_0/Q4_1/Q5_0/Q5_1, K a multiple of 32);
  // the math and the packed layout are in kernels/quant_gemm.h. qgemm_pack_size 0: computes from
  // W_raw (ref). Per-thread scratch is the kernel's own (thread_local).
  size_t (*qgemm_pack_size)(DType wtype, int64_t N, int64_t K) = nullptr;
  void (*qgemm_pack)(const void* W_raw, DType wtype, int64_t N, int64_t K, void* dst) = nullptr;
  void (*qgemm)(const GemmArgs& a, int ith, int nth) = nullptr;
  // Largest |code| of the activations qgemm quantizes for this weight type (127, or less where
  // the level's integer products need headroom).
  int (*qgemm_act_qmax)(DType wtype) = nullptr;
};

// Table for one level. Levels above ref start as a copy of the level below and override
// what they implement. Throws std::runtime_error if this CPU/OS cannot run that level.
const KernelTable& kernel_table(Isa isa);

// Registration hooks, one per kernel family and level (defined in kernels/<isa>/).
// Only called after the CPU is known to support the level.
void register_gemm_ref(KernelTable& t);
void register_ops_ref(KernelTable& t);
void register_gemm_avx2(KernelTable& t);
void register_ops_avx2(KernelTable& t);
void register_gemm_avx512(KernelTable& t);
void register_ops_avx512(KernelTable& t);
void register_conv_ref(KernelTable& t);
void register_conv_avx2(KernelTable& t);
void register_conv_avx512(KernelTable& t);
void register_quant_ref(KernelTable& t);
void register_quant_avx2(KernelTable& t);
void register_quant_avx512(KernelTable& t);
void register_layout_ref(KernelTable& t);
void register_layout_avx2(KernelTable& t);
void register_layout_avx512(KernelTable& t);

}  // namespace pyvitcpp
