#include "graph/builder.h"

#include <stdexcept>

namespace pyvitcpp {

namespace {

[[noreturn]] void fail(const std::string& what) { throw std::logic_error("graph builder: " + what); }

// torch's view rule (ATen computeStride): the strides of `shape` over x's elements without a
// copy, or false when x's layout cannot express that shape.
bool view_strides(const std::vector<int64_t>& os, const std::vector<int64_t>& ost, const std::vector<int64_t>& ns,
                  std::vector<int64_t>* nst) {
  nst->assign(ns.size(), 0);
  if (os.empty()) {
    for (size_t d = 0; d < ns.size(); ++d) (*nst)[d] = 1;
    return true;
  }
  int64_t view_d = static_cast<int64_t>(ns.size()) - 1;
  int64_t chunk = ost.back(), tensor_numel = 1, view_numel = 1;
  for (int64_t td = static_cast<int64_t>(os.size()) - 1; td >= 0; --td) {
    tensor_numel *= os[td];
    if (td == 0 || (os[td - 1] != 1 && ost[td - 1] != tensor_numel * chunk)) {
      while (view_d >= 0 && (view_numel < tensor_numel || ns[view_d] == 1)) {
        (*nst)[view_d] = view_numel * chunk;
        view_numel *= ns[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return false;
      if (td > 0) {
        chunk = ost[td - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  return view_d == -1;
}

// x's dims [axis+1, nd) are one contiguous block and its dims [0, axis) collapse to one stride
// (what the Mean kernel reads: [outer, n, inner]).
bool mean_layout(const TensorDesc& x, int axis) {
  int64_t expect = 1;
  for (int d = x.nd() - 1; d > axis; --d) {
    if (x.shape[d] != 1 && x.strides[d] != expect) return false;
    expect *= x.shape[d];
  }
  int64_t stride = -1, r = 1;
  for (int d = axis - 1; d >= 0; --d) {
    if (x.shape[d] == 1) continue;
    if (stride < 0) stride = x.strides[d];
    else if (x.strides[d] != stride * r) return false;
    r *= x.shape[d];
  }
  return true;
}

}  // namespace

int GraphBuilder::axis_of(int x, int axis) const {
  const int nd = desc(x).nd();
  const int a = axis < 0 ? axis + nd : axis;
  if (a < 0 || a >= nd) fail("axis " + std::to_string(axis) + " out of range for " + shape_str(shape(x)));
  return a;
}

int GraphBuilder::node(OpType op, const std::string& name, std::vector<int> in, std::vector<int64_t> out_shape,
                       OpParams p) {
  const int out = g_.add_activation(name, std::move(out_shape));
  Node n{op, name, std::move(in), out, std::move(p)};
  g_.add_node(std::move(n));
  return out;
}

void GraphBuilder::output(const std::string& name, int x) { g_.set_output(name, contiguous(x)); }

// ---- views ----

int GraphBuilder::reshape(int x, std::vector<int64_t> ns) {
  const TensorDesc& d = desc(x);
  int64_t known = 1;
  int infer = -1;
  for (size_t i = 0; i < ns.size(); ++i) {
    if (ns[i] == -1) {
      if (infer >= 0) fail("reshape with two -1");
      infer = static_cast<int>(i);
    } else {
      known *= ns[i];
    }
  }
  if (infer >= 0) ns[infer] = known > 0 ? d.numel() / known : 0;
  int64_t n = 1;
  for (int64_t v : ns) n *= v;
  if (n != d.numel()) fail("reshape " + shape_str(d.shape) + " -> " + shape_str(ns));
  std::vector<int64_t> st;
  if (!view_strides(d.shape, d.strides, ns, &st)) return reshape(contiguous(x), ns);
  return g_.add_view(d.name + ".r", x, ns, st, 0);
}

int GraphBuilder::permute(int x, const std::vector<int>& perm) {
  const TensorDesc& d = desc(x);
  if (static_cast<int>(perm.size()) != d.nd()) fail("permute rank");
  std::vector<int64_t> ns, st;
  std::vector<bool> seen(perm.size(), false);
  for (int p : perm) {
    if (p < 0 || p >= d.nd() || seen[p]) fail("bad permutation");
    seen[p] = true;
    ns.push_back(d.shape[p]);
    st.push_back(d.strides[p]);
  }
  return g_.add_view(d.name + ".p", x, ns, st, 0);
}

int GraphBuilder::slice(int x, int axis, int64_t start, int64_t end) {
  const int a = axis_of(x, axis);
  const TensorDesc& d = desc(x);
  if (start < 0 || end > d.shape[a] || start > end) fail("slice out of range");
  std::vector<int64_t> ns = d.shape;
  ns[a] = end - start;
  return g_.add_view(d.name + ".s", x, ns, d.strides, start * d.strides[a]);
}

int GraphBuilder::select(int x, int axis, int64_t index) {
  const int a = axis_of(x, axis);
  const TensorDesc& d = desc(x);
  if (index < 0 || index >= d.shape[a]) fail("select out of range");
  std::vector<int64_t> ns = d.shape, st = d.strides;
  ns.erase(ns.begin() + a);
  st.erase(st.begin() + a);
  return g_.add_view(d.name + ".i", x, ns, st, index * d.strides[a]);
}

int GraphBuilder::broadcast(int x, const std::vector<int64_t>& ns) {
  const TensorDesc& d = desc(x);
  if (d.shape == ns) return x;
  const int nd = static_cast<int>(ns.size()), xd = d.nd();
  if (xd > nd) fail("broadcast " + shape_str(d.shape) + " to " + shape_str(ns));
  std::vector<int64_t> st(nd, 0);
  for (int i = 0; i < xd; ++i) {
    const int o = nd - xd + i;
    if (d.shape[i] == ns[o]) st[o] = d.strides[i];
    else if (d.shape[i] != 1) fail("broadcast " + shape_str(d.shape) + " to " + shape_str(ns));
  }
  return g_.add_view(d.name + ".b", x, ns, st, 0);
}

// ---- ops ----

int GraphBuilder::contiguous(int x) {
  const TensorDesc& d = desc(x);
  if (d.contiguous()) return x;
  return node(OpType::Copy, d.name + ".copy", {x}, d.shape, CopyOp{});
}

int GraphBuilder::linear(const std::string& name, int x, const LinearWeight* w, Act act, int residual, bool relu_out) {
  int64_t rows, cols, ld;
  if (!desc(x).as_matrix(&rows, &cols, &ld)) x = contiguous(x);
  desc(x).as_matrix(&rows, &cols, &ld);
  if (cols != w->K) fail(name + ": input " + shape_str(shape(x)) + " for a weight of K = " + std::to_string(w->K));
  std::vector<int64_t> os = shape(x);
  if (os.empty()) os.push_back(1);
  os.back() = w->N;
  std::vector<int> in = {x};
  if (residual >= 0) {
    int64_t rr, rc, rl;
    if (!desc(residual).as_matrix(&rr, &rc, &rl)) residual = contiguous(residual);
    desc(residual).as_matrix(&rr, &rc, &rl);
    if (rr != rows || rc != w->N) fail(name + ": residual " + shape_str(shape(residual)));
    in.push_back(residual);
  }
  LinearOp p;
  p.w = w;
  p.act = act;
  p.relu_out = relu_out;
  return node(OpType::Linear, name, in, os, p);
}

int GraphBuilder::layernorm(const std::string& name, int x, const float* gamma, const float* beta, float eps) {
  int64_t r, c, ld;
  if (!desc(x).as_matrix(&r, &c, &ld)) x = contiguous(x);
  LayerNormOp p;
  p.gamma = gamma;
  p.beta = beta;
  p.eps = eps;
  return node(OpType::LayerNorm, name, {x}, shape(x), p);
}

int GraphBuilder::attention(const std::string& name, int q, int k, int v, float scale, const AttentionTerms& terms) {
  for (int* t : {&q, &k, &v}) {
    if (desc(*t).nd() != 4) fail(name + ": attention inputs are [B, T, H, Dh]");
    if (desc(*t).strides[3] != 1 && desc(*t).shape[3] != 1) *t = contiguous(*t);
  }
  const std::vector<int64_t> qs = shape(q), ks = shape(k), vs = shape(v);  // copies: the builder adds tensors
  if (ks != vs || (qs[0] != ks[0] && qs[0] != 1) || qs[2] != ks[2] || qs[3] != ks[3])
    fail(name + ": q " + shape_str(qs) + ", k " + shape_str(ks) + ", v " + shape_str(vs));
  if (qs[0] != ks[0]) q = broadcast(q, {ks[0], qs[1], qs[2], qs[3]});
  const int64_t H = qs[2], Tq = qs[1], Tk = ks[1], Dh = qs[3];
  AttentionOp p;
  p.scale = scale;
  std::vector<int> in = {q, k, v};
  // A [n, Tq, Tk] term with the keys contiguous (copied when they are not).
  auto score_term = [&](int t, const char* what, bool per_head) {
    const std::vector<int64_t> s = shape(t);
    if (s.size() != 3 || s[1] != Tq || s[2] != Tk || (per_head && s[0] != 1 && s[0] != H) || s[0] < 1)
      fail(name + ": " + what + " " + shape_str(s) + " for " + std::to_string(H) + " heads, Tq " +
           std::to_string(Tq) + ", Tk " + std::to_string(Tk));
    if (desc(t).strides[2] != 1) t = contiguous(t);
    in.push_back(t);
    return static_cast<int>(in.size()) - 1;
  };
  if (terms.bias >= 0) p.bias = score_term(terms.bias, "bias", true);
  if (terms.mask >= 0) {
    p.mask = score_term(terms.mask, "mask", false);
    if (ks[0] % shape(terms.mask)[0] != 0)
      fail(name + ": batch " + std::to_string(ks[0]) + " is not a multiple of the mask's " +
           std::to_string(shape(terms.mask)[0]) + " windows");
  }
  if (terms.rel_h >= 0 || terms.rel_w >= 0) {
    const int64_t gh = terms.grid_h, gw = terms.grid_w;
    if (terms.rel_h < 0 || terms.rel_w < 0 || gh < 1 || gw < 1 || gh * gw != Tq || Tq != Tk)
      fail(name + ": rel-pos needs rel_h, rel_w and a grid of Tq = Tk tokens");
    const int rh = contiguous(terms.rel_h), rw = contiguous(terms.rel_w);
    if (shape(rh) != std::vector<int64_t>{2 * gh - 1, Dh} || shape(rw) != std::vector<int64_t>{2 * gw - 1, Dh})
      fail(name + ": rel_h " + shape_str(shape(rh)) + " / rel_w " + shape_str(shape(rw)) + " for a " +
           std::to_string(gh) + "x" + std::to_string(gw) + " grid, head dim " + std::to_string(Dh));
    in.push_back(rh);
    in.push_back(rw);
    p.rel = static_cast<int>(in.size()) - 2;
    p.grid_h = gh;
    p.grid_w = gw;
  }
  return node(OpType::Attention, name, in, {ks[0], Tq, H * Dh}, p);
}

int GraphBuilder::self_attention(const std::string& name, int qkv, int64_t heads, float scale) {
  const auto s = shape(qkv);
  if (s.size() != 3 || s[2] % (3 * heads) != 0) fail(name + ": qkv " + shape_str(s));
  const int64_t Dh = s[2] / (3 * heads);
  const int r = reshape(qkv, {s[0], s[1], 3, heads, Dh});
  return attention(name, select(r, 2, 0), select(r, 2, 1), select(r, 2, 2), scale);
}

int GraphBuilder::pad(const std::string& name, int x, const std::vector<int64_t>& lo, const std::vector<int64_t>& hi,
                      float value) {
  const auto s = shape(x);
  if (lo.size() != s.size() || hi.size() != s.size()) fail(name + ": pad rank");
  std::vector<int64_t> os = s;
  for (size_t d = 0; d < s.size(); ++d) {
    if (lo[d] < 0 || hi[d] < 0) fail(name + ": negative pad (crop with slice)");
    os[d] += lo[d] + hi[d];
  }
  PadOp p;
  p.lo = lo;
  p.hi = hi;
  p.value = value;
  return node(OpType::Pad, name, {x}, os, p);
}

int GraphBuilder::roll(const std::string& name, int x, const std::vector<int64_t>& shifts, const std::vector<int>& axes) {
  if (shifts.size() != axes.size()) fail(name + ": roll shifts/axes");
  RollOp p;
  p.shift.assign(desc(x).nd(), 0);
  for (size_t i = 0; i < axes.size(); ++i) {
    const int a = axis_of(x, axes[i]);
    const int64_t n = shape(x)[a];
    p.shift[a] = n == 0 ? 0 : ((p.shift[a] + shifts[i]) % n + n) % n;
  }
  return node(OpType::Roll, name, {x}, shape(x), p);
}

int GraphBuilder::concat(const std::string& name, const std::vector<int>& xs, int axis) {
  if (xs.empty()) fail(name + ": concat of nothing");
  const int a = axis_of(xs[0], axis);
  std::vector<int64_t> os = shape(xs[0]);
  os[a] = 0;
  for (int x : xs) {
    const auto& s = shape(x);
    if (s.size() != os.size()) fail(name + ": concat ranks differ");
    for (size_t d = 0; d < s.size(); ++d)
      if (static_cast<int>(d) != a && s[d] != os[d]) fail(name + ": concat shapes " + shape_str(s) + " vs " + shape_str(os));
    os[a] += s[a];
  }
  ConcatOp p;
  p.axis = a;
  return node(OpType::Concat, name, xs, os, p);
}

int GraphBuilder::eltwise(const std::string& name, std::vector<int> in, EltKind kind, Act act, float alpha) {
  const std::vector<int64_t> os = shape(in[0]);
  for (size_t i = 1; i < in.size(); ++i) in[i] = broadcast(in[i], os);
  EltwiseOp p;
  p.kind = kind;
  p.act = act;
  p.alpha = alpha;
  return node(OpType::Eltwise, name, in, os, p);
}

int GraphBuilder::add(const std::string& name, int a, int b, float alpha) {
  return eltwise(name, {a, b}, EltKind::Add, Act::None, alpha);
}
int GraphBuilder::mul(const std::string& name, int a, int b) { return eltwise(name, {a, b}, EltKind::Mul, Act::None, 1.0f); }
int GraphBuilder::add_mul(const std::string& name, int a, int b, int c) {
  return eltwise(name, {a, b, c}, EltKind::AddMul, Act::None, 1.0f);
}
int GraphBuilder::act_mul(const std::string& name, int a, int b, Act act) {
  return eltwise(name, {a, b}, EltKind::ActMul, act, 1.0f);
}
int GraphBuilder::activation(const std::string& name, int x, Act act) {
  return eltwise(name, {x}, EltKind::Act, act, 1.0f);
}

int GraphBuilder::mean(const std::string& name, int x, int axis) {
  const int a = axis_of(x, axis);
  if (!mean_layout(desc(x), a)) x = contiguous(x);
  std::vector<int64_t> os = shape(x);
  os.erase(os.begin() + a);
  MeanOp p;
  p.axis = a;
  return node(OpType::Mean, name, {x}, os, p);
}

int GraphBuilder::upsample_nearest(const std::string& name, int x, int64_t f) {
  const TensorDesc& d = desc(x);
  if (d.nd() != 4 || f < 1) fail(name + ": upsample_nearest takes an NHWC map and a factor >= 1");
  const std::vector<int64_t> s = d.shape, st = d.strides;  // copies: the builder adds tensors
  const int v = g_.add_view(d.name + ".up", x, {s[0], s[1], f, s[2], f, s[3]}, {st[0], st[1], 0, st[2], 0, st[3]}, 0);
  const int y = node(OpType::Copy, name, {v}, {s[0], s[1], f, s[2], f, s[3]}, CopyOp{});
  return reshape(y, {s[0], s[1] * f, s[2] * f, s[3]});
}

// ---- NHWC convolution ----

int GraphBuilder::conv2d(const std::string& name, int x, const LinearWeight* w, const ConvAxis& h, const ConvAxis& wd,
                         Act act, int residual, bool nchw, bool relu_out) {
  // An NHWC map whose pixels are rows of a matrix (uniform pixel stride P >= C: a channel slice
  // of a contiguous map, as YOLO's C2f chunks are) is read in place: the gather steps P floats
  // per pixel (ConvGeom::C), no Copy. Anything else is made contiguous.
  int64_t mr = 0, mc = 0, pixel_stride = 0;
  const bool in_place = !nchw && shape(x).size() == 4 && desc(x).as_matrix(&mr, &mc, &pixel_stride) &&
                        mc == shape(x)[3];
  if (!in_place) x = contiguous(x);
  const auto s = shape(x);
  if (s.size() != 4) fail(name + ": conv input " + shape_str(s));
  const int64_t B = s[0], C = nchw ? s[1] : s[3];
  if (!in_place) pixel_stride = C;
  if ((nchw ? s[2] : s[1]) != h.in || (nchw ? s[3] : s[2]) != wd.in) fail(name + ": conv geometry");
  const std::vector<int64_t> os = {B, h.out, wd.out, w->N};
  if (!nchw && h.k == 1 && wd.k == 1 && h.stride == 1 && wd.stride == 1 && h.pad0 == 0 && wd.pad0 == 0)
    return linear(name, x, w, act, residual, relu_out);
  Im2colOp p;
  p.conv.B = B;
  p.conv.C = pixel_stride;
  p.conv.c0 = 0;
  p.conv.cg = C;
  p.conv.h = h;
  p.conv.w = wd;
  p.conv.nchw = nchw;
  p.nchw = nchw;
  const int cols = node(OpType::Im2col, name + ".im2col", {x}, {B * h.out * wd.out, h.k * wd.k * C}, p);
  return reshape(linear(name, cols, w, act, residual, relu_out), os);
}

// The geometry of a depthwise conv or pooling over the NHWC map x (made contiguous).
ConvGeom GraphBuilder::nhwc_geom(const std::string& name, int* x, const ConvAxis& h, const ConvAxis& wd) {
  *x = contiguous(*x);
  const auto s = shape(*x);
  if (s.size() != 4 || s[1] != h.in || s[2] != wd.in) fail(name + ": NHWC input " + shape_str(s));
  ConvGeom g;
  g.B = s[0];
  g.C = s[3];
  g.cg = s[3];
  g.h = h;
  g.w = wd;
  return g;
}

int GraphBuilder::dwconv2d(const std::string& name, int x, const float* taps, const float* bias, const ConvAxis& h,
                           const ConvAxis& wd, Act act) {
  DwConvOp p;
  p.conv = nhwc_geom(name, &x, h, wd);
  p.taps = taps;
  p.bias = bias;
  p.act = act;
  return node(OpType::DwConv, name, {x}, {p.conv.B, h.out, wd.out, p.conv.C}, p);
}

int GraphBuilder::pool2d(const std::string& name, int x, PoolKind kind, const ConvAxis& h, const ConvAxis& wd,
                         bool count_include_pad) {
  Pool2dOp p;
  p.conv = nhwc_geom(name, &x, h, wd);
  p.kind = kind;
  p.count_include_pad = count_include_pad;
  return node(OpType::Pool2d, name, {x}, {p.conv.B, h.out, wd.out, p.conv.C}, p);
}

}  // namespace pyvitcpp
