// The op registry: one row per OpType with its executor and the facts the graph needs about
// it (arithmetic for the profiler, how many shares it runs as, per-share scratch). The table
// itself, with each op's kernels, tests and benchmark named beside it, is ops/registry.cpp.
#pragma once
#include <cstddef>

#include "ops/node.h"
#include "ops/tensor.h"

namespace pyvitcpp {

// What an executor sees: its node, the kernel level, the resolved inputs and output.
struct OpCtx {
  const Node& n;
  const KernelTable& kt;
  const float* const* x;         // input data (views resolved: first element)
  const TensorDesc* const* xd;   // input descriptors
  float* y;
  const TensorDesc& yd;
  void* ws;                      // this node's scratch: shares x ws_per_share bytes
  size_t ws_per_share;
};

struct OpDef {
  const char* name;
  // Runs share ith of nth (disjoint; every share together is the whole op; see kernels.h).
  void (*exec)(const OpCtx& c, int ith, int nth);
  // Floating-point operations (multiply-add = 2) for the profiler's GFLOP/s; null: 0.
  double (*flops)(const Node& n, const TensorDesc* const* xd, const TensorDesc& yd);
  // How many shares to split into for nth threads; null: nth.
  int (*shares)(const Node& n, const TensorDesc* const* xd, const TensorDesc& yd, int nth);
  // Scratch bytes per share; null: none.
  size_t (*workspace)(const Node& n, const TensorDesc* const* xd, const TensorDesc& yd, const KernelTable& kt);
};

const OpDef& op_def(OpType t);

// M and K of a Linear: its input's rows and columns, or for a gathering Linear the conv's
// output pixels and taps x channels.
void linear_mk(const Node& n, const TensorDesc& x, int64_t* M, int64_t* K);

// The im2col gather of a conv geometry over X.
ConvGather conv_gather(const ConvGeom& g, const float* X);

}  // namespace pyvitcpp
