// Executors of the layout and elementwise ops (Copy, Pad, Roll, Concat, Eltwise, Mean): their
// kernels take any strided view (kernels/layout_body.h), so an executor only copies shapes and
// strides into the kernel's arguments.
#include <stdexcept>

#include "ops/executors.h"

namespace pyvitcpp {

namespace {

template <class A>
void set_dims(A& a, const std::vector<int64_t>& shape) {
  if (shape.size() > static_cast<size_t>(kMaxDims)) throw std::logic_error("tensor rank above kMaxDims");
  a.nd = static_cast<int>(shape.size());
  for (int d = 0; d < a.nd; ++d) a.ne[d] = shape[d];
}

void set_strides(int64_t* dst, const std::vector<int64_t>& s) {
  for (size_t d = 0; d < s.size(); ++d) dst[d] = s[d];
}

}  // namespace

void exec_copy(const OpCtx& c, int ith, int nth) {
  CopyArgs a;
  set_dims(a, c.yd.shape);
  a.X = c.x[0];
  set_strides(a.xs, c.xd[0]->strides);
  a.Y = c.y;
  set_strides(a.ys, contiguous_strides(c.yd.shape));
  c.kt.copy_strided(a, ith, nth);
}

void exec_pad(const OpCtx& c, int ith, int nth) {
  const PadOp& p = c.n.as<PadOp>();
  PadArgs a;
  set_dims(a, c.yd.shape);
  for (int d = 0; d < a.nd; ++d) {
    a.lo[d] = p.lo[d];
    a.xne[d] = c.xd[0]->shape[d];
  }
  a.X = c.x[0];
  set_strides(a.xs, c.xd[0]->strides);
  a.Y = c.y;
  a.value = p.value;
  c.kt.pad(a, ith, nth);
}

void exec_roll(const OpCtx& c, int ith, int nth) {
  const RollOp& p = c.n.as<RollOp>();
  RollArgs a;
  set_dims(a, c.yd.shape);
  for (int d = 0; d < a.nd; ++d) a.shift[d] = p.shift[d];
  a.X = c.x[0];
  set_strides(a.xs, c.xd[0]->strides);
  a.Y = c.y;
  c.kt.roll(a, ith, nth);
}

// Each input is copied into its slice of the output; every share does its part of each copy.
void exec_concat(const OpCtx& c, int ith, int nth) {
  const int axis = c.n.as<ConcatOp>().axis;
  const std::vector<int64_t> ys = contiguous_strides(c.yd.shape);
  int64_t at = 0;
  for (size_t i = 0; i < c.n.in.size(); ++i) {
    const TensorDesc& x = *c.xd[i];
    CopyArgs a;
    set_dims(a, x.shape);
    a.X = c.x[i];
    set_strides(a.xs, x.strides);
    a.Y = c.y + at * ys[axis];
    set_strides(a.ys, ys);
    c.kt.copy_strided(a, ith, nth);
    at += x.shape[axis];
  }
}

void exec_eltwise(const OpCtx& c, int ith, int nth) {
  const EltwiseOp& p = c.n.as<EltwiseOp>();
  EltwiseArgs a;
  set_dims(a, c.yd.shape);
  a.kind = p.kind;
  a.act = p.act;
  a.alpha = p.alpha;
  a.A = c.x[0];
  set_strides(a.as, c.xd[0]->strides);
  if (c.n.in.size() > 1) {
    a.B = c.x[1];
    set_strides(a.bs, c.xd[1]->strides);
  }
  if (c.n.in.size() > 2) {
    a.C = c.x[2];
    set_strides(a.cs, c.xd[2]->strides);
  }
  a.Y = c.y;
  c.kt.eltwise(a, ith, nth);
}

// The builder guarantees the input is [outer..., n, inner...] with the inner dims contiguous
// and the outer dims collapsible to one stride (graph/builder.cpp, mean()).
void exec_mean(const OpCtx& c, int ith, int nth) {
  const int axis = c.n.as<MeanOp>().axis;
  const TensorDesc& x = *c.xd[0];
  MeanArgs a;
  a.outer = 1;
  a.inner = 1;
  for (int d = 0; d < axis; ++d) a.outer *= x.shape[d];
  for (int d = axis + 1; d < x.nd(); ++d) a.inner *= x.shape[d];
  a.n = x.shape[axis];
  a.xs_n = x.strides[axis];
  a.xs_o = 0;
  for (int d = axis - 1; d >= 0; --d)
    if (x.shape[d] > 1) {
      a.xs_o = x.strides[d];
      break;
    }
  a.X = c.x[0];
  a.Y = c.y;
  c.kt.mean(a, ith, nth);
}

}  // namespace pyvitcpp
