// The graph's ops: one small parameter struct per op, and the Node that holds one of them.
// Every op's shape rule is its method on GraphBuilder (graph/builder.h); its executor, kernel,
// tests and benchmark are listed in its row of the registry (ops/registry.cpp).
#pragma once
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "core/aligned.h"
#include "core/dtype.h"
#include "kernels/kernels.h"

namespace pyvitcpp {

// A Linear weight [N, K] (PyTorch layout) as stored, plus the active kernel level's packed form.
struct LinearWeight {
  std::string name;
  const void* raw = nullptr;
  DType type = DType::F32;
  int64_t N = 0, K = 0;
  AlignedBuffer owned_raw;  // when raw had to be assembled (e.g. q, k, v fused at load)
  AlignedBuffer packed;     // empty when the level computes from raw
  AlignedBuffer wino;       // a 3x3 stride-1 conv's Winograd weights (KernelTable::wino_pack), or empty
  const float* bias = nullptr;
};

// Geometry of a conv / pooling over an NHWC map [B, h.in, w.in, C] (or NCHW pixels for an
// Im2col with nchw), channels [c0, c0 + cg).
// NHWC: C is the pixel stride in floats (the map's channels, or more when the conv reads a
// channel slice of a wider map), c0 the first channel read, cg the channels per group.
struct ConvGeom {
  int64_t B = 0, C = 0, c0 = 0, cg = 0;
  ConvAxis h, w;
  bool nchw = false;  // NCHW pixels (a conv's gather or Im2col of the model's input)
};

enum class OpType : int {
  Linear,     // in: X [.., K] (row-strided; or LinearOp::ncat column blocks of X), residual [.., N]
              // optional. act(X W^T + b) + residual
  LayerNorm,  // in: X [.., D] (row-strided). Over the last dim
  Attention,  // in: Q [B, Tq, H, Dh], K, V [B, Tk, H, Dh] (views, Dh contiguous), optional terms
              // (AttentionOp). out [B, Tq, H*Dh]
  Copy,       // in: any view. out: the same shape, contiguous
  Pad,        // in: any view. out: padded with a constant on any axes
  Roll,       // in: any view. out: cyclic shift on any axes (torch.roll)
  Concat,     // in: 1+ views. out: joined along one axis
  Eltwise,    // in: 1-3 broadcast views. out: the first input's shape (EltKind)
  Mean,       // in: any view. out: the mean over one axis (that axis removed)
  Im2col,     // in: NHWC map or NCHW pixels. out [B*OH*OW, KH*KW*cg], columns (ky, kx, c)
  DwConv,     // in: NHWC map. out: NHWC, depthwise conv + bias + act
  Pool2d,     // in: NHWC map. out: NHWC, max / average pooling
};
constexpr int kOpTypes = static_cast<int>(OpType::Pool2d) + 1;

struct LinearOp {
  const LinearWeight* w = nullptr;
  Act act = Act::None;
  // in[0] is an NHWC map and X its im2col by `conv` (an Im2col fused into this GEMM by
  // Graph::finalize; the GEMM gathers X's rows as it packs them).
  bool gather = false;
  ConvGeom conv;
  // ncat >= 2: in[0 .. ncat-1] are the column blocks of X (a Concat along the last axis fused
  // into this GEMM by Graph::finalize: X is gathered from them as the GEMM packs it, never
  // written); the residual, if any, is then in[ncat].
  int ncat = 0;
  // max(., 0) after the residual: relu(act(X W^T + b) + residual) (ResNet's block output).
  bool relu_out = false;
  int x_inputs() const { return ncat ? ncat : 1; }  // inputs holding X; the residual is next
};
struct LayerNormOp {
  const float* gamma = nullptr;
  const float* beta = nullptr;
  float eps = 1e-5f;
};
// Optional additive score terms are further inputs, at the indices below (-1: absent):
// bias [Hb, Tq, Tk] (Hb = 1 or H), mask [nW, Tq, Tk] (batch b uses window b % nW), and SAM's
// decomposed relative position: rel_h [2 gh - 1, Dh] at index rel, rel_w [2 gw - 1, Dh] at
// rel + 1, over a gh x gw token grid (kernels.h, AttentionArgs).
struct AttentionOp {
  float scale = 1.0f;
  int bias = -1, mask = -1, rel = -1;
  int64_t grid_h = 0, grid_w = 0;
};
struct CopyOp {};
struct PadOp {
  std::vector<int64_t> lo, hi;  // per axis, before and after
  float value = 0.0f;
};
struct RollOp {
  std::vector<int64_t> shift;  // per axis, in [0, size)
};
struct ConcatOp {
  int axis = 0;
};
struct EltwiseOp {
  EltKind kind = EltKind::Add;
  Act act = Act::None;
  float alpha = 1.0f;
};
struct MeanOp {
  int axis = 0;
};
struct Im2colOp {
  ConvGeom conv;
  bool nchw = false;  // the input is NCHW pixels (the stem)
};
struct DwConvOp {
  ConvGeom conv;
  const float* taps = nullptr;  // [KH*KW, C]
  const float* bias = nullptr;
  Act act = Act::None;
};
struct Pool2dOp {
  ConvGeom conv;
  PoolKind kind = PoolKind::Max;
  bool count_include_pad = true;
};

using OpParams = std::variant<LinearOp, LayerNormOp, AttentionOp, CopyOp, PadOp, RollOp, ConcatOp, EltwiseOp, MeanOp,
                              Im2colOp, DwConvOp, Pool2dOp>;

struct Node {
  OpType op;
  std::string name;
  std::vector<int> in;  // tensor ids (views allowed where the op's row says so)
  int out = -1;         // a contiguous activation
  OpParams p;

  template <class P>
  const P& as() const { return std::get<P>(p); }
  template <class P>
  P& as() { return std::get<P>(p); }
};

}  // namespace pyvitcpp
