// Executors of the compute ops: Linear (GEMM + epilogue, or the quantized GEMM), LayerNorm and
// the fused Attention. Each turns its node and resolved tensors into the kernel's arguments.
#include <cmath>
#include <stdexcept>

#include "core/blocks.h"
#include "ops/executors.h"

namespace pyvitcpp {

void linear_mk(const Node& n, const TensorDesc& x, int64_t* M, int64_t* K) {
  const LinearOp& p = n.as<LinearOp>();
  if (p.gather) {
    *M = p.conv.B * p.conv.h.out * p.conv.w.out;
    *K = p.conv.h.k * p.conv.w.k * p.conv.cg;
  } else if (p.ncat) {
    int64_t k, ld;
    x.as_matrix(M, &k, &ld);  // x: the first column block
    *K = p.w->K;
  } else {
    int64_t ld;
    x.as_matrix(M, K, &ld);
  }
}

ConvGather conv_gather(const ConvGeom& c, const float* X) {
  ConvGather g;
  g.X = X;
  g.B = c.B;
  g.C = c.C;
  g.c0 = c.c0;
  g.cg = c.cg;
  g.h = c.h;
  g.w = c.w;
  g.nchw = c.nchw;
  return g;
}

void exec_linear(const OpCtx& c, int ith, int nth) {
  const LinearOp& p = c.n.as<LinearOp>();
  GemmArgs a;
  linear_mk(c.n, *c.xd[0], &a.M, &a.K);
  a.N = p.w->N;
  ConvGather g;
  CatGather cg;
  if (p.gather) {
    g = conv_gather(p.conv, c.x[0]);
    if (!p.w->wino.empty()) g.wino = reinterpret_cast<const float*>(p.w->wino.data());
    a.conv = &g;
  } else if (p.ncat) {
    cg.n = p.ncat;
    for (int i = 0; i < p.ncat; ++i) {
      int64_t r, k;
      c.xd[i]->as_matrix(&r, &k, &cg.ld[i]);
      cg.X[i] = c.x[i];
      cg.k[i + 1] = cg.k[i] + k;
    }
    a.cat = &cg;
  } else {
    int64_t r, k;
    c.xd[0]->as_matrix(&r, &k, &a.ldx);
    a.X = c.x[0];
  }
  a.W_raw = p.w->raw;
  a.wtype = p.w->type;
  a.W_packed = p.w->packed.empty() ? nullptr : p.w->packed.data();
  a.bias = p.w->bias;
  a.act = p.act;
  const size_t ri = static_cast<size_t>(p.x_inputs());  // the residual's input index
  if (c.n.in.size() > ri) {
    int64_t r, k;
    c.xd[ri]->as_matrix(&r, &k, &a.ldr);
    a.residual = c.x[ri];
  }
  a.relu_out = p.relu_out;
  a.Y = c.y;
  a.ldy = a.N;
  if (is_block_quant(a.wtype)) c.kt.qgemm(a, ith, nth);
  else c.kt.gemm(a, ith, nth);
}

double flops_linear(const Node& n, const TensorDesc* const* xd, const TensorDesc&) {
  int64_t M, K;
  linear_mk(n, *xd[0], &M, &K);
  return 2.0 * static_cast<double>(M) * static_cast<double>(n.as<LinearOp>().w->N) * static_cast<double>(K);
}

// GEMMs big enough to amortise the repeated X packing get more shares than threads, so a
// preempted thread holds back less work (PYVITCPP_GEMM_CHUNKS=k forces k per thread).
int shares_linear(const Node& n, const TensorDesc* const* xd, const TensorDesc& yd, int nth) {
  if (nth <= 1) return 1;
  static const int forced = [] {
    const char* e = std::getenv("PYVITCPP_GEMM_CHUNKS");
    return e ? std::atoi(e) : 0;
  }();
  if (forced > 0) return nth * forced;
  // A conv with Winograd weights splits its own work by tiles and output panels
  // (conv_winograd_driver.h); more shares than threads would re-read U or redo the input
  // transform once per share.
  if (n.as<LinearOp>().gather && !n.as<LinearOp>().w->wino.empty()) return nth;
  const double f = flops_linear(n, xd, yd);
  return nth * (f >= 1.5e9 ? 4 : f >= 3e8 ? 2 : 1);
}

void exec_layernorm(const OpCtx& c, int ith, int nth) {
  const LayerNormOp& p = c.n.as<LayerNormOp>();
  LayerNormArgs a;
  c.xd[0]->as_matrix(&a.rows, &a.D, &a.ldx);
  a.X = c.x[0];
  a.Y = c.y;
  a.ldy = a.D;
  a.gamma = p.gamma;
  a.beta = p.beta;
  a.eps = p.eps;
  c.kt.layernorm(a, ith, nth);
}

namespace {
AttentionArgs attention_args(const Node& n, const TensorDesc* const* xd) {
  const TensorDesc &q = *xd[0], &k = *xd[1], &v = *xd[2];
  AttentionArgs a;
  a.B = q.shape[0];
  a.Tq = q.shape[1];
  a.H = q.shape[2];
  a.Dh = q.shape[3];
  a.Tk = k.shape[1];
  a.q_sb = q.strides[0]; a.q_st = q.strides[1]; a.q_sh = q.strides[2];
  a.k_sb = k.strides[0]; a.k_st = k.strides[1]; a.k_sh = k.strides[2];
  a.v_sb = v.strides[0]; a.v_st = v.strides[1]; a.v_sh = v.strides[2];
  a.o_sb = a.Tq * a.H * a.Dh;
  a.o_st = a.H * a.Dh;
  a.o_sh = a.Dh;
  const AttentionOp& p = n.as<AttentionOp>();
  a.scale = p.scale;
  if (p.bias >= 0) {
    const TensorDesc& t = *xd[p.bias];
    a.bias_sh = t.shape[0] == 1 ? 0 : t.strides[0];
    a.bias_st = t.strides[1];
  }
  if (p.mask >= 0) {
    const TensorDesc& t = *xd[p.mask];
    a.mask_nw = t.shape[0];
    a.mask_sw = t.strides[0];
    a.mask_st = t.strides[1];
  }
  if (p.rel >= 0) {
    a.rel_gh = p.grid_h;
    a.rel_gw = p.grid_w;
  }
  return a;
}
}  // namespace

void exec_attention(const OpCtx& c, int ith, int nth) {
  AttentionArgs a = attention_args(c.n, c.xd);
  a.Q = c.x[0];
  a.K = c.x[1];
  a.V = c.x[2];
  const AttentionOp& p = c.n.as<AttentionOp>();
  if (p.bias >= 0) a.bias = c.x[p.bias];
  if (p.mask >= 0) a.mask = c.x[p.mask];
  if (p.rel >= 0) {
    a.rel_h = c.x[p.rel];
    a.rel_w = c.x[p.rel + 1];
  }
  a.O = c.y;
  c.kt.attention(a, c.ws, ith, nth);
}

double flops_attention(const Node& n, const TensorDesc* const* xd, const TensorDesc&) {
  const AttentionArgs a = attention_args(n, xd);
  return 4.0 * a.B * a.H * static_cast<double>(a.Tq) * a.Tk * a.Dh;
}

int shares_attention(const Node&, const TensorDesc* const*, const TensorDesc&, int nth) {
  return nth <= 1 ? 1 : nth * 2;
}

// The scratch size depends on which terms are present, not on their data (unknown at plan
// time): stand-in pointers mark them present.
size_t workspace_attention(const Node& n, const TensorDesc* const* xd, const TensorDesc&, const KernelTable& kt) {
  static const float present = 0.0f;
  AttentionArgs a = attention_args(n, xd);
  const AttentionOp& p = n.as<AttentionOp>();
  if (p.bias >= 0) a.bias = &present;
  if (p.mask >= 0) a.mask = &present;
  if (p.rel >= 0) a.rel_h = a.rel_w = &present;
  return kt.attention_workspace(a);
}

}  // namespace pyvitcpp
