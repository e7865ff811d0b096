// GEMM hooks for the test suite and for measuring (pyvitcpp._core.testing): run one level's
// GEMM on numpy arrays, time it with real threads, and measure the FMA peak it is judged by.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/cpu.h"
#include "core/cycles.h"
#include "core/fp16.h"
#include "kernels/avx2/gemm_avx2.h"
#include "kernels/avx512/gemm_avx512.h"
#include "kernels/kernels.h"
#include "quant/quantize.h"
#include "python/bindings.h"

namespace py = pybind11;

namespace pyvitcpp {
namespace {

using Clock = std::chrono::steady_clock;

Isa level_or_throw(const std::string& isa) {
  Isa lvl;
  try {
    lvl = parse_isa(isa);
  } catch (const std::runtime_error& e) {
    throw py::value_error(e.what());
  }
  std::string why;
  if (!isa_supported(lvl, &why))
    throw std::runtime_error("kernel level " + isa + " is not supported here: missing " + why);
  return lvl;
}

struct AlignedDeleter {
  void operator()(void* p) const { ::operator delete(p, std::align_val_t(64)); }
};
using AlignedBuf = std::unique_ptr<void, AlignedDeleter>;

AlignedBuf aligned_bytes(size_t n) {  // 64-byte aligned, as a loader would place panels
  if (n == 0) return AlignedBuf(nullptr);
  return AlignedBuf(::operator new(n, std::align_val_t(64)));
}

bool is_f32(const py::array& a) { return a.dtype().is(py::dtype::of<float>()); }
bool is_f16(const py::array& a) { return a.dtype().is(py::dtype("float16")); }

// A 2-D float32 array whose rows are contiguous (any row stride >= cols): returned as is,
// with its row stride in elements; anything else (negative/odd strides) is copied.
py::array rows_contiguous(const py::array& a, int64_t* ld) {
  const int64_t cols = a.shape(1);
  if (a.strides(1) == static_cast<py::ssize_t>(sizeof(float)) && a.strides(0) > 0 &&
      a.strides(0) % static_cast<py::ssize_t>(sizeof(float)) == 0 &&
      a.strides(0) / static_cast<py::ssize_t>(sizeof(float)) >= cols) {
    *ld = a.strides(0) / static_cast<py::ssize_t>(sizeof(float));
    return a;
  }
  py::array c = py::module_::import("numpy").attr("ascontiguousarray")(a);
  *ld = cols;
  return c;
}

py::array gemm_hook(const std::string& isa, const py::array& X_in, const py::array& W_in,
                    const py::object& bias_in, int act, const py::object& residual_in,
                    bool residual_inplace, int nth, int64_t ldy, bool packed_w) {
  const KernelTable& t = kernel_table(level_or_throw(isa));
  if (!is_f32(X_in) || X_in.ndim() != 2) throw py::value_error("X must be a 2-D float32 array");
  if ((!is_f32(W_in) && !is_f16(W_in)) || W_in.ndim() != 2)
    throw py::value_error("W must be a 2-D float32 or float16 array [N, K]");
  const int64_t M = X_in.shape(0), K = X_in.shape(1), N = W_in.shape(0);
  if (W_in.shape(1) != K) throw py::value_error("W must have shape [N, K] with K = X.shape[1]");
  if (M < 1 || N < 1 || K < 1) throw py::value_error("M, N and K must be >= 1");
  if (act < 0 || act > kActLast) throw py::value_error("act must be in 0.." + std::to_string(kActLast));
  if (nth < 1 || nth > 4096) throw py::value_error("nth must be in 1..4096");
  if (ldy == 0) ldy = N;
  if (ldy < N) throw py::value_error("ldy must be >= N");

  int64_t ldx = 0;
  py::array X = rows_contiguous(X_in, &ldx);
  py::array W = py::module_::import("numpy").attr("ascontiguousarray")(W_in);
  const DType wtype = is_f32(W) ? DType::F32 : DType::F16;

  // (a default py::array is a 0-size array, not "none": keep explicit pointers)
  py::array bias, residual;
  const float* bias_p = nullptr;
  const float* res_p = nullptr;
  if (!bias_in.is_none()) {
    if (!py::isinstance<py::array>(bias_in)) throw py::value_error("bias must be None or a numpy array");
    bias = py::module_::import("numpy").attr("ascontiguousarray")(bias_in);
    if (!is_f32(bias) || bias.ndim() != 1 || bias.shape(0) != N)
      throw py::value_error("bias must be None or a float32 array of shape [N]");
    bias_p = static_cast<const float*>(bias.data());
  }
  int64_t ldr = 0;
  if (!residual_in.is_none()) {
    if (!py::isinstance<py::array>(residual_in)) throw py::value_error("residual must be None or a numpy array");
    residual = py::reinterpret_borrow<py::array>(residual_in);
    if (!is_f32(residual) || residual.ndim() != 2 || residual.shape(0) != M || residual.shape(1) != N)
      throw py::value_error("residual must be None or a float32 array of shape [M, N]");
    residual = rows_contiguous(residual, &ldr);
    res_p = static_cast<const float*>(residual.data());
  }
  if (residual_inplace && residual_in.is_none())
    throw py::value_error("residual_inplace needs a residual");

  // Y lives in an [M, ldy] buffer; unwritten elements stay NaN so a kernel that skips an
  // output (or writes past N) is caught by the caller looking at y.base.
  py::array_t<float> full({M, ldy});
  float* Y = full.mutable_data();
  std::fill(Y, Y + M * ldy, std::numeric_limits<float>::quiet_NaN());
  if (residual_inplace) {
    const float* r = res_p;
    for (int64_t m = 0; m < M; ++m) std::memcpy(Y + m * ldy, r + m * ldr, N * sizeof(float));
  }

  AlignedBuf packed = packed_w ? aligned_bytes(t.gemm_pack_size(wtype, N, K)) : AlignedBuf(nullptr);
  GemmArgs a;
  a.M = M;
  a.N = N;
  a.K = K;
  a.X = static_cast<const float*>(X.data());
  a.ldx = ldx;
  a.W_raw = W.data();
  a.wtype = wtype;
  a.W_packed = packed.get();
  a.bias = bias_p;
  a.act = static_cast<Act>(act);
  a.residual = residual_inplace ? Y : res_p;
  a.ldr = residual_inplace ? ldy : ldr;
  a.Y = Y;
  a.ldy = ldy;
  {
    py::gil_scoped_release nogil;
    if (packed) t.gemm_pack(a.W_raw, wtype, N, K, packed.get());
    for (int ith = 0; ith < nth; ++ith) t.gemm(a, ith, nth);
  }
  return py::array(py::dtype::of<float>(), {M, N},
                   {static_cast<py::ssize_t>(ldy * sizeof(float)), static_cast<py::ssize_t>(sizeof(float))},
                   Y, full);
}

// Sense-reversing barrier; spins briefly, then yields (the dev machines are shared and may
// run more threads than cores).
class SpinBarrier {
 public:
  explicit SpinBarrier(int n) : n_(n) {}
  void wait() {
    const int g = gen_.load(std::memory_order_acquire);
    if (count_.fetch_add(1, std::memory_order_acq_rel) + 1 == n_) {
      count_.store(0, std::memory_order_relaxed);
      gen_.fetch_add(1, std::memory_order_acq_rel);
      return;
    }
    for (int spins = 0; gen_.load(std::memory_order_acquire) == g; ++spins)
      if (spins > 2000) std::this_thread::yield();
  }

 private:
  const int n_;
  std::atomic<int> count_{0};
  std::atomic<int> gen_{0};
};

// Runs body(ith) on nth threads (the caller is thread 0) `reps` times with a barrier after
// each round; returns the seconds from the common start to the end of the last round.
template <class F>
double run_threads(int nth, int64_t reps, const F& body) {
  SpinBarrier bar(nth);
  Clock::time_point t0, t1;
  auto work = [&](int ith) {
    bar.wait();
    if (ith == 0) t0 = Clock::now();
    for (int64_t r = 0; r < reps; ++r) {
      body(ith);
      bar.wait();
    }
    if (ith == 0) t1 = Clock::now();
  };
  std::vector<std::thread> pool;
  for (int i = 1; i < nth; ++i) pool.emplace_back(work, i);
  work(0);
  for (auto& th : pool) th.join();
  return std::chrono::duration<double>(t1 - t0).count();
}

// Best rate over 5 timed chunks after one warm-up round: the machines are shared, and the
// best chunk is the one least disturbed by other work. per_cycle (one thread only): work per
// core cycle of the calling thread instead of per second.
template <class F>
double best_rate(int nth, double min_seconds, double work_per_rep, const F& body, bool per_cycle = false) {
  if (per_cycle) {
    if (nth != 1) throw std::runtime_error("per_cycle needs threads=1");
    CycleCounter cc;
    if (cc.read() < 0) throw std::runtime_error("no cycle counter (perf_event_open failed)");
    double t_one = run_threads(1, 1, body);
    t_one = std::max(run_threads(1, 1, body), 1e-7);
    const int64_t reps = std::max<int64_t>(1, static_cast<int64_t>(min_seconds / 5 / t_one));
    double best = 0;
    for (int c = 0; c < 5; ++c) {
      const double c0 = cc.read();
      run_threads(1, reps, body);
      best = std::max(best, work_per_rep * static_cast<double>(reps) / (cc.read() - c0));
    }
    return best;
  }
  double t_one = run_threads(nth, 1, body);  // warm-up (page faults, caches, scratch)
  t_one = std::max(run_threads(nth, 1, body), 1e-7);
  const int chunks = 5;
  const int64_t reps = std::max<int64_t>(1, static_cast<int64_t>(min_seconds / chunks / t_one));
  double best = 0;
  for (int c = 0; c < chunks; ++c) {
    const double s = run_threads(nth, reps, body);
    best = std::max(best, work_per_rep * static_cast<double>(reps) / s);
  }
  return best;
}

double gemm_bench(const std::string& isa, int64_t M, int64_t N, int64_t K, const std::string& wt,
                  int threads, double min_seconds, bool per_cycle) {
  const KernelTable& t = kernel_table(level_or_throw(isa));
  if (M < 1 || N < 1 || K < 1) throw py::value_error("M, N and K must be >= 1");
  if (threads < 1 || threads > 1024) throw py::value_error("threads must be in 1..1024");
  DType wtype;
  try {
    wtype = parse_quant_type(wt);
  } catch (const std::invalid_argument& e) {
    throw py::value_error(e.what());
  }
  const bool quant = wtype != DType::F32 && wtype != DType::F16;
  if (quant && K % 32 != 0) throw py::value_error("block types need K a multiple of 32");
  py::gil_scoped_release nogil;

  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> X(static_cast<size_t>(M * K)), Wf(static_cast<size_t>(N * K)), bias(N);
  std::vector<float> Y(static_cast<size_t>(M * N));
  for (auto& v : X) v = u(rng);
  for (auto& v : Wf) v = u(rng);
  for (auto& v : bias) v = u(rng);
  std::vector<uint16_t> Wh;
  if (wtype == DType::F16) {
    Wh.resize(Wf.size());
    for (size_t i = 0; i < Wf.size(); ++i) Wh[i] = fp32_to_fp16(Wf[i]);
  }
  std::vector<unsigned char> Wq;
  if (quant) {
    size_t rb = 0;
    row_bytes(static_cast<uint32_t>(wtype), K, &rb);
    Wq.resize(rb * static_cast<size_t>(N));
    quantize_rows(wtype, Wf.data(), N, K, Wq.data(), 0);
  }
  const void* W_raw = wtype == DType::F32 ? static_cast<const void*>(Wf.data())
                      : quant             ? static_cast<const void*>(Wq.data())
                                          : Wh.data();
  AlignedBuf packed = aligned_bytes(quant ? t.qgemm_pack_size(wtype, N, K) : t.gemm_pack_size(wtype, N, K));
  if (packed) (quant ? t.qgemm_pack : t.gemm_pack)(W_raw, wtype, N, K, packed.get());

  GemmArgs a;
  a.M = M;
  a.N = N;
  a.K = K;
  a.X = X.data();
  a.ldx = K;
  a.W_raw = W_raw;
  a.wtype = wtype;
  a.W_packed = packed.get();
  a.bias = bias.data();
  a.Y = Y.data();
  a.ldy = N;
  const double flops = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  const auto kernel = quant ? t.qgemm : t.gemm;
  const double rate = best_rate(threads, min_seconds, flops, [&](int ith) { kernel(a, ith, threads); }, per_cycle);
  return per_cycle ? rate : rate * 1e-9;
}

double fma_peak(const std::string& isa, int threads, double min_seconds, bool per_cycle) {
  const Isa lvl = level_or_throw(isa);
  if (threads < 1 || threads > 1024) throw py::value_error("threads must be in 1..1024");
  double (*probe)(int64_t) = nullptr;
  if (lvl == Isa::Avx2) probe = avx2::gemm_fma_probe;
  else if (lvl == Isa::Avx512) probe = avx512::gemm_fma_probe;
  else throw py::value_error("fma_peak needs a SIMD level (avx2 or avx512)");
  py::gil_scoped_release nogil;
  const int64_t iters = 2000000;
  const double flops = probe(1);  // flops per iteration
  const double rate = best_rate(threads, min_seconds, flops * static_cast<double>(iters) * threads,
                                [&](int) { probe(iters); }, per_cycle);
  return per_cycle ? rate : rate * 1e-9;
}

}  // namespace

void bind_test_gemm(py::module_& t) {
  t.def("gemm", &gemm_hook, py::arg("isa"), py::arg("X"), py::arg("W"), py::arg("bias"), py::arg("act"),
        py::arg("residual"), py::arg("residual_inplace"), py::arg("nth"), py::arg("ldy") = 0, py::arg("packed_w") = true,
        "Y = act(X @ W.T + bias) + residual with one level's packed GEMM, calling the kernel for every\n"
        "ith in 0..nth-1 in turn. W float32 or float16 [N, K]; X may have a row stride (ldx);\n"
        "ldy > N returns a view into an [M, ldy] buffer whose other elements are NaN.\n"
        "packed_w=False passes W_packed = null (the kernel must then fall back to W_raw).");
  t.def("gemm_bench", &gemm_bench, py::arg("isa"), py::arg("M"), py::arg("N"), py::arg("K"),
        py::arg("wtype") = "f32", py::arg("threads") = 1, py::arg("min_seconds") = 1.0, py::arg("per_cycle") = false,
        "GFLOP/s (2MNK per call) of the level's GEMM with bias (wtype f32, f16 or a block type:\n"
        "then the quantized GEMM, activations quantized inside the timed call; per_cycle=True: flop per\n"
        "core cycle of one thread instead of GFLOP/s), run on `threads` std::threads\n"
        "(barrier after each call); best of 5 timed chunks.");
  t.def("fma_peak", &fma_peak, py::arg("isa"), py::arg("threads") = 1, py::arg("min_seconds") = 0.5,
        py::arg("per_cycle") = false,
        "GFLOP/s of a register-only FMA loop (independent accumulators) at the level's vector\n"
        "width, summed over `threads` threads; best of 5 timed chunks. per_cycle=True (threads=1):\n"
        "flop per core cycle instead.");
  t.def(
      "gemm_tile",
      [](const std::string& isa) -> py::tuple {
        const Isa lvl = level_or_throw(isa);
        if (lvl == Isa::Avx2) return py::make_tuple(int(avx2::kGemmMR), int(avx2::kGemmNR));
        if (lvl == Isa::Avx512) return py::make_tuple(int(avx512::kGemmMR), int(avx512::kGemmNR));
        return py::make_tuple(1, 1);
      },
      py::arg("isa"), "(MR, NR): the level's GEMM register tile (rows of X, outputs per W panel).");
  t.def(
      "isa_supported",
      [](const std::string& isa) {
        Isa lvl;
        try {
          lvl = parse_isa(isa);
        } catch (const std::runtime_error& e) {
          throw py::value_error(e.what());
        }
        std::string why;
        const bool ok = isa_supported(lvl, &why);
        return py::make_tuple(ok, ok ? std::string() : why);
      },
      py::arg("isa"), "(supported, missing_feature) for ref, avx2 or avx512.");
}

}  // namespace pyvitcpp
