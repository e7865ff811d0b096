#include "graph/graph.h"

#include "core/checked.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <stdexcept>
#include <thread>

#include "core/blocks.h"
#include "ops/registry.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#define PYVITCPP_GRAPH_PAUSE() _mm_pause()
#else
#define PYVITCPP_GRAPH_PAUSE() ((void)0)
#endif

namespace pyvitcpp {

namespace {
constexpr size_t kMaxInputs = 16;
}  // namespace

int Graph::add_input(const std::string& name, std::vector<int64_t> shape) {
  int id = add_activation(name, std::move(shape));
  tensors_[id].storage = Storage::Input;
  return id;
}

int Graph::add_constant(const std::string& name, std::vector<int64_t> shape, const float* data) {
  int id = add_activation(name, std::move(shape));
  tensors_[id].storage = Storage::Constant;
  tensors_[id].data = data;
  return id;
}

int Graph::add_activation(const std::string& name, std::vector<int64_t> shape) {
  if (shape.size() > static_cast<size_t>(kMaxDims))
    throw std::logic_error("tensor '" + name + "' has rank " + std::to_string(shape.size()) + " > " +
                           std::to_string(kMaxDims));
  // Shapes derive from hyper-parameters in the file and the input size: their element and
  // byte counts (the planner's sizes, numpy's strides) must not wrap.
  for (int64_t d : shape)
    if (d < 0) throw std::length_error("tensor '" + name + "' has a negative dimension " + std::to_string(d));
  checked_mul<std::length_error>(checked_product<std::length_error>(shape, "tensor '" + name + "' element count"),
                                 static_cast<int64_t>(sizeof(float)), "tensor '" + name + "' byte size");
  TensorDesc t;
  t.name = name;
  t.strides = contiguous_strides(shape);
  t.shape = std::move(shape);
  tensors_.push_back(std::move(t));
  return static_cast<int>(tensors_.size()) - 1;
}

int Graph::add_view(const std::string& name, int src, std::vector<int64_t> shape, std::vector<int64_t> strides,
                    int64_t elem_offset) {
  if (shape.size() != strides.size() || shape.size() > static_cast<size_t>(kMaxDims))
    throw std::logic_error("view '" + name + "': bad rank");
  const TensorDesc& s = tensors_.at(src);
  TensorDesc t;
  t.name = name;
  t.shape = std::move(shape);
  t.strides = std::move(strides);
  t.base = s.is_view() ? s.base : src;
  t.elem_offset = s.elem_offset + elem_offset;
  t.storage = tensors_[t.base].storage;
  tensors_.push_back(std::move(t));
  return static_cast<int>(tensors_.size()) - 1;
}

void Graph::add_node(Node n) {
  if (n.in.size() > kMaxInputs) throw std::logic_error("node '" + n.name + "' has too many inputs");
  const TensorDesc& o = tensors_.at(n.out);
  if (o.is_view() || o.storage != Storage::Activation || !o.contiguous())
    throw std::logic_error("node '" + n.name + "' must write a contiguous activation");
  nodes_.push_back(std::move(n));
}

void Graph::set_output(const std::string& name, int tensor) {
  if (!tensors_.at(tensor).contiguous()) throw std::logic_error("output '" + name + "' is not contiguous");
  outputs_[name] = tensor;
}

int Graph::output_tensor(const std::string& name) const {
  auto it = outputs_.find(name);
  if (it == outputs_.end()) throw std::invalid_argument("this model has no output named '" + name + "'");
  return it->second;
}

void Graph::finalize(const std::vector<std::string>& outputs, const KernelTable& kt, int max_threads) {
  kt_ = &kt;
  max_threads_ = max_threads < 1 ? 1 : max_threads;
  requested_ = outputs;
  // Dead-node elimination: walk back from the requested outputs (a view needs its base).
  std::vector<bool> needed(tensors_.size(), false);
  for (const auto& name : outputs) needed[owner(output_tensor(name))] = true;
  std::vector<Node> kept;
  for (auto it = nodes_.rbegin(); it != nodes_.rend(); ++it) {
    if (!needed[it->out]) continue;
    for (int i : it->in) needed[owner(i)] = true;
    kept.push_back(std::move(*it));
  }
  std::reverse(kept.begin(), kept.end());
  nodes_ = std::move(kept);
  fuse_im2col();
  fuse_concat();
  xd_.assign(nodes_.size(), {});
  for (size_t i = 0; i < nodes_.size(); ++i)
    for (int t : nodes_[i].in) xd_[i].push_back(&tensors_[t]);
  plan();
}

// An Im2col of an NHWC map or of NCHW pixels (the stem) whose only reader is the next node, an
// F32/F16 Linear, becomes that GEMM's gather (GemmArgs::conv): the im2col matrix is never
// written (ResNet-50 at batch 1 wrote and re-read 7 MB for each layer-1 3x3 conv; yolov8n's
// 640 x 640 stem 9 floats per input float). Block-quantized weights keep the Im2col op.
std::vector<int> Graph::reader_counts() const {
  std::vector<int> readers(tensors_.size(), 0);
  for (const Node& n : nodes_)
    for (int t : n.in) readers[owner(t)]++;
  return readers;
}

std::set<int> Graph::requested_owners() const {
  std::set<int> outs;
  for (const auto& name : requested_) outs.insert(owner(output_tensor(name)));
  return outs;
}

void Graph::fuse_im2col() {
  const std::vector<int> readers = reader_counts();
  const std::set<int> outs = requested_owners();
  std::vector<Node> kept;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    Node& c = nodes_[i];
    // The gather reads the map the Im2col reads, at its pixel stride (ConvGeom::C): a contiguous
    // map (an intermediate, or a reshape of one: a conv's output is the [B*H*W, OC] GEMM result
    // reshaped to NHWC, so chains of k x k convs fuse) or a channel slice of one (YOLO's C2f
    // chunks). The Linear may have a residual (in[1]: a k x k conv + shortcut, one epilogue).
    bool gatherable = false;
    if (c.op == OpType::Im2col) {
      const TensorDesc& src = tensors_[c.in[0]];
      const ConvGeom& g = c.as<Im2colOp>().conv;
      int64_t r, k, ld;
      gatherable = g.nchw ? src.contiguous()
                          : src.as_matrix(&r, &k, &ld) && k == g.cg && (ld == g.C || r == 1) && g.c0 == 0;
    }
    if (gatherable && i + 1 < nodes_.size() && readers[c.out] == 1 && !outs.count(c.out)) {
      Node& l = nodes_[i + 1];
      if (l.op == OpType::Linear && (l.in.size() == 1 || (l.in.size() == 2 && l.in[1] != c.out)) &&
          l.in[0] == c.out) {
        LinearOp& p = l.as<LinearOp>();
        if (!is_block_quant(p.w->type)) {
          p.gather = true;
          p.conv = c.as<Im2colOp>().conv;
          l.in[0] = c.in[0];
          continue;  // drop the Im2col
        }
      }
    }
    kept.push_back(std::move(c));
  }
  nodes_ = std::move(kept);
}

// A Concat along the last axis whose only reader is an F32/F16 Linear that reads all of it as
// its X (a YOLO C2f / SPPF / neck concat before a 1x1 conv) becomes that GEMM's column blocks
// (LinearOp::ncat, GemmArgs::cat): the GEMM gathers X's rows from the parts as it packs them, so
// the concatenated map is never written and re-read. PYVITCPP_FUSE_CONCAT=0 keeps the Concat.
void Graph::fuse_concat() {
  static const bool enabled = [] {
    const char* e = std::getenv("PYVITCPP_FUSE_CONCAT");
    return !(e && e[0] == '0');
  }();
  if (!enabled) return;
  const std::vector<int> readers = reader_counts();
  const std::set<int> outs = requested_owners();
  std::vector<bool> drop(nodes_.size(), false);
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const Node& c = nodes_[i];
    if (c.op != OpType::Concat || readers[c.out] != 1 || outs.count(c.out) || c.in.size() < 2 ||
        c.in.size() > static_cast<size_t>(kMaxCatParts))
      continue;
    const TensorDesc& cd = tensors_[c.out];
    if (c.as<ConcatOp>().axis != cd.nd() - 1) continue;
    // The reader: a Linear whose X (in[0]) is the whole concat (or a contiguous reshape of it)
    // with the concat's last axis as K.
    size_t j = i + 1;
    while (j < nodes_.size() && [&] {
      for (int t : nodes_[j].in)
        if (owner(t) == c.out) return false;
      return true;
    }())
      ++j;
    if (j >= nodes_.size() || nodes_[j].op != OpType::Linear) continue;
    Node& l = nodes_[j];
    LinearOp& p = l.as<LinearOp>();
    if (p.gather || p.ncat || is_block_quant(p.w->type) || owner(l.in[0]) != c.out) continue;
    if (l.in.size() > 1 && owner(l.in[1]) == c.out) continue;
    const TensorDesc& xv = tensors_[l.in[0]];
    int64_t M, K, ld;
    if (!xv.contiguous() || xv.elem_offset != 0 || xv.numel() != cd.numel() || !xv.as_matrix(&M, &K, &ld) ||
        K != cd.shape.back())
      continue;
    bool ok = true;
    for (int t : c.in) {
      int64_t r, k, l2;
      ok = ok && tensors_[t].as_matrix(&r, &k, &l2) && r == M && k == tensors_[t].shape.back();
    }
    if (!ok) continue;
    std::vector<int> in(c.in.begin(), c.in.end());
    for (size_t q = 1; q < l.in.size(); ++q) in.push_back(l.in[q]);  // the residual
    l.in = in;
    p.ncat = static_cast<int>(c.in.size());
    drop[i] = true;
  }
  std::vector<Node> kept;
  for (size_t i = 0; i < nodes_.size(); ++i)
    if (!drop[i]) kept.push_back(std::move(nodes_[i]));
  nodes_ = std::move(kept);
}

// Liveness-based placement: every activation lives from the node that writes it to the last
// node that reads it or a view of it (outputs: to the end). An in-place Linear (its residual
// dies there) shares its residual's buffer. Buffers are placed largest first at the lowest
// offset that overlaps no placed buffer with an overlapping lifetime.
void Graph::plan() {
  const int nt = static_cast<int>(tensors_.size());
  const int end = static_cast<int>(nodes_.size());
  std::vector<int> first(nt, -1), last(nt, -1);
  for (int i = 0; i < end; ++i) {
    const Node& n = nodes_[i];
    if (first[n.out] < 0) first[n.out] = i;
    last[n.out] = std::max(last[n.out], i);
    for (int t : n.in) last[owner(t)] = std::max(last[owner(t)], i);
  }
  std::set<int> outs;
  for (const auto& name : requested_) outs.insert(owner(output_tensor(name)));
  for (int t : outs) last[t] = end;

  // In-place residual: the output takes the residual's buffer when the residual is a whole
  // contiguous intermediate (or a reshape of one) whose last reader is this very node.
  for (int i = 0; i < end; ++i) {
    Node& n = nodes_[i];
    if (n.op != OpType::Linear) continue;
    const int nx = n.as<LinearOp>().x_inputs();  // the residual follows X's inputs
    if (static_cast<int>(n.in.size()) <= nx) continue;
    const TensorDesc& rv = tensors_[n.in[nx]];
    const int r = owner(n.in[nx]);
    const TensorDesc& rt = tensors_[r];
    bool reads_r = false;
    for (int j = 0; j < nx; ++j) reads_r = reads_r || owner(n.in[j]) == r;
    if (rv.contiguous() && rv.elem_offset == 0 && rv.numel() == rt.numel() && rt.storage == Storage::Activation &&
        !outs.count(r) && last[r] == i && rt.alias_of < 0 && !reads_r && rt.numel() == tensors_[n.out].numel())
      tensors_[n.out].alias_of = r;
  }
  auto root = [&](int t) {
    while (tensors_[t].alias_of >= 0) t = tensors_[t].alias_of;
    return t;
  };
  std::vector<int> g_first(nt, -1), g_last(nt, -1);
  std::vector<size_t> g_size(nt, 0);
  for (int t = 0; t < nt; ++t) {
    const TensorDesc& d = tensors_[t];
    if (d.is_view() || d.storage != Storage::Activation || first[t] < 0) continue;
    int r = root(t);
    size_t bytes = static_cast<size_t>(d.numel()) * sizeof(float);
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
    if (!tensors_[t].is_view() && tensors_[t].storage == Storage::Activation) tensors_[t].offset = offset[root(t)];
  arena_bytes_ = total;
  arena_.resize(arena_bytes_);

  // Scratch: the largest (shares x bytes per share) of any node; nodes run one at a time.
  size_t ws = 0;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const OpDef& d = op_def(nodes_[i].op);
    if (!d.workspace) continue;
    const size_t per = d.workspace(nodes_[i], xd_[i].data(), tensors_[nodes_[i].out], *kt_);
    ws = std::max(ws, per * static_cast<size_t>(node_shares(i, max_threads_)));
  }
  workspace_.resize(ws);
  resolved_ = false;
  shares_.clear();
}

// Every tensor's first element. Arena and constant addresses are fixed once planned (the
// first run resolves them); later runs update only the input and its views.
void Graph::resolve(const float* input) {
  auto set = [&](int t) {
    const TensorDesc& d = tensors_[t];
    const TensorDesc& b = d.is_view() ? tensors_[d.base] : d;
    const float* p;
    if (b.storage == Storage::Input) p = input;
    else if (b.storage == Storage::Constant) p = b.data;
    else p = reinterpret_cast<const float*>(arena_.data() + b.offset);
    data_[t] = p + d.elem_offset;
  };
  if (!resolved_) {
    data_.assign(tensors_.size(), nullptr);
    input_tensors_.clear();
    for (int t = 0; t < static_cast<int>(tensors_.size()); ++t) {
      set(t);
      if (tensors_[t].storage == Storage::Input) input_tensors_.push_back(t);
    }
    resolved_ = true;
  } else {
    for (int t : input_tensors_) set(t);
  }
}

void Graph::exec_node(size_t i, int ith, int nth) {
  const Node& n = nodes_[i];
  const float* x[kMaxInputs];
  for (size_t k = 0; k < n.in.size(); ++k) x[k] = data_[n.in[k]];
  const OpDef& d = op_def(n.op);
  OpCtx c{n, *kt_, x, xd_[i].data(), const_cast<float*>(data_[n.out]), tensors_[n.out], workspace_.data(), 0};
  d.exec(c, ith, nth);
}

namespace {

// PYVITCPP_PROFILE=1: per-node wall time (thread 0, node start to the moment every share of it
// is done, so a node's time includes waiting for the slowest thread), summed by op and shape,
// printed to stderr after every run. Off by default: the check is one branch per run.
bool profile_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("PYVITCPP_PROFILE");
    return e && *e && std::strcmp(e, "0") != 0;
  }();
  return on;
}

inline void wait_for(const std::atomic<int>& c, int target) {
  int spins = 0;
  while (c.load(std::memory_order_acquire) < target) {
    if (++spins < 2048) PYVITCPP_GRAPH_PAUSE();
    else std::this_thread::yield();
  }
}

}  // namespace

// Work split of a node: a node runs as `shares` disjoint parts (the kernels' (ith, nth)
// convention with nth = shares) that threads claim from a counter, so a thread that is late
// (descheduled on a loaded machine, or just slower) leaves its shares to the others instead
// of stalling them at a barrier. The op's row decides how many (ops/registry.cpp).
int Graph::node_shares(size_t i, int nth) const {
  if (nth <= 1) return 1;
  const OpDef& d = op_def(nodes_[i].op);
  return d.shares ? d.shares(nodes_[i], xd_[i].data(), tensors_[nodes_[i].out], nth) : nth;
}

void Graph::run_nodes(ThreadPool& pool, int nth, double* node_secs) {
  const size_t nn = nodes_.size();
  if (!sync_ || sync_n_ < 2 * nn) {
    sync_.reset(new GraphCounter[2 * nn]);
    sync_n_ = 2 * nn;
  }
  GraphCounter* next = sync_.get();
  GraphCounter* done = sync_.get() + nn;
  std::vector<int>& shares = shares_[nth];  // per thread count, worked out on its first run
  if (shares.size() != nn) {
    shares.resize(nn);
    for (size_t i = 0; i < nn; ++i) shares[i] = node_shares(i, nth);
  }
  for (size_t i = 0; i < nn; ++i) {
    next[i].v.store(0, std::memory_order_relaxed);
    done[i].v.store(0, std::memory_order_relaxed);
  }
  using clock = std::chrono::steady_clock;
  pool.run_optional(nth, [&](int ith) {
    auto t0 = clock::now();
    for (size_t i = 0; i < nn; ++i) {
      const int nc = shares[i];
      int c;
      while ((c = next[i].v.fetch_add(1, std::memory_order_relaxed)) < nc) {
        exec_node(i, c, nc);
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
  resolve(input);
  if (profile_enabled()) execute_profiled(pool, nth);
  else run_nodes(pool, nth, nullptr);
  for (const auto& kv : outs) {
    const int id = output_tensor(kv.first);
    std::memcpy(kv.second, data_[id], sizeof(float) * static_cast<size_t>(tensors_[id].numel()));
  }
}

void Graph::execute_profiled(ThreadPool& pool, int nth) {
  using clock = std::chrono::steady_clock;
  std::vector<double> secs(nodes_.size(), 0.0);
  shares_by_workers_.store(0);
  const auto t_start = clock::now();
  run_nodes(pool, nth, secs.data());
  const double total = std::chrono::duration<double>(clock::now() - t_start).count();
  struct Agg { int count = 0; double s = 0, flops = 0; };
  std::map<std::string, Agg> by;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const Node& n = nodes_[i];
    const OpDef& d = op_def(n.op);
    const TensorDesc& x = *xd_[i][0];
    std::string key;
    if (n.op == OpType::Linear) {
      int64_t M, K;
      linear_mk(n, x, &M, &K);
      const LinearOp& p = n.as<LinearOp>();
      // Convs name their kernel and stride, and "wino" where the weight has Winograd weights
      // (the level runs those 3x3 stride-1 convs that way when the map has >= 4 tiles).
      key = std::string(p.gather ? "Conv" : "Linear") + " " + std::to_string(M) + "x" + std::to_string(K) + "->" +
            std::to_string(p.w->N);
      if (p.gather)
        key += " " + std::to_string(p.conv.h.k) + "x" + std::to_string(p.conv.w.k) + "/" + std::to_string(p.conv.h.stride) +
               (p.w->wino.empty() ? "" : " wino");
    } else {
      key = std::string(d.name) + " " + shape_str(x.shape);
    }
    Agg& a = by[key];
    a.count++;
    a.s += secs[i];
    a.flops += d.flops ? d.flops(n, xd_[i].data(), tensors_[n.out]) : 0.0;
  }
  std::vector<std::pair<std::string, Agg>> rows(by.begin(), by.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.s > b.second.s; });
  double tf = 0;
  for (auto& r : rows) tf += r.second.flops;
  int shares = 0;
  for (size_t i = 0; i < nodes_.size(); ++i) shares += node_shares(i, nth);
  std::fprintf(stderr, "pyvitcpp profile: %zu nodes, %d threads, %.2f ms, %.1f GFLOP/s, %d of %d shares run by workers\n",
               nodes_.size(), nth, total * 1e3, tf / total * 1e-9, shares_by_workers_.load(), shares);
  for (auto& r : rows)
    std::fprintf(stderr, "  %-40s x%-3d %9.3f ms %5.1f%% %7.1f GFLOP/s\n", r.first.c_str(), r.second.count,
                 r.second.s * 1e3, 100.0 * r.second.s / total, r.second.flops > 0 ? r.second.flops / r.second.s * 1e-9 : 0.0);
}

}  // namespace pyvitcpp
