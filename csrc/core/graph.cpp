#include "core/graph.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <cstring>
#include <numeric>
#include <set>
#include <stdexcept>

#include "ops/conv_ops.h"
#include "ops/token_ops.h"
#include "ops/tower_ops.h"
#include "core/blocks.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#define PYVITCPP_GRAPH_PAUSE() _mm_pause()
#else
#define PYVITCPP_GRAPH_PAUSE() ((void)0)
#endif

namespace pyvitcpp {

namespace {

// M and K of a Linear: its input's rows and columns, or for a gathering Linear (an Im2col fused
// into it) the conv's output pixels and taps x channels.
void linear_mk(const Node& n, const TensorDesc& in0, int64_t* M, int64_t* K) {
  if (n.gather) {
    *M = n.B * n.ch.out * n.cw.out;
    *K = n.ch.k * n.cw.k * n.cg;
  } else {
    *M = in0.rows;
    *K = in0.cols;
  }
}

}  // namespace

int Graph::add_input(const std::string& name, std::vector<int64_t> shape, int64_t rows, int64_t cols) {
  int id = add_tensor(name, std::move(shape), rows, cols);
  tensors_[id].is_input = true;
  return id;
}

int Graph::add_tensor(const std::string& name, std::vector<int64_t> shape, int64_t rows, int64_t cols) {
  TensorDesc t;
  t.name = name;
  t.shape = std::move(shape);
  t.rows = rows;
  t.cols = cols;
  tensors_.push_back(std::move(t));
  return static_cast<int>(tensors_.size()) - 1;
}

void Graph::add_node(Node n) { nodes_.push_back(std::move(n)); }

void Graph::set_output(const std::string& name, int tensor) { outputs_[name] = tensor; }

int Graph::output_tensor(const std::string& name) const {
  auto it = outputs_.find(name);
  if (it == outputs_.end()) throw std::invalid_argument("this model has no output named '" + name + "'");
  return it->second;
}

void Graph::finalize(const std::vector<std::string>& outputs, const KernelTable& kt, int max_threads) {
  kt_ = &kt;
  max_threads_ = max_threads < 1 ? 1 : max_threads;
  requested_ = outputs;
  // Dead-node elimination: walk back from the requested outputs.
  std::vector<bool> needed(tensors_.size(), false);
  for (const auto& name : outputs) needed[output_tensor(name)] = true;
  std::vector<Node> kept;
  for (auto it = nodes_.rbegin(); it != nodes_.rend(); ++it) {
    if (!needed[it->out]) continue;
    for (int i : it->in) needed[i] = true;
    if (it->residual >= 0) needed[it->residual] = true;
    kept.push_back(std::move(*it));
  }
  std::reverse(kept.begin(), kept.end());
  nodes_ = std::move(kept);
  fuse_im2col();
  plan();
}

// An Im2col of an NHWC map whose only reader is the next node, an F32/F16 Linear, becomes
// that GEMM's gather (GemmArgs::conv): the im2col matrix is never written (ResNet-50 at batch 1
// wrote and re-read 7 MB for each layer-1 3x3 conv). NCHW pixels (the stem) and block-quantized
// weights keep the Im2col op.
void Graph::fuse_im2col() {
  std::vector<int> readers(tensors_.size(), 0);
  for (const Node& n : nodes_) {
    for (int t : n.in) readers[t]++;
    if (n.residual >= 0) readers[n.residual]++;
  }
  std::set<int> outs;
  for (const auto& name : requested_) outs.insert(output_tensor(name));
  std::vector<Node> kept;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    Node& c = nodes_[i];
    if (c.op == OpType::Im2col && !c.nchw && i + 1 < nodes_.size() && readers[c.out] == 1 && !outs.count(c.out)) {
      Node& l = nodes_[i + 1];
      if (l.op == OpType::Linear && l.in.size() == 1 && l.in[0] == c.out && !is_block_quant(l.w->type)) {
        l.gather = true;
        l.in[0] = c.in[0];
        l.B = c.B;
        l.C = c.C;
        l.c0 = c.c0;
        l.cg = c.cg;
        l.ch = c.ch;
        l.cw = c.cw;
        continue;  // drop the Im2col
      }
    }
    kept.push_back(std::move(c));
  }
  nodes_ = std::move(kept);
}

// Liveness-based placement: every non-input tensor lives from the node that writes it to the
// last node that reads it (outputs: to the end). An in-place Linear (residual dies at that
// node) shares its residual's buffer. Buffers are placed largest first at the lowest offset
// that overlaps no placed buffer with an overlapping lifetime.
void Graph::plan() {
  const int nt = static_cast<int>(tensors_.size());
  const int end = static_cast<int>(nodes_.size());
  std::vector<int> first(nt, -1), last(nt, -1);
  for (int i = 0; i < end; ++i) {
    const Node& n = nodes_[i];
    if (first[n.out] < 0) first[n.out] = i;
    last[n.out] = std::max(last[n.out], i);
    for (int t : n.in) last[t] = std::max(last[t], i);
    if (n.residual >= 0) last[n.residual] = std::max(last[n.residual], i);
  }
  std::set<int> outs;
  for (const auto& name : requested_) outs.insert(output_tensor(name));
  for (int t : outs) last[t] = end;

  // In-place residual: the output takes the residual's buffer when the residual is an
  // intermediate whose last reader is this very node.
  for (int i = 0; i < end; ++i) {
    Node& n = nodes_[i];
    if (n.op != OpType::Linear || n.residual < 0) continue;
    const TensorDesc& r = tensors_[n.residual];
    if (!r.is_input && !outs.count(n.residual) && last[n.residual] == i && r.alias_of < 0 && n.in[0] != n.residual &&
        r.rows == tensors_[n.out].rows && r.cols == tensors_[n.out].cols)
      tensors_[n.out].alias_of = n.residual;
  }
  auto root = [&](int t) {
    while (tensors_[t].alias_of >= 0) t = tensors_[t].alias_of;
    return t;
  };
  // Group lifetimes and sizes by buffer root.
  std::vector<int> g_first(nt, -1), g_last(nt, -1);
  std::vector<size_t> g_size(nt, 0);
  for (int t = 0; t < nt; ++t) {
    if (tensors_[t].is_input || first[t] < 0) continue;
    int r = root(t);
    size_t bytes = static_cast<size_t>(tensors_[t].rows * tensors_[t].cols) * sizeof(float);
    bytes = (bytes + 63) / 64 * 64;
    g_size[r] = std::max(g_size[r], bytes);
    g_first[r] = g_first[r] < 0 ? first[t] : std::min(g_first[r], first[t]);
    g_last[r] = std::max(g_last[r], last[t]);
  }
  std::vector<int> order;
  for (int t = 0; t < nt; ++t)
    if (g_size[t] > 0) order.push_back(t);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return g_size[a] > g_size[b]; });
  struct Placed { size_t off, size; int first, last; };
  std::vector<Placed> placed;
  std::vector<size_t> offset(nt, 0);
  size_t total = 0;
  for (int t : order) {
    std::vector<std::pair<size_t, size_t>> busy;
    for (const Placed& p : placed)
      if (!(p.last < g_first[t] || g_last[t] < p.first)) busy.push_back({p.off, p.off + p.size});
    std::sort(busy.begin(), busy.end());
    size_t off = 0;
    for (auto& b : busy) {
      if (off + g_size[t] <= b.first) break;
      off = std::max(off, b.second);
    }
    offset[t] = off;
    placed.push_back({off, g_size[t], g_first[t], g_last[t]});
    total = std::max(total, off + g_size[t]);
  }
  for (int t = 0; t < nt; ++t)
    if (!tensors_[t].is_input) tensors_[t].offset = offset[root(t)];
  arena_bytes_ = total;
  arena_.resize(arena_bytes_);

  ws_bytes_per_thread_ = 0;
  for (const Node& n : nodes_) {
    if (n.op != OpType::Attention && n.op != OpType::QueryAttention) continue;
    AttentionArgs a;
    a.B = n.B; a.H = n.H; a.Tq = n.op == OpType::QueryAttention ? 1 : n.T; a.Tk = n.T; a.Dh = n.Dh;
    ws_bytes_per_thread_ = std::max(ws_bytes_per_thread_, (kt_->attention_workspace(a) + 63) / 64 * 64);
    ws_slices_ = std::max(ws_slices_, node_chunks(n, max_threads_));
  }
  workspace_.resize(ws_bytes_per_thread_ * static_cast<size_t>(ws_slices_));
}

float* Graph::ptr(int id, const float* input) {
  if (tensors_[id].is_input) return const_cast<float*>(input);
  return reinterpret_cast<float*>(arena_.data() + tensors_[id].offset);
}

void Graph::exec_node(const Node& n, const float* input, int ith, int nth) {
  float* out = ptr(n.out, input);
  switch (n.op) {
    case OpType::Patchify:
      patchify(ptr(n.in[0], input), n.B, n.C, n.img_h, n.img_w, n.patch, out, ith, nth);
      break;
    case OpType::Linear: {
      const TensorDesc& x = tensors_[n.in[0]];
      GemmArgs a;
      linear_mk(n, x, &a.M, &a.K);
      a.N = n.w->N;
      ConvGather g;
      if (n.gather) {
        g = conv_geometry(n, ptr(n.in[0], input));
        a.conv = &g;
      } else {
        a.X = ptr(n.in[0], input);
        a.ldx = x.cols;
      }
      a.W_raw = n.w->raw;
      a.wtype = n.w->type;
      a.W_packed = n.w->packed.empty() ? nullptr : n.w->packed.data();
      a.bias = n.w->bias;
      a.act = n.act;
      if (n.residual >= 0) {
        a.residual = ptr(n.residual, input);
        a.ldr = tensors_[n.residual].cols;
      }
      a.Y = out;
      a.ldy = a.N;
      if (is_block_quant(a.wtype)) kt_->qgemm(a, ith, nth);
      else kt_->gemm(a, ith, nth);
      break;
    }
    case OpType::EmbedTokens: {
      const TensorDesc& o = tensors_[n.out];
      embed_tokens(ptr(n.in[0], input), n.cls, n.dist, n.pos, n.B, n.T - n.n_prefix, n.n_prefix, o.cols,
                   out, ith, nth);
      break;
    }
    case OpType::LayerNorm: {
      const TensorDesc& x = tensors_[n.in[0]];
      LayerNormArgs a;
      a.rows = x.rows;
      a.D = x.cols;
      a.X = ptr(n.in[0], input);
      a.ldx = x.cols;
      a.Y = out;
      a.ldy = x.cols;
      a.gamma = n.gamma;
      a.beta = n.beta;
      a.eps = n.eps;
      kt_->layernorm(a, ith, nth);
      break;
    }
    case OpType::Attention: {
      const float* qkv = ptr(n.in[0], input);
      const int64_t D = n.H * n.Dh;
      AttentionArgs a;
      a.B = n.B; a.H = n.H; a.Tq = n.T; a.Tk = n.T; a.Dh = n.Dh;
      a.Q = qkv;
      a.K = qkv + D;
      a.V = qkv + 2 * D;
      a.q_sb = a.k_sb = a.v_sb = n.T * 3 * D;
      a.q_st = a.k_st = a.v_st = 3 * D;
      a.q_sh = a.k_sh = a.v_sh = n.Dh;
      a.O = out;
      a.o_sb = n.T * D;
      a.o_st = D;
      a.o_sh = n.Dh;
      a.scale = 1.0f / std::sqrt(static_cast<float>(n.Dh));
      kt_->attention(a, workspace_.data(), ith, nth);
      break;
    }
    case OpType::TokenPool: {
      const TensorDesc& x = tensors_[n.in[0]];
      token_pool(ptr(n.in[0], input), n.B, n.T, x.cols, static_cast<int>(n.pool), n.tok0, n.tok1, out, ith, nth);
      break;
    }
    case OpType::AddScaled: {
      const TensorDesc& o = tensors_[n.out];
      add_scaled(ptr(n.in[0], input), ptr(n.in[1], input), n.alpha, out, o.rows * o.cols, ith, nth);
      break;
    }
    case OpType::ScaleResidual: {
      const TensorDesc& o = tensors_[n.out];
      scale_residual(ptr(n.in[0], input), ptr(n.in[1], input), n.gamma, out, o.rows, o.cols, ith, nth);
      break;
    }
    case OpType::EmbedPrefixed: {
      const TensorDesc& o = tensors_[n.out];
      embed_prefixed(ptr(n.in[0], input), n.prefix, n.pos, n.B, n.T - n.n_prefix, n.n_prefix, n.n_pos_prefix, o.cols,
                     out, ith, nth);
      break;
    }
    case OpType::SwiGLU: {
      const TensorDesc& o = tensors_[n.out];
      swiglu(ptr(n.in[0], input), o.rows, o.cols, out, ith, nth);
      break;
    }
    case OpType::TokenSlice: {
      const TensorDesc& x = tensors_[n.in[0]];
      token_slice(ptr(n.in[0], input), n.B, n.T, x.cols, n.tok0, n.tok1, out, ith, nth);
      break;
    }
    case OpType::FeatureMap: {
      const TensorDesc& x = tensors_[n.in[0]];
      feature_map(ptr(n.in[0], input), n.B, n.T, x.cols, n.tok0, n.grid_h, n.grid_w, out, ith, nth);
      break;
    }
    case OpType::QueryAttention: {
      // The query is the same for every image (a learned probe): batch stride 0.
      const float* kv = ptr(n.in[0], input);
      const int64_t D = n.H * n.Dh;
      AttentionArgs a;
      a.B = n.B; a.H = n.H; a.Tq = 1; a.Tk = n.T; a.Dh = n.Dh;
      a.Q = n.query;
      a.q_sb = 0; a.q_st = D; a.q_sh = n.Dh;
      a.K = kv;
      a.V = kv + D;
      a.k_sb = a.v_sb = n.T * 2 * D;
      a.k_st = a.v_st = 2 * D;
      a.k_sh = a.v_sh = n.Dh;
      a.O = out;
      a.o_sb = D; a.o_st = D; a.o_sh = n.Dh;
      a.scale = 1.0f / std::sqrt(static_cast<float>(n.Dh));
      kt_->attention(a, workspace_.data(), ith, nth);
      break;
    }
    case OpType::Im2col:
    case OpType::DwConv:
    case OpType::Pool2d:
    case OpType::GlobalAvgPool:
    case OpType::Activation:
    case OpType::ToNCHW:
      exec_cnn_op(*kt_, n, ptr(n.in[0], input), tensors_[n.in[0]], out, tensors_[n.out], ith, nth);
      break;
  }
}

namespace {

const char* op_type_name(OpType t) {
  switch (t) {
    case OpType::Patchify: return "Patchify";
    case OpType::Linear: return "Linear";
    case OpType::EmbedTokens: return "EmbedTokens";
    case OpType::LayerNorm: return "LayerNorm";
    case OpType::Attention: return "Attention";
    case OpType::TokenPool: return "TokenPool";
    case OpType::AddScaled: return "AddScaled";
    case OpType::ScaleResidual: return "ScaleResidual";
    case OpType::Im2col: return "Im2col";
    case OpType::DwConv: return "DwConv";
    case OpType::Pool2d: return "Pool2d";
    case OpType::GlobalAvgPool: return "GlobalAvgPool";
    case OpType::Activation: return "Activation";
    case OpType::ToNCHW: return "ToNCHW";
    case OpType::EmbedPrefixed: return "EmbedPrefixed";
    case OpType::SwiGLU: return "SwiGLU";
    case OpType::TokenSlice: return "TokenSlice";
    case OpType::FeatureMap: return "FeatureMap";
    case OpType::QueryAttention: return "QueryAttention";
  }
  return "op";
}

// PYVITCPP_PROFILE=1: per-node wall time (thread 0, node start to the barrier after it, so a
// node's time includes waiting for the slowest thread), summed by op and shape, printed to
// stderr after every run. Off by default: the check is one branch per run.
bool profile_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("PYVITCPP_PROFILE");
    return e && *e && std::strcmp(e, "0") != 0;
  }();
  return on;
}

// Arithmetic of a node for the GFLOP/s column (multiply-add = 2).
double node_flops(const Node& n, const TensorDesc& in0) {
  if (n.op == OpType::Linear) {
    int64_t M, K;
    linear_mk(n, in0, &M, &K);
    return 2.0 * static_cast<double>(M) * static_cast<double>(n.w->N) * static_cast<double>(K);
  }
  if (n.op == OpType::Attention) return 4.0 * n.B * n.H * static_cast<double>(n.T) * n.T * n.Dh;
  return 0.0;
}

}  // namespace

// Work split of a node: a node runs as `chunks` disjoint shares (the kernels' (ith, nth)
// convention with nth = chunks) that threads claim from a counter, so a thread that is late
// (descheduled on a loaded machine, or just slower) leaves its shares to the others instead
// of stalling them at a barrier. GEMMs big enough to amortise the repeated X packing get
// more shares than threads, so a preempted thread holds back less work.
int Graph::node_chunks(const Node& n, int nth) const {
  if (nth <= 1) return 1;
  switch (n.op) {
    case OpType::Linear: {
      static const int forced = [] {
        const char* e = std::getenv("PYVITCPP_GEMM_CHUNKS");
        return e ? std::atoi(e) : 0;
      }();
      if (forced > 0) return nth * forced;
      const double flops = node_flops(n, tensors_[n.in[0]]);
      return nth * (flops >= 1.5e9 ? 4 : flops >= 3e8 ? 2 : 1);
    }
    case OpType::Attention: return nth * 2;
    default: return nth;
  }
}

namespace {

inline void wait_for(const std::atomic<int>& c, int target) {
  int spins = 0;
  while (c.load(std::memory_order_acquire) < target) {
    if (++spins < 2048) PYVITCPP_GRAPH_PAUSE();
    else std::this_thread::yield();
  }
}

}  // namespace

void Graph::run_nodes(ThreadPool& pool, int nth, const float* input, double* node_secs) {
  const size_t nn = nodes_.size();
  if (!sync_ || sync_n_ < 2 * nn) {
    sync_.reset(new GraphCounter[2 * nn]);
    sync_n_ = 2 * nn;
  }
  GraphCounter* next = sync_.get();
  GraphCounter* done = sync_.get() + nn;
  for (size_t i = 0; i < nn; ++i) {
    next[i].v.store(0, std::memory_order_relaxed);
    done[i].v.store(0, std::memory_order_relaxed);
  }
  using clock = std::chrono::steady_clock;
  pool.run_optional(nth, [&](int ith) {
    auto t0 = clock::now();
    for (size_t i = 0; i < nn; ++i) {
      const Node& n = nodes_[i];
      const int nc = node_chunks(n, nth);
      int c;
      while ((c = next[i].v.fetch_add(1, std::memory_order_relaxed)) < nc) {
        exec_node(n, input, c, nc);
        done[i].v.fetch_add(1, std::memory_order_acq_rel);
        if (node_secs && ith != 0) shares_by_workers_.fetch_add(1, std::memory_order_relaxed);
      }
      wait_for(done[i].v, nc);
      if (node_secs && ith == 0) {
        const auto t1 = clock::now();
        node_secs[i] = std::chrono::duration<double>(t1 - t0).count();
        t0 = t1;
      }
    }
  });
}

void Graph::execute(ThreadPool& pool, int nth, const float* input, const std::map<std::string, float*>& outs) {
  if (nth > max_threads_) nth = max_threads_;
  if (profile_enabled()) execute_profiled(pool, nth, input);
  else run_nodes(pool, nth, input, nullptr);
  for (const auto& kv : outs) {
    const int id = output_tensor(kv.first);
    const TensorDesc& t = tensors_[id];
    std::memcpy(kv.second, ptr(id, input), sizeof(float) * static_cast<size_t>(t.rows * t.cols));
  }
}

void Graph::execute_profiled(ThreadPool& pool, int nth, const float* input) {
  using clock = std::chrono::steady_clock;
  std::vector<double> secs(nodes_.size(), 0.0);
  shares_by_workers_.store(0);
  const auto t_start = clock::now();
  run_nodes(pool, nth, input, secs.data());
  const double total = std::chrono::duration<double>(clock::now() - t_start).count();
  struct Agg { int count = 0; double s = 0, flops = 0; };
  std::map<std::string, Agg> by;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const Node& n = nodes_[i];
    const TensorDesc& x = tensors_[n.in[0]];
    int64_t rows = x.rows, cols = x.cols;
    if (n.op == OpType::Linear) linear_mk(n, x, &rows, &cols);
    std::string key = std::string(n.gather ? "Conv" : op_type_name(n.op)) + " " + std::to_string(rows) + "x" +
                      std::to_string(cols);
    if (n.op == OpType::Linear) key += "->" + std::to_string(n.w->N);
    Agg& a = by[key];
    a.count++;
    a.s += secs[i];
    a.flops += node_flops(n, x);
  }
  std::vector<std::pair<std::string, Agg>> rows(by.begin(), by.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.s > b.second.s; });
  double tf = 0;
  for (auto& r : rows) tf += r.second.flops;
  int shares = 0;
  for (const Node& n : nodes_) shares += node_chunks(n, nth);
  std::fprintf(stderr, "pyvitcpp profile: %zu nodes, %d threads, %.2f ms, %.1f GFLOP/s, %d of %d shares run by workers\n",
               nodes_.size(), nth, total * 1e3, tf / total * 1e-9, shares_by_workers_.load(), shares);
  for (auto& r : rows)
    std::fprintf(stderr, "  %-34s x%-3d %9.3f ms %5.1f%% %7.1f GFLOP/s\n", r.first.c_str(), r.second.count,
                 r.second.s * 1e3, 100.0 * r.second.s / total, r.second.flops > 0 ? r.second.flops / r.second.s * 1e-9 : 0.0);
}

}  // namespace pyvitcpp
