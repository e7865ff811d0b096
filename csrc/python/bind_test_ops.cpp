// Test hooks for the non-GEMM kernels (pyvitcpp._testing). Not a public API.
//
// Every hook validates its arrays (float32, shape, layout) and raises ValueError instead of
// crashing, then runs the kernel of the named level for ith = 0..nth-1 one after another on
// this thread (the kernels never synchronise, so this is exactly the parallel result).
// attention_bench is the exception: it runs nth real std::threads.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/cpu.h"
#include "kernels/kernels.h"
#include "kernels/simd_act.h"
#include "python/bindings.h"

namespace py = pybind11;

namespace pyvitcpp {
namespace {

using farray = py::array_t<float, py::array::c_style>;

[[noreturn]] void fail(const std::string& msg) { throw py::value_error(msg); }

Isa isa_arg(const std::string& name) {
  Isa isa;
  try {
    isa = parse_isa(name);
  } catch (const std::exception& e) {
    fail(e.what());
  }
  std::string why;
  if (!isa_supported(isa, &why)) fail("kernel level " + name + " needs " + why + ", which this CPU/OS lacks");
  return isa;
}

int nth_arg(int nth) {
  if (nth < 1 || nth > 1024) fail("nth must be in [1, 1024]");
  return nth;
}

Act act_arg(int act) {
  if (act < 0 || act > kActLast) fail("act must be an Act value in [0, " + std::to_string(kActLast) + "]");
  return static_cast<Act>(act);
}

// A float32 array of the given rank whose innermost dimension is contiguous; returns element
// strides. Other strides may be anything non-negative that is a multiple of 4 bytes.
std::vector<int64_t> check_f32(const py::array& a, int ndim, const char* what, bool contiguous) {
  if (!a.dtype().is(py::dtype::of<float>())) fail(std::string(what) + " must be float32");
  if (a.ndim() != ndim) fail(std::string(what) + " must have " + std::to_string(ndim) + " dimensions");
  if (contiguous && !(a.flags() & py::array::c_style)) fail(std::string(what) + " must be C-contiguous");
  std::vector<int64_t> st(ndim);
  for (int i = 0; i < ndim; ++i) {
    auto s = a.strides(i);
    if (s < 0 || s % static_cast<py::ssize_t>(sizeof(float)) != 0)
      fail(std::string(what) + " needs non-negative strides that are multiples of 4 bytes");
    st[i] = s / static_cast<int64_t>(sizeof(float));
  }
  if (ndim > 0 && a.shape(ndim - 1) > 1 && st[ndim - 1] != 1)
    fail(std::string(what) + ": the innermost dimension must be contiguous");
  return st;
}

farray layernorm_hook(const std::string& isa_s, const py::array& X, py::object gamma, py::object beta, float eps,
                      int nth, bool inplace) {
  const KernelTable& t = kernel_table(isa_arg(isa_s));
  nth_arg(nth);
  auto xs = check_f32(X, 2, "X", false);
  const int64_t rows = X.shape(0), D = X.shape(1);
  if (D < 1) fail("D must be >= 1");
  py::array g, b;
  LayerNormArgs a;
  if (!gamma.is_none()) {
    g = gamma.cast<py::array>();
    check_f32(g, 1, "gamma", true);
    if (g.shape(0) != D) fail("gamma must have D elements");
    a.gamma = static_cast<const float*>(g.data());
  }
  if (!beta.is_none()) {
    b = beta.cast<py::array>();
    check_f32(b, 1, "beta", true);
    if (b.shape(0) != D) fail("beta must have D elements");
    a.beta = static_cast<const float*>(b.data());
  }
  farray Y({rows, D});
  a.rows = rows;
  a.D = D;
  a.eps = eps;
  a.Y = Y.mutable_data();
  a.ldy = D;
  if (inplace) {
    for (int64_t r = 0; r < rows; ++r)
      std::memcpy(a.Y + r * D, static_cast<const float*>(X.data()) + r * xs[0], sizeof(float) * D);
    a.X = a.Y;
    a.ldx = D;
  } else {
    a.X = static_cast<const float*>(X.data());
    a.ldx = xs[0];
  }
  py::gil_scoped_release nogil;
  for (int i = 0; i < nth; ++i) t.layernorm(a, i, nth);
  return Y;
}

farray activation_hook(const std::string& isa_s, const py::array& X, int act, int nth) {
  const KernelTable& t = kernel_table(isa_arg(isa_s));
  nth_arg(nth);
  Act ac = act_arg(act);
  check_f32(X, 1, "X", true);
  const int64_t n = X.shape(0);
  farray Y(std::vector<py::ssize_t>{static_cast<py::ssize_t>(n)});
  const float* x = static_cast<const float*>(X.data());
  float* y = Y.mutable_data();
  py::gil_scoped_release nogil;
  for (int i = 0; i < nth; ++i) t.activation(x, y, n, ac, i, nth);
  return Y;
}

farray act_inplace_hook(const std::string& isa_s, const py::array& X, int act) {
  Isa isa = isa_arg(isa_s);
  Act ac = act_arg(act);
  check_f32(X, 1, "X", true);
  const int64_t n = X.shape(0);
  farray Y(std::vector<py::ssize_t>{static_cast<py::ssize_t>(n)});
  if (n) std::memcpy(Y.mutable_data(), X.data(), sizeof(float) * n);
  float* y = Y.mutable_data();
  py::gil_scoped_release nogil;
  switch (isa) {
    case Isa::Ref: ref::act_inplace(y, n, ac); break;
    case Isa::Avx2: avx2::act_inplace(y, n, ac); break;
    case Isa::Avx512: avx512::act_inplace(y, n, ac); break;
  }
  return Y;
}

void run_attention(const KernelTable& t, const AttentionArgs& a, int nth) {
  std::vector<unsigned char> ws(t.attention_workspace(a) * static_cast<size_t>(nth) + 1);
  // +1 and an odd offset: kernels must not assume an aligned workspace.
  py::gil_scoped_release nogil;
  for (int i = 0; i < nth; ++i) t.attention(a, ws.data() + 1, i, nth);
}

// An optional float32 array argument (None -> false).
bool opt_array(const py::object& o, const char* what, py::array* out) {
  if (o.is_none()) return false;
  if (!py::isinstance<py::array>(o)) fail(std::string(what) + " must be a numpy array or None");
  *out = py::reinterpret_borrow<py::array>(o);
  return true;
}

// Validates the optional additive terms against the attention's shape and points a at them.
// bias [Hb, Tq, Tk] (Hb 1 or H), mask [nW, Tq, Tk] (B a multiple of nW), rel_h [2gh-1, Dh] and
// rel_w [2gw-1, Dh] (C-contiguous, both or neither, gh * gw == Tq == Tk; grid (gh, gw) when
// given must agree). The arrays must outlive the call (the caller keeps them).
void attention_terms(AttentionArgs& a, const py::object& bias_o, const py::object& mask_o, const py::object& rh_o,
                     const py::object& rw_o, const py::object& grid_o) {
  py::array bias, mask, rh, rw;
  if (opt_array(bias_o, "bias", &bias)) {
    auto st = check_f32(bias, 3, "bias", false);
    const int64_t Hb = bias.shape(0);
    if ((Hb != 1 && Hb != a.H) || bias.shape(1) != a.Tq || bias.shape(2) != a.Tk)
      fail("bias must be [1 or H, Tq, Tk]");
    a.bias = static_cast<const float*>(bias.data());
    a.bias_sh = Hb == 1 ? 0 : st[0];
    a.bias_st = st[1];
  }
  if (opt_array(mask_o, "mask", &mask)) {
    auto st = check_f32(mask, 3, "mask", false);
    const int64_t nW = mask.shape(0);
    if (nW < 1 || mask.shape(1) != a.Tq || mask.shape(2) != a.Tk) fail("mask must be [nW, Tq, Tk] with nW >= 1");
    if (a.B % nW != 0) fail("mask: B must be a multiple of nW (batch = images x windows)");
    a.mask = static_cast<const float*>(mask.data());
    a.mask_nw = nW;
    a.mask_sw = st[0];
    a.mask_st = st[1];
  }
  const bool has_h = opt_array(rh_o, "rel_h", &rh), has_w = opt_array(rw_o, "rel_w", &rw);
  if (has_h != has_w) fail("rel_h and rel_w go together");
  if (!has_h) {
    if (!grid_o.is_none()) fail("grid needs rel_h and rel_w");
    return;
  }
  check_f32(rh, 2, "rel_h", true);
  check_f32(rw, 2, "rel_w", true);
  if (rh.shape(1) != a.Dh || rw.shape(1) != a.Dh) fail("rel_h and rel_w must have Dh columns");
  if (rh.shape(0) % 2 == 0 || rw.shape(0) % 2 == 0) fail("rel_h and rel_w must have 2g - 1 rows");
  const int64_t gh = (rh.shape(0) + 1) / 2, gw = (rw.shape(0) + 1) / 2;
  if (!grid_o.is_none()) {
    const char* msg = "grid must be (gh, gw) matching rel_h [2gh-1, Dh], rel_w [2gw-1, Dh]";
    if (!py::isinstance<py::sequence>(grid_o) || py::len(grid_o) != 2) fail(msg);
    const py::sequence g = py::reinterpret_borrow<py::sequence>(grid_o);
    int64_t g0 = -1, g1 = -1;
    try {
      g0 = g[0].cast<int64_t>();
      g1 = g[1].cast<int64_t>();
    } catch (const py::cast_error&) {
      fail(msg);
    }
    if (g0 != gh || g1 != gw) fail(msg);
  }
  if (a.Tq != a.Tk || gh * gw != a.Tq) fail("relative position needs Tq == Tk == gh * gw");
  a.rel_h = static_cast<const float*>(rh.data());
  a.rel_w = static_cast<const float*>(rw.data());
  a.rel_gh = gh;
  a.rel_gw = gw;
}

farray attention_hook(const std::string& isa_s, const py::array& Q, const py::array& K, const py::array& V, float scale,
                      int nth, const py::object& bias, const py::object& mask, const py::object& rel_h,
                      const py::object& rel_w, const py::object& grid) {
  const KernelTable& t = kernel_table(isa_arg(isa_s));
  nth_arg(nth);
  auto qs = check_f32(Q, 4, "Q", false);
  auto ks = check_f32(K, 4, "K", false);
  auto vs = check_f32(V, 4, "V", false);
  const int64_t B = Q.shape(0), Tq = Q.shape(1), H = Q.shape(2), Dh = Q.shape(3);
  const int64_t Tk = K.shape(1);
  if (K.shape(0) != B || K.shape(2) != H || K.shape(3) != Dh) fail("K must be [B, Tk, H, Dh] matching Q");
  for (int i = 0; i < 4; ++i)
    if (V.shape(i) != K.shape(i)) fail("V must have the shape of K");
  if (B < 1 || Tq < 1 || H < 1 || Dh < 1 || Tk < 1) fail("all dimensions must be >= 1");
  farray O({B, Tq, H, Dh});
  AttentionArgs a;
  a.B = B; a.H = H; a.Tq = Tq; a.Tk = Tk; a.Dh = Dh;
  a.Q = static_cast<const float*>(Q.data()); a.q_sb = qs[0]; a.q_st = qs[1]; a.q_sh = qs[2];
  a.K = static_cast<const float*>(K.data()); a.k_sb = ks[0]; a.k_st = ks[1]; a.k_sh = ks[2];
  a.V = static_cast<const float*>(V.data()); a.v_sb = vs[0]; a.v_st = vs[1]; a.v_sh = vs[2];
  a.O = O.mutable_data(); a.o_sb = Tq * H * Dh; a.o_st = H * Dh; a.o_sh = Dh;
  a.scale = scale;
  attention_terms(a, bias, mask, rel_h, rel_w, grid);
  run_attention(t, a, nth);
  return O;
}

AttentionArgs fused_args(const float* qkv, float* O, int64_t B, int64_t T, int64_t H, int64_t Dh, float scale) {
  AttentionArgs a;
  a.B = B; a.H = H; a.Tq = T; a.Tk = T; a.Dh = Dh;
  const int64_t st = 3 * H * Dh, sb = T * st;
  a.Q = qkv;              a.q_sb = sb; a.q_st = st; a.q_sh = Dh;
  a.K = qkv + H * Dh;     a.k_sb = sb; a.k_st = st; a.k_sh = Dh;
  a.V = qkv + 2 * H * Dh; a.v_sb = sb; a.v_st = st; a.v_sh = Dh;
  a.O = O; a.o_sb = T * H * Dh; a.o_st = H * Dh; a.o_sh = Dh;
  a.scale = scale;
  return a;
}

// qkv: [B, T, 3, H, Dh] C-contiguous (the engine's fused projection) -> O [B, T, H*Dh].
farray attention_fused_hook(const std::string& isa_s, const py::array& qkv, float scale, int nth) {
  const KernelTable& t = kernel_table(isa_arg(isa_s));
  nth_arg(nth);
  check_f32(qkv, 5, "qkv", true);
  if (qkv.shape(2) != 3) fail("qkv must be [B, T, 3, H, Dh]");
  const int64_t B = qkv.shape(0), T = qkv.shape(1), H = qkv.shape(3), Dh = qkv.shape(4);
  if (B < 1 || T < 1 || H < 1 || Dh < 1) fail("all dimensions must be >= 1");
  farray O({B, T, H * Dh});
  AttentionArgs a = fused_args(static_cast<const float*>(qkv.data()), O.mutable_data(), B, T, H, Dh, scale);
  run_attention(t, a, nth);
  return O;
}

// Seconds per call (median over calls run for at least min_seconds after one warm-up call) of
// the attention over a fused qkv [B, T, 3, H, Dh] with nth real threads (spawned per call).
// Optional terms: rel_gh > 0: decomposed relative position on a rel_gh x (T / rel_gh) grid;
// bias: a per-head [H, T, T] bias; mask_nw > 0: a [mask_nw, T, T] window mask (0 / -100).
double attention_bench_hook(const std::string& isa_s, int64_t B, int64_t H, int64_t T, int64_t Dh, int nth,
                            double min_seconds, int64_t rel_gh, bool with_bias, int64_t mask_nw) {
  const KernelTable& t = kernel_table(isa_arg(isa_s));
  nth_arg(nth);
  if (B < 1 || H < 1 || T < 1 || Dh < 1) fail("all dimensions must be >= 1");
  if (rel_gh < 0 || (rel_gh > 0 && T % rel_gh != 0)) fail("rel_gh must divide T");
  if (mask_nw < 0 || (mask_nw > 0 && B % mask_nw != 0)) fail("B must be a multiple of mask_nw");
  std::vector<float> qkv(static_cast<size_t>(B * T * 3 * H * Dh)), O(static_cast<size_t>(B * T * H * Dh));
  std::mt19937 rng(1234);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (auto& v : qkv) v = nd(rng);
  AttentionArgs a = fused_args(qkv.data(), O.data(), B, T, H, Dh, 1.0f / std::sqrt(static_cast<float>(Dh)));
  std::vector<float> rel_h, rel_w, bias, mask;
  if (rel_gh > 0) {
    const int64_t gw = T / rel_gh;
    rel_h.resize(static_cast<size_t>((2 * rel_gh - 1) * Dh));
    rel_w.resize(static_cast<size_t>((2 * gw - 1) * Dh));
    for (auto& v : rel_h) v = 0.1f * nd(rng);
    for (auto& v : rel_w) v = 0.1f * nd(rng);
    a.rel_h = rel_h.data(); a.rel_w = rel_w.data(); a.rel_gh = rel_gh; a.rel_gw = gw;
  }
  if (with_bias) {
    bias.resize(static_cast<size_t>(H * T * T));
    for (auto& v : bias) v = nd(rng);
    a.bias = bias.data(); a.bias_sh = T * T; a.bias_st = T;
  }
  if (mask_nw > 0) {
    mask.resize(static_cast<size_t>(mask_nw * T * T));
    for (size_t i = 0; i < mask.size(); ++i) mask[i] = (i * 2654435761u >> 7) % 4 == 0 ? -100.0f : 0.0f;
    a.mask = mask.data(); a.mask_nw = mask_nw; a.mask_sw = T * T; a.mask_st = T;
  }
  const size_t per = t.attention_workspace(a);
  std::vector<unsigned char> ws(per * static_cast<size_t>(nth) + 64);
  py::gil_scoped_release nogil;
  auto once = [&] {
    std::vector<std::thread> th;
    th.reserve(static_cast<size_t>(nth - 1));
    for (int i = 1; i < nth; ++i) th.emplace_back([&, i] { t.attention(a, ws.data(), i, nth); });
    t.attention(a, ws.data(), 0, nth);
    for (auto& x : th) x.join();
  };
  once();
  std::vector<double> times;
  auto start = std::chrono::steady_clock::now();
  do {
    auto t0 = std::chrono::steady_clock::now();
    once();
    auto t1 = std::chrono::steady_clock::now();
    times.push_back(std::chrono::duration<double>(t1 - t0).count());
  } while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < min_seconds ||
           times.size() < 3);
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace

void bind_test_ops(py::module_& t) {
  t.def("ops_isa_supported", [](const std::string& name) {
    Isa isa;
    try {
      isa = parse_isa(name);
    } catch (const std::exception& e) {
      fail(e.what());
    }
    std::string why;
    bool ok = isa_supported(isa, &why);
    return py::make_tuple(ok, ok ? std::string() : why);
  }, py::arg("isa"), "(supported, missing feature) for a kernel level name (ref|avx2|avx512)");
  t.def("layernorm", &layernorm_hook, py::arg("isa"), py::arg("X"), py::arg("gamma"), py::arg("beta"),
        py::arg("eps"), py::arg("nth"), py::arg("inplace"),
        "Y = layer norm of the rows of X [rows, D] (row stride may exceed D); inplace runs with Y == X");
  t.def("activation", &activation_hook, py::arg("isa"), py::arg("X"), py::arg("act"), py::arg("nth"),
        "Y = act(X) for X float32[n] through the table's activation kernel");
  t.def("act_inplace", &act_inplace_hook, py::arg("isa"), py::arg("X"), py::arg("act"),
        "Y = act(X) through <isa>::act_inplace (the GEMM epilogue) on a copy of X");
  t.def("attention", &attention_hook, py::arg("isa"), py::arg("Q"), py::arg("K"), py::arg("V"), py::arg("scale"),
        py::arg("nth"), py::arg("bias") = py::none(), py::arg("mask") = py::none(), py::arg("rel_h") = py::none(),
        py::arg("rel_w") = py::none(), py::arg("grid") = py::none(),
        "O[B,Tq,H,Dh] = softmax(scale Q K^T + terms) V per (b, h); Q, K, V are [B,T,H,Dh] float32 views whose "
        "last dimension is contiguous (any other strides). Optional additive terms (AttentionArgs): bias "
        "[1 or H, Tq, Tk], mask [nW, Tq, Tk] (batch b uses window b % nW), decomposed relative position "
        "rel_h [2gh-1, Dh] and rel_w [2gw-1, Dh] (Tq == Tk == gh*gw; grid=(gh, gw) optional check)");
  t.def("attention_fused_qkv", &attention_fused_hook, py::arg("isa"), py::arg("qkv"), py::arg("scale"),
        py::arg("nth"), "O[B,T,H*Dh] from a fused qkv [B,T,3,H,Dh] float32 C-contiguous array");
  t.def("attention_bench", &attention_bench_hook, py::arg("isa"), py::arg("B"), py::arg("H"), py::arg("T"),
        py::arg("Dh"), py::arg("threads"), py::arg("min_seconds"), py::arg("rel_gh") = 0, py::arg("bias") = false,
        py::arg("mask_nw") = 0,
        "median seconds per fused-qkv attention call with `threads` std::threads; rel_gh > 0 adds the "
        "decomposed relative position on a rel_gh x T/rel_gh grid, bias a [H,T,T] bias, mask_nw > 0 a "
        "[mask_nw,T,T] window mask");
}

}  // namespace pyvitcpp
