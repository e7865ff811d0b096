// Node-building helpers shared by the transformer-tower builders (ViT, DeiT, DINOv2, CLIP,
// SigLIP): one call per op instead of a hand-filled Node at each use, so a new variant composes
// these rather than copying blocks of field assignments.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "core/graph.h"

namespace pyvitcpp {

class TowerBuilder {
 public:
  explicit TowerBuilder(Graph& g) : g_(g) {}
  Graph& graph() { return g_; }

  int tensor(const std::string& name, std::vector<int64_t> shape, int64_t rows, int64_t cols) {
    return g_.add_tensor(name, std::move(shape), rows, cols);
  }

  // act(x W^T + b) (+ residual when residual >= 0): [rows, K] -> [rows, w->N].
  int linear(const std::string& name, int x, const LinearWeight* w, int64_t rows, std::vector<int64_t> shape,
             Act act = Act::None, int residual = -1) {
    int out = g_.add_tensor(name, std::move(shape), rows, w->N);
    Node n{OpType::Linear, name};
    n.out = out;
    n.in = {x};
    n.w = w;
    n.act = act;
    n.residual = residual;
    g_.add_node(n);
    return out;
  }

  int layernorm(const std::string& name, int x, const float* gamma, const float* beta, float eps) {
    const TensorDesc& t = g_.tensor(x);
    std::vector<int64_t> shape = t.shape;
    int out = g_.add_tensor(name, std::move(shape), t.rows, t.cols);
    Node n{OpType::LayerNorm, name};
    n.out = out;
    n.in = {x};
    n.gamma = gamma;
    n.beta = beta;
    n.eps = eps;
    g_.add_node(n);
    return out;
  }

  // Per image of x [B, T, D] -> [B, D] (see token_pool).
  int pool(const std::string& name, int x, int64_t B, int64_t T, PoolMode mode, int64_t t0, int64_t t1) {
    const int64_t D = g_.tensor(x).cols;
    int out = g_.add_tensor(name, {B, D}, B, D);
    Node n{OpType::TokenPool, name};
    n.out = out;
    n.in = {x};
    n.B = B;
    n.T = T;
    n.pool = mode;
    n.tok0 = t0;
    n.tok1 = t1;
    g_.add_node(n);
    return out;
  }

  // residual + scale[col] * t (layer scale).
  int scale_residual(const std::string& name, int residual, int t, const float* scale) {
    const TensorDesc& r = g_.tensor(residual);
    std::vector<int64_t> shape = r.shape;
    int out = g_.add_tensor(name, std::move(shape), r.rows, r.cols);
    Node n{OpType::ScaleResidual, name};
    n.out = out;
    n.in = {residual, t};
    n.gamma = scale;
    g_.add_node(n);
    return out;
  }

  // alpha * (a + b).
  int add_scaled(const std::string& name, int a, int b, float alpha) {
    const TensorDesc& t = g_.tensor(a);
    std::vector<int64_t> shape = t.shape;
    int out = g_.add_tensor(name, std::move(shape), t.rows, t.cols);
    Node n{OpType::AddScaled, name};
    n.out = out;
    n.in = {a, b};
    n.alpha = alpha;
    g_.add_node(n);
    return out;
  }

  // Self-attention over fused qkv [B * T, 3 * heads * Dh] -> [B * T, heads * Dh].
  int self_attention(const std::string& name, int qkv, int64_t B, int64_t T, int64_t heads, int64_t Dh) {
    int out = g_.add_tensor(name, {B, T, heads * Dh}, B * T, heads * Dh);
    Node n{OpType::Attention, name};
    n.out = out;
    n.in = {qkv};
    n.B = B;
    n.T = T;
    n.H = heads;
    n.Dh = Dh;
    g_.add_node(n);
    return out;
  }

  // x + layer_scale * (h W^T + b), or the fused residual Linear when there is no layer scale.
  int residual_linear(const std::string& name, int x, int h, const LinearWeight* w, const float* layer_scale) {
    const TensorDesc& xt = g_.tensor(x);
    const int64_t rows = xt.rows;
    std::vector<int64_t> shape = xt.shape;
    if (!layer_scale) return linear(name, h, w, rows, shape, Act::None, x);
    int t = linear(name + "_branch", h, w, rows, shape);
    return scale_residual(name, x, t, layer_scale);
  }

 private:
  Graph& g_;
};

}  // namespace pyvitcpp
