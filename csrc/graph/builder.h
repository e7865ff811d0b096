// Building graphs: each op's shape rule, and the views. Model builders (models/*.cpp) call
// these instead of filling Nodes by hand. Views cost nothing; an op whose kernel needs a
// layout the view does not have gets a Copy first (contiguous()).
//
// Shapes are outermost first (PyTorch order). Feature maps are NHWC [B, H, W, C]; tokens are
// [B, T, D].
#pragma once
#include <string>
#include <vector>

#include "graph/graph.h"

namespace pyvitcpp {

class GraphBuilder {
 public:
  explicit GraphBuilder(Graph& g) : g_(g) {}
  Graph& graph() { return g_; }
  const TensorDesc& desc(int t) const { return g_.tensor(t); }
  const std::vector<int64_t>& shape(int t) const { return g_.tensor(t).shape; }

  int input(const std::string& name, std::vector<int64_t> shape) { return g_.add_input(name, std::move(shape)); }
  int constant(const std::string& name, std::vector<int64_t> shape, const float* data) {
    return g_.add_constant(name, std::move(shape), data);
  }
  // Sets a model output (a Copy first when x is not contiguous).
  void output(const std::string& name, int x);

  // ---- views (no node) ----
  // Same elements in a new shape (one dim may be -1). A Copy first when x's strides cannot
  // express it (as torch's reshape).
  int reshape(int x, std::vector<int64_t> shape);
  int permute(int x, const std::vector<int>& perm);
  int slice(int x, int axis, int64_t start, int64_t end);  // [start, end), step 1
  int select(int x, int axis, int64_t index);               // that index; the axis goes
  // NumPy broadcasting to `shape` (x's dims align to the right; size-1 dims get stride 0).
  int broadcast(int x, const std::vector<int64_t>& shape);

  // ---- ops ----
  int contiguous(int x);  // x itself when already contiguous, else a Copy
  // act(x W^T + b) (+ residual): x [.., K] -> [.., N]; x any row-strided view.
  // relu_out: max(., 0) after the residual is added (LinearOp::relu_out).
  int linear(const std::string& name, int x, const LinearWeight* w, Act act = Act::None, int residual = -1,
             bool relu_out = false);
  int layernorm(const std::string& name, int x, const float* gamma, const float* beta, float eps);
  // Optional additive terms on the scaled scores (AttentionOp): tensor ids, -1 for absent.
  struct AttentionTerms {
    int bias = -1;               // [Hb, Tq, Tk], Hb = 1 or H (Swin's relative position bias)
    int mask = -1;               // [nW, Tq, Tk]; batch b uses window b % nW (Swin's shift mask)
    int rel_h = -1, rel_w = -1;  // [2 gh - 1, Dh], [2 gw - 1, Dh]: SAM's decomposed rel-pos
    int64_t grid_h = 0, grid_w = 0;  // the token grid of rel_h / rel_w (Tq = Tk = gh * gw)
  };
  // q [B, Tq, H, Dh], k and v [B, Tk, H, Dh] (views; Dh contiguous) -> [B, Tq, H*Dh].
  int attention(const std::string& name, int q, int k, int v, float scale, const AttentionTerms& terms);
  int attention(const std::string& name, int q, int k, int v, float scale) {
    return attention(name, q, k, v, scale, AttentionTerms{});
  }
  // Self-attention over a fused qkv [B, T, 3*H*Dh] (q, k, v blocks of H heads) -> [B, T, H*Dh].
  int self_attention(const std::string& name, int qkv, int64_t heads, float scale);
  int pad(const std::string& name, int x, const std::vector<int64_t>& lo, const std::vector<int64_t>& hi,
          float value = 0.0f);
  // torch.roll(x, shifts, dims): shifts may be negative or exceed the size.
  int roll(const std::string& name, int x, const std::vector<int64_t>& shifts, const std::vector<int>& axes);
  int concat(const std::string& name, const std::vector<int>& xs, int axis);
  // b (and c) broadcast to a's shape.
  int add(const std::string& name, int a, int b, float alpha = 1.0f);  // alpha * (a + b)
  int mul(const std::string& name, int a, int b);
  int add_mul(const std::string& name, int a, int b, int c);  // a + b * c
  int act_mul(const std::string& name, int a, int b, Act act);  // act(a) * b
  int activation(const std::string& name, int x, Act act);
  int mean(const std::string& name, int x, int axis);  // that axis removed
  // Nearest upsampling of an NHWC map by an integer factor (a broadcast view, then a Copy).
  int upsample_nearest(const std::string& name, int x, int64_t factor);

  // ---- NHWC convolution (x: [B, H, W, C] map, or NCHW pixels [B, C, H, W] when nchw) ----
  // A 1x1 stride-1 conv is the Linear itself; any other is Im2col + Linear (the Im2col is
  // fused into the GEMM by Graph::finalize where it can be). w: [OC, KH*KW*C] in (ky, kx, c)
  // column order.
  int conv2d(const std::string& name, int x, const LinearWeight* w, const ConvAxis& h, const ConvAxis& wd, Act act,
             int residual = -1, bool nchw = false, bool relu_out = false);
  int dwconv2d(const std::string& name, int x, const float* taps, const float* bias, const ConvAxis& h,
               const ConvAxis& wd, Act act);
  int pool2d(const std::string& name, int x, PoolKind kind, const ConvAxis& h, const ConvAxis& wd,
             bool count_include_pad = true);

 private:
  int node(OpType op, const std::string& name, std::vector<int> in, std::vector<int64_t> out_shape, OpParams p);
  int eltwise(const std::string& name, std::vector<int> in, EltKind kind, Act act, float alpha);
  int axis_of(int x, int axis) const;  // negative axes count from the end
  ConvGeom nhwc_geom(const std::string& name, int* x, const ConvAxis& h, const ConvAxis& wd);
  Graph& g_;
};

}  // namespace pyvitcpp
