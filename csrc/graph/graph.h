// A small static DAG of explicit ops over N-D F32 tensors, its memory plan and its executor.
//
// Tensors (ops/tensor.h) are activations (planned into one arena), the input, constants, or
// views of any of those (no storage of their own). Nodes (ops/node.h) write one contiguous
// activation each; what an op does is its row in the registry (ops/registry.cpp). Builders
// (graph/builder.h) add nodes in execution order; fused work is an explicit op (Linear carries
// bias + activation + residual), and the one rewrite, finalize's Im2col -> gathering Linear, is
// documented where it happens.
#pragma once
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/aligned.h"
#include "core/threadpool.h"
#include "ops/node.h"
#include "ops/tensor.h"

namespace pyvitcpp {

// A counter on its own cache line (the executor's per-node share counters).
struct alignas(64) GraphCounter {
  std::atomic<int> v{0};
};

class Graph {
 public:
  // ---- building (graph/builder.h wraps these with shape rules) ----
  int add_input(const std::string& name, std::vector<int64_t> shape);
  int add_constant(const std::string& name, std::vector<int64_t> shape, const float* data);
  int add_activation(const std::string& name, std::vector<int64_t> shape);
  // A view of `src`'s storage: strides and element offset are relative to src's first element
  // in src's own strides' units (elements of the base storage).
  int add_view(const std::string& name, int src, std::vector<int64_t> shape, std::vector<int64_t> strides,
               int64_t elem_offset);
  void add_node(Node n);
  // The tensor must be contiguous (GraphBuilder::output inserts a Copy where needed).
  void set_output(const std::string& name, int tensor);

  // Keeps only the nodes needed for `outputs` (each must have been set), fuses Im2col into the
  // GEMM that reads it, then plans memory.
  void finalize(const std::vector<std::string>& outputs, const KernelTable& kt, int max_threads);

  // ---- running ----
  // input: the input tensor's data; outs: name -> destination (numel floats).
  void execute(ThreadPool& pool, int nth, const float* input, const std::map<std::string, float*>& outs);

  const TensorDesc& tensor(int id) const { return tensors_[id]; }
  int num_tensors() const { return static_cast<int>(tensors_.size()); }
  int output_tensor(const std::string& name) const;
  const std::vector<Node>& nodes() const { return nodes_; }
  size_t arena_bytes() const { return arena_bytes_; }
  size_t workspace_bytes() const { return workspace_.size(); }

 private:
  int owner(int t) const { return tensors_[t].is_view() ? tensors_[t].base : t; }
  std::vector<int> reader_counts() const;  // per tensor: inputs of nodes that read it or a view of it
  std::set<int> requested_owners() const;  // the tensors behind the requested outputs
  void fuse_im2col();
  void fuse_concat();
  void plan();
  void resolve(const float* input);
  void exec_node(size_t i, int ith, int nth);
  void execute_profiled(ThreadPool& pool, int nth);
  // Runs every node (shares claimed dynamically, see graph.cpp); node_secs: per-node time or null.
  void run_nodes(ThreadPool& pool, int nth, double* node_secs);
  int node_shares(size_t i, int nth) const;

  std::vector<TensorDesc> tensors_;
  std::vector<Node> nodes_;
  std::map<std::string, int> outputs_;
  std::vector<std::string> requested_;
  const KernelTable* kt_ = nullptr;
  int max_threads_ = 1;
  size_t arena_bytes_ = 0;
  AlignedBuffer arena_;
  AlignedBuffer workspace_;
  std::vector<const float*> data_;                  // per tensor, this run: first element
  std::vector<int> input_tensors_;                  // tensors over the input (re-resolved per run)
  bool resolved_ = false;
  std::map<int, std::vector<int>> shares_;          // per thread count: each node's shares
  std::vector<std::vector<const TensorDesc*>> xd_;  // per node: its inputs' descriptors
  std::unique_ptr<GraphCounter[]> sync_;  // per node: next share to claim, shares done
  size_t sync_n_ = 0;
  std::atomic<int> shares_by_workers_{0};  // PYVITCPP_PROFILE: shares not run by the caller
};

}  // namespace pyvitcpp
