// A small static DAG of named ops over F32 activations, its memory plan and its executor.
//
// Activations are 2-D row-major [rows, cols] buffers (a [B, T, D] tensor is rows = B*T);
// `shape` keeps the logical shape for outputs. Builders add nodes in execution order; fused
// work is an explicit op (Linear carries bias + activation + residual), never a hidden rewrite.
#pragma once
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/aligned.h"
#include "core/threadpool.h"
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
  const float* bias = nullptr;
};

enum class OpType {
  Patchify,     // pixels [B, C, H, W] -> [B * gh * gw, C * p * p] (conv weight order c, ky, kx)
  Linear,       // act(X W^T + b) + residual
  EmbedTokens,  // [prefix tokens..., patch tokens] + position table -> [B * T, D]
  LayerNorm,
  Attention,    // fused qkv [B * T, 3 * H * Dh] -> [B * T, H * Dh]
  TokenPool,    // per image: one token, the mean of two tokens, or the mean of a token range
  AddScaled,    // alpha * (a + b)
  ScaleResidual,  // in[0] + gamma[col] * in[1] (layer scale)
  // ---- CNN ops ----
  // NHWC activations: [B, H, W, C] is rows = B*H*W, cols = C (ops/conv_ops.h).
  Im2col,         // NHWC (or NCHW pixels) -> [B*OH*OW, KH*KW*Cg], columns (ky, kx, c); then a Linear
  DwConv,         // depthwise conv + bias + activation, NHWC -> NHWC
  Pool2d,         // max / average pooling, NHWC
  GlobalAvgPool,  // [B*HW, C] -> [B, C]
  Activation,     // elementwise act (e.g. ReLU after a residual add)
  ToNCHW,         // [B*H*W, C] -> [B, C, H, W] (feature-map outputs, timm's layout)
  // ---- vision-tower ops (CLIP / SigLIP / DINOv2) ----
  EmbedPrefixed,   // [prefix rows, patch tokens] + position rows (n_pos_prefix of the prefix have one)
  SwiGLU,          // [rows, 2F] -> silu(first half) * second half
  TokenSlice,      // [B, T, D] -> [B, tok1 - tok0, D]
  FeatureMap,      // tokens tok0.. of [B, T, D] on a gh x gw grid -> [B, D, gh, gw]
  QueryAttention,  // one constant query (Dh per head, shared by the batch) over kv [B * Tk, 2 * D] -> [B, D]
};

enum class PoolMode { Token, MeanOfTwo, MeanRange };

struct Node {
  Node(OpType o, std::string nm) : op(o), name(std::move(nm)) {}
  OpType op;
  std::string name;
  int out = -1;
  std::vector<int> in;
  // Linear
  const LinearWeight* w = nullptr;
  Act act = Act::None;
  int residual = -1;
  // LayerNorm
  const float* gamma = nullptr;
  const float* beta = nullptr;
  float eps = 0.0f;
  // Attention / EmbedTokens / TokenPool / Patchify geometry
  int64_t B = 0, T = 0, H = 0, Dh = 0;
  int64_t C = 0, img_h = 0, img_w = 0, patch = 0;
  const float* cls = nullptr;
  const float* dist = nullptr;
  const float* pos = nullptr;
  int64_t n_prefix = 0;
  PoolMode pool = PoolMode::Token;
  int64_t tok0 = 0, tok1 = 0;
  float alpha = 1.0f;
  // vision-tower ops
  const float* prefix = nullptr;  // EmbedPrefixed: [n_prefix, D]
  int64_t n_pos_prefix = 0;
  const float* query = nullptr;   // QueryAttention: [D] (already projected)
  int64_t grid_h = 0, grid_w = 0;
  // CNN ops: geometry (B and C above: batch and input channels), Im2col's channel slice
  // [c0, c0 + cg) and pixel layout, DwConv's tap-major weights, Pool2d's kind.
  ConvAxis ch, cw;
  int64_t c0 = 0, cg = 0;
  bool nchw = false;
  // Linear only: in[0] is an NHWC map and X is its im2col by the geometry above (an Im2col
  // node fused into this GEMM by finalize(); the GEMM gathers the rows as it packs them).
  bool gather = false;
  const float* dw_w = nullptr;
  const float* dw_b = nullptr;
  PoolKind pool_kind = PoolKind::Max;
  bool count_include_pad = true;
};

struct TensorDesc {
  std::string name;
  std::vector<int64_t> shape;  // logical shape
  int64_t rows = 0, cols = 0;
  size_t offset = 0;           // in the arena, set by the planner
  int alias_of = -1;           // shares the buffer of that tensor (in-place op)
  bool is_input = false;
};

// A counter on its own cache line (the executor's per-node share counters).
struct alignas(64) GraphCounter {
  std::atomic<int> v{0};
};

class Graph {
 public:
  // ---- building ----
  int add_input(const std::string& name, std::vector<int64_t> shape, int64_t rows, int64_t cols);
  int add_tensor(const std::string& name, std::vector<int64_t> shape, int64_t rows, int64_t cols);
  void add_node(Node n);
  void set_output(const std::string& name, int tensor);

  // Keeps only the nodes needed for `outputs` (each must have been set), then plans memory.
  void finalize(const std::vector<std::string>& outputs, const KernelTable& kt, int max_threads);

  // ---- running ----
  // input: the single input tensor's data; outs: name -> destination (rows * cols floats).
  void execute(ThreadPool& pool, int nth, const float* input, const std::map<std::string, float*>& outs);

  const TensorDesc& tensor(int id) const { return tensors_[id]; }
  int output_tensor(const std::string& name) const;
  const std::vector<Node>& nodes() const { return nodes_; }
  size_t arena_bytes() const { return arena_bytes_; }
  size_t workspace_bytes() const { return ws_bytes_per_thread_ * static_cast<size_t>(ws_slices_); }

 private:
  void fuse_im2col();
  void plan();
  float* ptr(int id, const float* input);
  void exec_node(const Node& n, const float* input, int ith, int nth);
  void execute_profiled(ThreadPool& pool, int nth, const float* input);  // PYVITCPP_PROFILE=1
  // Runs every node (shares claimed dynamically, see graph.cpp); node_secs: per-node time or null.
  void run_nodes(ThreadPool& pool, int nth, const float* input, double* node_secs);
  int node_chunks(const Node& n, int nth) const;

  std::vector<TensorDesc> tensors_;
  std::vector<Node> nodes_;
  std::map<std::string, int> outputs_;
  std::vector<std::string> requested_;
  const KernelTable* kt_ = nullptr;
  int max_threads_ = 1;
  size_t arena_bytes_ = 0;
  size_t ws_bytes_per_thread_ = 0;
  AlignedBuffer arena_;
  AlignedBuffer workspace_;
  int ws_slices_ = 1;  // attention workspace slices: the most shares an Attention node runs as
  std::unique_ptr<GraphCounter[]> sync_;  // per node: next share to claim, shares done
  size_t sync_n_ = 0;
  std::atomic<int> shares_by_workers_{0};  // PYVITCPP_PROFILE: shares not run by the caller
};

}  // namespace pyvitcpp
