// Measurement tools, public as pyvitcpp.perf (the `pyvitcpp bench` peaks, docs/PERFORMANCE.md):
// the GFLOP/s of one level's GEMM at a given shape, timed on real threads, and the FMA peak of
// a register-only loop that the GEMM is judged by, and the int8 peak of the level's integer
// dot-product instruction that the block-quantized GEMM is judged by.
#include <pybind11/pybind11.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <time.h>
#include <vector>

#include "core/cpu.h"
#include "core/cycles.h"
#include "core/fp16.h"
#include "kernels/avx2/gemm_avx2.h"
#include "kernels/avx512/gemm_avx512.h"
#include "kernels/kernels.h"
#include "python/bind_util.h"
#include "python/bindings.h"
#include "quant/quantize.h"

namespace py = pybind11;

namespace pyvitcpp {
namespace {

using Clock = std::chrono::steady_clock;

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

// Thread CPU seconds of the calling thread (CLOCK_THREAD_CPUTIME_ID): on a shared machine the
// seconds this thread actually ran, whatever share of a core the scheduler gave it.
double thread_cpu_seconds() {
#ifdef __linux__
  timespec ts{};
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0) return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
#endif
  return -1.0;
}

// What a rate is per: wall seconds (all threads), or, with one thread only, core cycles
// (perf_event_open) or CPU seconds of the calling thread.
enum class Per { Wall, Cycle, CpuSecond };

Per per_of(bool per_cycle, bool cpu_time) {
  if (per_cycle && cpu_time) throw py::value_error("per_cycle and cpu_time exclude each other");
  return per_cycle ? Per::Cycle : cpu_time ? Per::CpuSecond : Per::Wall;
}

// Best rate over 5 timed chunks after one warm-up round: the machines are shared, and the
// best chunk is the one least disturbed by other work. Per::Cycle / Per::CpuSecond (one thread
// only): work per core cycle / per CPU second of the calling thread instead of per second.
template <class F>
double best_rate(int nth, double min_seconds, double work_per_rep, const F& body, Per per = Per::Wall) {
  if (per != Per::Wall) {
    if (nth != 1) throw std::runtime_error(per == Per::Cycle ? "per_cycle needs threads=1" : "cpu_time needs threads=1");
    CycleCounter cc;
    auto now = [&] { return per == Per::Cycle ? cc.read() : thread_cpu_seconds(); };
    if (now() < 0)
      throw std::runtime_error(per == Per::Cycle ? "no cycle counter (perf_event_open failed)" : "no thread CPU clock");
    double t_one = run_threads(1, 1, body);
    t_one = std::max(run_threads(1, 1, body), 1e-7);
    const int64_t reps = std::max<int64_t>(1, static_cast<int64_t>(min_seconds / 5 / t_one));
    double best = 0;
    for (int c = 0; c < 5; ++c) {
      const double c0 = now();
      run_threads(1, reps, body);
      best = std::max(best, work_per_rep * static_cast<double>(reps) / std::max(now() - c0, 1e-12));
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
                  int threads, double min_seconds, bool per_cycle, bool cpu_time) {
  const Per per = per_of(per_cycle, cpu_time);
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
  // X and Y 64-byte aligned, as the graph's arena places activations: from std::vector (malloc:
  // 16 bytes past a page for large blocks) every 64-byte store of Y would split two cache lines.
  AlignedBuf xbuf = aligned_bytes(static_cast<size_t>(M * K) * sizeof(float));
  AlignedBuf ybuf = aligned_bytes(static_cast<size_t>(M * N) * sizeof(float));
  float* X = static_cast<float*>(xbuf.get());
  float* Y = static_cast<float*>(ybuf.get());
  std::vector<float> Wf(static_cast<size_t>(N * K)), bias(N);
  for (int64_t i = 0; i < M * K; ++i) X[i] = u(rng);
  std::fill(Y, Y + M * N, 0.0f);
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
  a.X = X;
  a.ldx = K;
  a.W_raw = W_raw;
  a.wtype = wtype;
  a.W_packed = packed.get();
  a.bias = bias.data();
  a.Y = Y;
  a.ldy = N;
  const double flops = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  const auto kernel = quant ? t.qgemm : t.gemm;
  const double rate = best_rate(threads, min_seconds, flops, [&](int ith) { kernel(a, ith, threads); }, per);
  return per == Per::Cycle ? rate : rate * 1e-9;
}

// The rate of a register-only probe loop (kernels/<isa>/gemm_<isa>.h: `iters` rounds, returns
// the work done), on `threads` threads: fma_peak and int8_peak.
double probe_peak(const char* name, double (*avx2_probe)(int64_t), double (*avx512_probe)(int64_t),
                  const std::string& isa, int threads, double min_seconds, bool per_cycle, bool cpu_time) {
  const Per per = per_of(per_cycle, cpu_time);
  const Isa lvl = level_or_throw(isa);
  if (threads < 1 || threads > 1024) throw py::value_error("threads must be in 1..1024");
  double (*probe)(int64_t) = nullptr;
  if (lvl == Isa::Avx2) probe = avx2_probe;
  else if (lvl == Isa::Avx512) probe = avx512_probe;
  else throw py::value_error(std::string(name) + " needs a SIMD level (avx2 or avx512)");
  py::gil_scoped_release nogil;
  const int64_t iters = 2000000;
  const double work = probe(1);  // per iteration
  const double rate = best_rate(threads, min_seconds, work * static_cast<double>(iters) * threads,
                                [&](int) { probe(iters); }, per);
  return per == Per::Cycle ? rate : rate * 1e-9;
}

double fma_peak(const std::string& isa, int threads, double min_seconds, bool per_cycle, bool cpu_time) {
  return probe_peak("fma_peak", avx2::gemm_fma_probe, avx512::gemm_fma_probe, isa, threads, min_seconds, per_cycle,
                    cpu_time);
}

// GOP/s (multiply-add = 2) of the level's int8 dot-product instruction (avx512: VNNI vpdpbusd;
// avx2: vpmaddubsw): the peak the block-quantized GEMM is judged by.
double int8_peak(const std::string& isa, int threads, double min_seconds, bool per_cycle, bool cpu_time) {
  return probe_peak("int8_peak", avx2::gemm_int8_probe, avx512::gemm_int8_probe, isa, threads, min_seconds, per_cycle,
                    cpu_time);
}

}  // namespace

void bind_perf(py::module_& m) {
  m.def("gemm_bench", &gemm_bench, py::arg("isa"), py::arg("M"), py::arg("N"), py::arg("K"),
        py::arg("wtype") = "f32", py::arg("threads") = 1, py::arg("min_seconds") = 1.0, py::arg("per_cycle") = false,
        py::arg("cpu_time") = false,
        "GFLOP/s (2MNK per call) of the level's GEMM with bias (wtype f32, f16 or a block type:\n"
        "then the quantized GEMM, activations quantized inside the timed call; per_cycle=True: flop per\n"
        "core cycle of one thread instead of GFLOP/s), run on `threads` std::threads\n"
        "(barrier after each call); best of 5 timed chunks. cpu_time=True (threads=1): per CPU second of\n"
        "the calling thread instead of per wall second.");
  m.def("fma_peak", &fma_peak, py::arg("isa"), py::arg("threads") = 1, py::arg("min_seconds") = 0.5,
        py::arg("per_cycle") = false, py::arg("cpu_time") = false,
        "GFLOP/s of a register-only FMA loop (independent accumulators) at the level's vector\n"
        "width, summed over `threads` threads; best of 5 timed chunks. per_cycle=True (threads=1):\n"
        "flop per core cycle instead; cpu_time=True (threads=1): per CPU second of the thread.");
  m.def("int8_peak", &int8_peak, py::arg("isa"), py::arg("threads") = 1, py::arg("min_seconds") = 0.5,
        py::arg("per_cycle") = false, py::arg("cpu_time") = false,
        "GOP/s (multiply-add = 2) of a register-only loop of the level's int8 dot-product instruction\n"
        "(avx512: VNNI vpdpbusd; avx2: vpmaddubsw), independent accumulators, summed over `threads`\n"
        "threads; best of 5 timed chunks. per_cycle=True (threads=1): ops per core cycle instead;\n"
        "cpu_time=True (threads=1): per CPU second of the thread.");
}

}  // namespace pyvitcpp
