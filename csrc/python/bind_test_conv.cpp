// Test hooks for the conv and pooling kernels (pyvitcpp._testing). Not a public API.
//
// Each hook validates its arrays and raises ValueError instead of crashing, then runs the named
// level's kernel for ith = 0..nth-1 one after another on this thread (the kernels never
// synchronise, so this is exactly the parallel result). Geometry: square kernel/stride/dilation,
// padding either explicit and symmetric (pad >= 0) or TF "SAME" (same=True).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/aligned.h"
#include "core/cpu.h"
#include "core/dtype.h"
#include "core/fp16.h"
#include "kernels/conv.h"
#include "kernels/kernels.h"
#include "ops/conv_ops.h"
#include "python/bindings.h"

namespace py = pybind11;

namespace pyvitcpp {
namespace {

using farray = py::array_t<float, py::array::c_style | py::array::forcecast>;

[[noreturn]] void fail(const std::string& msg) { throw py::value_error(msg); }

const KernelTable& table(const std::string& name) {
  Isa isa;
  try {
    isa = parse_isa(name);
  } catch (const std::exception& e) {
    fail(e.what());
  }
  std::string why;
  if (!isa_supported(isa, &why)) fail("kernel level " + name + " needs " + why + ", which this CPU/OS lacks");
  return kernel_table(isa);
}

farray f32(const py::object& o, const char* what, int ndim) {
  if (!py::isinstance<py::array>(o)) fail(std::string(what) + " must be a numpy array");
  py::array a = o.cast<py::array>();
  if (!a.dtype().is(py::dtype::of<float>())) fail(std::string(what) + " must be float32");
  if (a.ndim() != ndim) fail(std::string(what) + " must have " + std::to_string(ndim) + " dimensions");
  return farray::ensure(a);
}

void check_geom(int64_t k, int64_t stride, int64_t dil, int64_t pad, int nth) {
  if (k < 1 || k > 64) fail("kernel size must be in [1, 64]");
  if (stride < 1 || stride > 64) fail("stride must be in [1, 64]");
  if (dil < 1 || dil > 64) fail("dilation must be in [1, 64]");
  if (pad < 0 || pad > 64) fail("padding must be in [0, 64]");
  if (nth < 1 || nth > 1024) fail("nth must be in [1, 1024]");
}

ConvAxis axis(int64_t in, int64_t k, int64_t stride, int64_t dil, int64_t pad, bool same) {
  ConvAxis a = same ? conv_axis_same(in, k, stride, dil) : conv_axis_sym(in, k, stride, dil, pad);
  if (a.out < 1) fail("the kernel does not fit the (padded) input");
  return a;
}

Act act_of(int act) {
  if (act < 0 || act > kActLast) fail("act must be in 0.." + std::to_string(kActLast));
  return static_cast<Act>(act);
}

// x: [B, H, W, C]; wt: [KH*KW, C] tap-major. Returns [B, OH, OW, C].
farray dwconv_hook(const std::string& isa, const py::object& xo, const py::object& wo, const py::object& bo,
                   int64_t k, int64_t stride, int64_t dil, int64_t pad, bool same, int act, int nth) {
  const KernelTable& t = table(isa);
  check_geom(k, stride, dil, pad, nth);
  farray x = f32(xo, "x", 4), wt = f32(wo, "wt", 2);
  const int64_t B = x.shape(0), H = x.shape(1), W = x.shape(2), C = x.shape(3);
  if (B < 1 || C < 1) fail("x must hold at least one image and one channel");
  if (wt.shape(0) != k * k || wt.shape(1) != C) fail("wt must have shape [k*k, C]");
  farray b;
  DwConv2dArgs a;
  if (!bo.is_none()) {
    b = f32(bo, "bias", 1);
    if (b.shape(0) != C) fail("bias must have C elements");
    a.bias = b.data();
  }
  a.B = B;
  a.C = C;
  a.h = axis(H, k, stride, dil, pad, same);
  a.w = axis(W, k, stride, dil, pad, same);
  a.X = x.data();
  a.Wt = wt.data();
  a.act = act_of(act);
  farray y({B, a.h.out, a.w.out, C});
  a.Y = y.mutable_data();
  py::gil_scoped_release nogil;
  for (int i = 0; i < nth; ++i) t.dwconv2d(a, i, nth);
  return y;
}

farray pool_hook(const std::string& isa, const py::object& xo, int64_t k, int64_t stride, int64_t pad, bool same,
                 bool is_max, bool count_include_pad, int nth) {
  const KernelTable& t = table(isa);
  check_geom(k, stride, 1, pad, nth);
  farray x = f32(xo, "x", 4);
  const int64_t B = x.shape(0), H = x.shape(1), W = x.shape(2), C = x.shape(3);
  if (B < 1 || C < 1) fail("x must hold at least one image and one channel");
  Pool2dArgs a;
  a.B = B;
  a.C = C;
  a.h = axis(H, k, stride, 1, pad, same);
  a.w = axis(W, k, stride, 1, pad, same);
  a.kind = is_max ? PoolKind::Max : PoolKind::Avg;
  a.count_include_pad = count_include_pad;
  a.X = x.data();
  farray y({B, a.h.out, a.w.out, C});
  a.Y = y.mutable_data();
  py::gil_scoped_release nogil;
  for (int i = 0; i < nth; ++i) t.pool2d(a, i, nth);
  return y;
}

// General conv. isa "direct": the scalar specification (ref::conv2d_direct); otherwise what the
// CNN graphs run: per group, that level's GEMM with the weight permuted to (ky, kx, c) columns
// and packed, over the group's im2col matrix, which the GEMM gathers from the NHWC map as it
// packs (gather=True, the graph's fused conv; NCHW pixels too) or reads from an Im2col op's
// buffer (gather=False). With gather, direct=True lets the SIMD levels run the conv
// directly (kernels/conv_direct_driver.h, where conv_direct_ok allows); direct=False forces the
// gathering GEMM; row=False keeps the direct conv on its general microkernel (no NHWC row
// tiles). f16: the weight is stored as F16 (a converter's default), which the GEMMs
// widen as they load (give w already rounded to fp16 to compare with the spec). x: NHWC
// [B, H, W, C] (or NCHW when nchw);
// w: PyTorch [OC, C/groups, k, k]; residual: [B, OH, OW, OC] or None. Returns NHWC.
farray conv_hook(const std::string& isa, const py::object& xo, const py::object& wo, const py::object& bo,
                 int64_t stride, int64_t dil, int64_t pad, bool same, int64_t groups, int act,
                 const py::object& ro, bool nchw, bool gather, int nth, bool direct, bool f16, bool row,
                 bool winograd, bool relu_out) {
  farray x = f32(xo, "x", 4), w = f32(wo, "w", 4);
  const int64_t B = x.shape(0);
  const int64_t C = nchw ? x.shape(1) : x.shape(3);
  const int64_t H = nchw ? x.shape(2) : x.shape(1), W = nchw ? x.shape(3) : x.shape(2);
  const int64_t OC = w.shape(0), k = w.shape(2);
  check_geom(k, stride, dil, pad, nth);
  if (w.shape(3) != k) fail("w must be square [OC, C/groups, k, k]");
  if (groups < 1 || C % groups || OC % groups) fail("groups must divide C and OC");
  const int64_t Cg = C / groups, OCg = OC / groups;
  if (w.shape(1) != Cg) fail("w must have shape [OC, C/groups, k, k]");
  if (B < 1 || C < 1 || OC < 1) fail("empty input or weight");
  Conv2dRefArgs a;
  a.B = B; a.C = C; a.OC = OC; a.groups = groups;
  a.h = axis(H, k, stride, dil, pad, same);
  a.w = axis(W, k, stride, dil, pad, same);
  a.nchw_input = nchw;
  a.X = x.data();
  a.W = w.data();
  a.act = act_of(act);
  a.relu_out = relu_out;
  farray b, res;
  if (!bo.is_none()) {
    b = f32(bo, "bias", 1);
    if (b.shape(0) != OC) fail("bias must have OC elements");
    a.bias = b.data();
  }
  if (!ro.is_none()) {
    res = f32(ro, "residual", 4);
    if (res.shape(0) != B || res.shape(1) != a.h.out || res.shape(2) != a.w.out || res.shape(3) != OC)
      fail("residual must have the output's shape [B, OH, OW, OC]");
    a.residual = res.data();
  }
  farray y({B, a.h.out, a.w.out, OC});
  a.Y = y.mutable_data();
  if (isa == "direct") {
    if (nth < 1 || nth > 1024) fail("nth must be in [1, 1024]");
    py::gil_scoped_release nogil;
    for (int i = 0; i < nth; ++i) ref::conv2d_direct(a, i, nth);
    return y;
  }
  const KernelTable& t = table(isa);
  const int64_t M = B * a.h.out * a.w.out, K = k * k * Cg;
  const bool use_gather = gather;
  std::vector<float> cols(use_gather ? 0 : static_cast<size_t>(M * K)), wg(static_cast<size_t>(OCg * K));
  std::vector<uint16_t> wh(f16 ? wg.size() : 0);
  py::gil_scoped_release nogil;
  for (int64_t g = 0; g < groups; ++g) {
    permute_conv_weight_khwc(a.W + g * OCg * Cg * k * k, DType::F32, OCg, Cg, k, k, wg.data());
    const DType wt = f16 ? DType::F16 : DType::F32;
    if (f16)
      for (size_t i = 0; i < wg.size(); ++i) wh[i] = fp32_to_fp16(wg[i]);
    const void* wraw = f16 ? static_cast<const void*>(wh.data()) : wg.data();
    AlignedBuffer packed;
    const size_t pbytes = t.gemm_pack_size(wt, OCg, K);
    if (pbytes) {
      packed.resize(pbytes);
      t.gemm_pack(wraw, wt, OCg, K, packed.data());
    }
    AlignedBuffer wino;
    if (winograd && t.wino_pack && k == 3) {
      wino.resize(t.wino_pack_size(OCg, Cg));
      t.wino_pack(wraw, wt, OCg, Cg, wino.data());
    }
    GemmArgs ga;
    ConvGather cg;
    cg.X = a.X; cg.B = B; cg.C = C; cg.c0 = g * Cg; cg.cg = Cg; cg.h = a.h; cg.w = a.w;
    if (!wino.empty()) cg.wino = reinterpret_cast<const float*>(wino.data());
    cg.nchw = nchw;
    cg.allow_direct = direct;
    cg.allow_row = row;
    if (use_gather) {
      ga.conv = &cg;
    } else {
      for (int i = 0; i < nth; ++i) im2col(cg, nchw, cols.data(), i, nth);
      ga.X = cols.data(); ga.ldx = K;
    }
    ga.M = M; ga.N = OCg; ga.K = K;
    ga.W_raw = wraw; ga.wtype = wt;
    ga.W_packed = pbytes ? packed.data() : nullptr;
    ga.bias = a.bias ? a.bias + g * OCg : nullptr;
    ga.act = a.act;
    ga.relu_out = relu_out;
    if (a.residual) {
      ga.residual = a.residual + g * OCg;
      ga.ldr = OC;
    }
    ga.Y = a.Y + g * OCg;
    ga.ldy = OC;
    for (int i = 0; i < nth; ++i) t.gemm(ga, i, nth);
  }
  return y;
}

// GFLOP/s of one thread's CPU time (CLOCK_THREAD_CPUTIME_ID: no core cycle counter in the dev
// VMs; CPU time leaves out the time other processes hold the core) running a conv as the CNN graphs do (NHWC map, weight
// permuted and packed once outside the timing, bias + activation epilogue (act, ReLU by default), `shares` shares run one
// after another): path "direct" (where the level allows), "gather" (the gathering GEMM) or "gemm"
// (the plain GEMM over an im2col matrix made outside the timing: what a 1x1 conv runs as a Linear).
// Best of 5 chunks of `reps` calls (shared machines: the least disturbed chunk).
double conv_rate(const std::string& isa, int64_t B, int64_t H, int64_t W, int64_t C, int64_t OC, int64_t k,
                   int64_t stride, int64_t pad, const std::string& path, int shares, int reps, int act) {
  if (path != "direct" && path != "gather" && path != "gemm" && path != "winograd")
    fail("path must be direct, gather, gemm or winograd");
  const bool direct = path == "direct";
  const KernelTable& t = table(isa);
  check_geom(k, stride, 1, pad, shares);
  if (B < 1 || H < 1 || W < 1 || C < 1 || OC < 1 || reps < 1) fail("sizes and reps must be >= 1");
  ConvGather cg;
  cg.B = B; cg.C = C; cg.c0 = 0; cg.cg = C;
  cg.h = axis(H, k, stride, 1, pad, false);
  cg.w = axis(W, k, stride, 1, pad, false);
  cg.allow_direct = direct;
  AlignedBuffer wino;
  if (path == "winograd") {
    if (!t.wino_pack || k != 3 || stride != 1) fail("the winograd path needs a SIMD level and a 3x3 stride-1 conv");
    cg.allow_direct = true;
  }
  const int64_t M = B * cg.h.out * cg.w.out, K = k * k * C;
  std::vector<float> x(static_cast<size_t>(B * H * W * C)), w(static_cast<size_t>(OC * K)), bias(OC);
  std::vector<float> y(static_cast<size_t>(M * OC));
  uint32_t st = 12345;
  auto rnd = [&] { st = st * 1664525u + 1013904223u; return static_cast<float>(st >> 8) / 8388608.0f - 1.0f; };
  for (auto& v : x) v = rnd();
  for (auto& v : w) v = rnd();
  for (auto& v : bias) v = rnd();
  AlignedBuffer packed;
  const size_t pbytes = t.gemm_pack_size(DType::F32, OC, K);
  if (pbytes) {
    packed.resize(pbytes);
    t.gemm_pack(w.data(), DType::F32, OC, K, packed.data());
  }
  if (path == "winograd") {
    wino.resize(t.wino_pack_size(OC, C));
    t.wino_pack(w.data(), DType::F32, OC, C, wino.data());
    cg.wino = reinterpret_cast<const float*>(wino.data());
  }
  cg.X = x.data();
  GemmArgs ga;
  std::vector<float> cols;
  if (path == "gemm") {  // the im2col matrix made once, outside the timing: the plain GEMM alone
    cols.resize(static_cast<size_t>(M * K));
    im2col(cg, false, cols.data(), 0, 1);
    ga.X = cols.data();
    ga.ldx = K;
  } else {
    ga.conv = &cg;
  }
  ga.M = M; ga.N = OC; ga.K = K;
  ga.W_raw = w.data(); ga.wtype = DType::F32;
  ga.W_packed = pbytes ? packed.data() : nullptr;
  ga.bias = bias.data();
  ga.act = act_of(act);
  ga.Y = y.data();
  ga.ldy = OC;
  py::gil_scoped_release nogil;
  auto cpu_s = [] {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
  };
  auto call = [&] { for (int i = 0; i < shares; ++i) t.gemm(ga, i, shares); };
  call();
  double best = 0;
  for (int c = 0; c < 5; ++c) {
    const double c0 = cpu_s();
    for (int r = 0; r < reps; ++r) call();
    best = std::max(best, 2e-9 * static_cast<double>(M * OC * K) * reps / std::max(cpu_s() - c0, 1e-9));
  }
  return best;
}

py::tuple same_padding(int64_t in, int64_t k, int64_t stride, int64_t dil) {
  ConvAxis a = conv_axis_same(in, k, stride, dil);
  return py::make_tuple(a.out, a.pad0);
}

}  // namespace

void bind_test_conv(py::module_& t) {
  t.def("dwconv2d", &dwconv_hook, py::arg("isa"), py::arg("x"), py::arg("wt"), py::arg("bias"), py::arg("k"),
        py::arg("stride") = 1, py::arg("dilation") = 1, py::arg("pad") = 0, py::arg("same") = false,
        py::arg("act") = 0, py::arg("nth") = 1);
  t.def("pool2d", &pool_hook, py::arg("isa"), py::arg("x"), py::arg("k"), py::arg("stride"), py::arg("pad") = 0,
        py::arg("same") = false, py::arg("is_max") = true, py::arg("count_include_pad") = true, py::arg("nth") = 1);
  t.def("conv2d", &conv_hook, py::arg("isa"), py::arg("x"), py::arg("w"), py::arg("bias"), py::arg("stride") = 1,
        py::arg("dilation") = 1, py::arg("pad") = 0, py::arg("same") = false, py::arg("groups") = 1,
        py::arg("act") = 0, py::arg("residual") = py::none(), py::arg("nchw") = false, py::arg("gather") = true,
        py::arg("nth") = 1, py::arg("direct") = true, py::arg("f16") = false, py::arg("row") = true,
        py::arg("winograd") = false, py::arg("relu_out") = false);
  t.def("conv_rate", &conv_rate, py::arg("isa"), py::arg("B"), py::arg("H"), py::arg("W"), py::arg("C"),
        py::arg("OC"), py::arg("k"), py::arg("stride") = 1, py::arg("pad") = 0, py::arg("path") = "direct",
        py::arg("shares") = 1, py::arg("reps") = 3, py::arg("act") = 5,
        "GFLOP/s (thread CPU time) of one thread running the level's conv GEMM (direct or gathering)");
  t.def("same_padding", &same_padding, py::arg("size"), py::arg("k"), py::arg("stride"), py::arg("dilation") = 1,
        "TF SAME geometry along one axis: (output size, padding before)");
}

}  // namespace pyvitcpp
