// Graph-level test hook (pyvitcpp._core.testing.graph_op): builds a one-op graph through
// GraphBuilder over numpy inputs AS THEY ARE (any strides, 0 for broadcast: the inputs become
// views), runs it with a real thread pool at a chosen kernel level, and returns the output.
// So one call tests an op's shape rule, its executor, the planner and the kernel. Not a public API.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/threadpool.h"
#include "graph/builder.h"
#include "kernels/conv.h"
#include "kernels/kernels.h"
#include "ops/registry.h"
#include "python/bind_util.h"
#include "python/bindings.h"

namespace py = pybind11;

namespace pyvitcpp {
namespace {

[[noreturn]] void fail(const std::string& msg) { throw py::value_error(msg); }

// A numpy float32 array (any strides, non-negative, whole elements) as a view over its data.
int input_view(GraphBuilder& b, const py::array& a, int k) {
  if (!py::isinstance<py::array_t<float>>(a) || a.dtype().kind() != 'f' || a.itemsize() != 4)
    fail("graph_op inputs must be float32 arrays");
  if (a.ndim() > kMaxDims) fail("rank above " + std::to_string(kMaxDims));
  std::vector<int64_t> shape, strides;
  for (py::ssize_t d = 0; d < a.ndim(); ++d) {
    if (a.strides(d) < 0 || a.strides(d) % 4 != 0) fail("graph_op inputs need non-negative whole-element strides");
    shape.push_back(a.shape(d));
    strides.push_back(a.strides(d) / 4);
  }
  const std::string name = "in" + std::to_string(k);
  const int base = b.constant(name, {1}, static_cast<const float*>(a.data()));
  return b.graph().add_view(name + ".v", base, shape, strides, 0);
}

template <class T>
T kw(const py::kwargs& p, const char* key) {
  if (!p.contains(key)) fail(std::string("graph_op needs ") + key + "=");
  return p[key].cast<T>();
}

// The op names of the last graph graph_op ran, after the graph's fusions (graph_op_nodes).
std::vector<std::string> g_last_ops;

// Builds and runs the one-op graph; reps > 0 also times `reps` more runs (median seconds).
py::array_t<float> run_graph_op(const std::string& isa_s, const std::string& op, const std::vector<py::array>& inputs,
                                int nth, const py::kwargs& p, int reps, double* secs) {
  const Isa isa = level_or_throw(isa_s);
  LinearWeight conv_w;  // the "conv" op's weight (lives as long as the graph)
  if (nth < 1 || nth > 64) fail("nth must be in [1, 64]");
  if (inputs.empty()) fail("graph_op needs inputs");
  Graph g;
  GraphBuilder b(g);
  std::vector<int> x;
  for (size_t i = 0; i < inputs.size(); ++i) x.push_back(input_view(b, inputs[i], static_cast<int>(i)));
  int y;
  try {
    if (op == "copy") y = b.contiguous(x[0]);
    else if (op == "reshape") y = b.reshape(x[0], kw<std::vector<int64_t>>(p, "shape"));
    else if (op == "permute") y = b.permute(x[0], kw<std::vector<int>>(p, "perm"));
    else if (op == "pad") y = b.pad("y", x[0], kw<std::vector<int64_t>>(p, "lo"), kw<std::vector<int64_t>>(p, "hi"),
                                     p.contains("value") ? p["value"].cast<float>() : 0.0f);
    else if (op == "roll") y = b.roll("y", x[0], kw<std::vector<int64_t>>(p, "shifts"), kw<std::vector<int>>(p, "axes"));
    else if (op == "concat") y = b.concat("y", x, kw<int>(p, "axis"));
    else if (op == "add") y = b.add("y", x.at(0), x.at(1), p.contains("alpha") ? p["alpha"].cast<float>() : 1.0f);
    else if (op == "mul") y = b.mul("y", x.at(0), x.at(1));
    else if (op == "add_mul") y = b.add_mul("y", x.at(0), x.at(1), x.at(2));
    else if (op == "act_mul") y = b.act_mul("y", x.at(0), x.at(1), static_cast<Act>(kw<int>(p, "act")));
    else if (op == "activation") y = b.activation("y", x[0], static_cast<Act>(kw<int>(p, "act")));
    else if (op == "mean") y = b.mean("y", x[0], kw<int>(p, "axis"));
    else if (op == "upsample_nearest") y = b.upsample_nearest("y", x[0], kw<int64_t>(p, "factor"));
    else if (op == "self_attention") y = b.self_attention("y", x[0], kw<int64_t>(p, "heads"), kw<float>(p, "scale"));
    else if (op == "conv") {
      // inputs: nparts NHWC maps (concatenated along channels when more than one), W [N, k*k*C]
      // (k = (ky, kx, c) rows, F32), bias [N], then the residual [B, oh, ow, N] if residual=True.
      // conv2d over the concat: a 1x1 conv is a Linear, k x k an Im2col + Linear; the graph's
      // fusions (gather, concat) apply as they would in a model.
      const int np = kw<int>(p, "nparts");
      const int64_t k = kw<int64_t>(p, "k"), st = kw<int64_t>(p, "stride"), pad = kw<int64_t>(p, "pad");
      const bool has_res = p.contains("residual") && p["residual"].cast<bool>();
      if (np < 1 || static_cast<size_t>(np) + 2 + has_res != x.size()) fail("conv: nparts maps, W, bias[, residual]");
      std::vector<int> parts(x.begin(), x.begin() + np);
      const int xin = np == 1 ? parts[0] : b.concat("cat", parts, 3);
      const py::array& W = inputs[np];
      const py::array& bias = inputs[np + 1];
      if (W.ndim() != 2 || !(W.flags() & py::array::c_style) || bias.ndim() != 1 || bias.shape(0) != W.shape(0) ||
          !(bias.flags() & py::array::c_style))
        fail("conv: W must be a C-contiguous [N, K] and bias [N] float32");
      conv_w.name = "w";
      conv_w.raw = W.data();
      conv_w.N = W.shape(0);
      conv_w.K = W.shape(1);
      conv_w.bias = static_cast<const float*>(bias.data());
      const KernelTable& kt = kernel_table(isa);
      if (const size_t bytes = kt.gemm_pack_size(DType::F32, conv_w.N, conv_w.K)) {
        conv_w.packed.resize(bytes);
        kt.gemm_pack(conv_w.raw, DType::F32, conv_w.N, conv_w.K, conv_w.packed.data());
      }
      const std::vector<int64_t> s = b.shape(xin);
      y = b.conv2d("y", xin, &conv_w, conv_axis_sym(s[1], k, st, 1, pad), conv_axis_sym(s[2], k, st, 1, pad),
                   static_cast<Act>(p.contains("act") ? p["act"].cast<int>() : 0), has_res ? x.back() : -1);
    }
    else if (op == "attention") {
      // inputs: q, k, v, then the terms named by the flags, in the order bias, mask, rel_h, rel_w
      GraphBuilder::AttentionTerms terms;
      size_t i = 3;
      if (p.contains("bias") && p["bias"].cast<bool>()) terms.bias = x.at(i++);
      if (p.contains("mask") && p["mask"].cast<bool>()) terms.mask = x.at(i++);
      if (p.contains("grid")) {
        const auto grid = p["grid"].cast<std::vector<int64_t>>();
        if (grid.size() != 2) fail("grid=(gh, gw)");
        terms.rel_h = x.at(i++);
        terms.rel_w = x.at(i++);
        terms.grid_h = grid[0];
        terms.grid_w = grid[1];
      }
      y = b.attention("y", x.at(0), x.at(1), x.at(2), kw<float>(p, "scale"), terms);
    }
    else fail("unknown graph_op '" + op + "'");
    b.output("y", y);
  } catch (const std::logic_error& e) {
    fail(e.what());
  }
  const int out = g.output_tensor("y");
  const std::vector<int64_t> shape = g.tensor(out).shape;
  g.finalize({"y"}, kernel_table(isa), nth);
  g_last_ops.clear();
  for (const Node& n : g.nodes()) {
    std::string name = op_def(n.op).name;
    if (n.op == OpType::Linear && n.as<LinearOp>().gather) name += "+gather";
    if (n.op == OpType::Linear && n.as<LinearOp>().ncat) name += "+concat" + std::to_string(n.as<LinearOp>().ncat);
    g_last_ops.push_back(name);
  }
  py::array_t<float> result(shape);
  {
    py::gil_scoped_release nogil;
    ThreadPool pool(nth);
    const std::map<std::string, float*> outs = {{"y", result.mutable_data()}};
    g.execute(pool, nth, nullptr, outs);
    std::vector<double> t;
    for (int r = 0; r < reps; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      g.execute(pool, nth, nullptr, outs);
      t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    if (reps > 0) {
      std::sort(t.begin(), t.end());
      *secs = t[t.size() / 2];
    }
  }
  return result;
}

py::array_t<float> graph_op(const std::string& isa_s, const std::string& op, const std::vector<py::array>& inputs,
                            int nth, const py::kwargs& p) {
  return run_graph_op(isa_s, op, inputs, nth, p, 0, nullptr);
}

double graph_op_bench(const std::string& isa_s, const std::string& op, const std::vector<py::array>& inputs, int nth,
                      int reps, const py::kwargs& p) {
  if (reps < 1 || reps > 100000) fail("reps must be in [1, 100000]");
  double secs = 0;
  run_graph_op(isa_s, op, inputs, nth, p, reps, &secs);
  return secs;
}

}  // namespace

void bind_test_graph(py::module_& t) {
  t.def("graph_op", &graph_op, py::arg("isa"), py::arg("op"), py::arg("inputs"), py::arg("nth") = 1,
        "Build a one-op graph over the inputs (numpy views as they are), run it, return the output. "
        "ops: copy, reshape(shape), permute(perm), pad(lo, hi, value), roll(shifts, axes), concat(axis), "
        "add(alpha), mul, add_mul, act_mul(act), activation(act), mean(axis), upsample_nearest(factor), "
        "self_attention(heads, scale), attention(scale, bias=bool, mask=bool, grid=(gh, gw)) over q, k, v "
        "[B, T, H, Dh] then the named terms, conv(nparts, k, stride, pad, act, residual=bool) over nparts NHWC "
        "maps (concatenated), W [N, k*k*C], bias[, residual]");
  t.def("graph_op_nodes", [] { return g_last_ops; },
        "The op names of the last graph_op's graph after its fusions (Linear+gather: an Im2col fused into "
        "the GEMM; Linear+concatN: a Concat of N parts fused into it).");
  t.def("graph_op_bench", &graph_op_bench, py::arg("isa"), py::arg("op"), py::arg("inputs"), py::arg("nth") = 1,
        py::arg("reps") = 20,
        "graph_op's perf mode: median seconds of one run of the built graph (the output copy included)");
}

}  // namespace pyvitcpp
