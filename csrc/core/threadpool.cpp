#include "core/threadpool.h"

#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <system_error>

#include "core/cpu.h"

#if !defined(_WIN32)
#include <pthread.h>
#endif

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define PYVITCPP_PAUSE() _mm_pause()
#else
#define PYVITCPP_PAUSE() ((void)0)
#endif

namespace pyvitcpp {

namespace {

// Bumped in the child of every fork(); a pool whose crew was started under another value
// belongs to an ancestor process.
std::atomic<uint64_t> g_fork_generation{0};

uint64_t fork_generation() {
#if !defined(_WIN32)
  static const bool registered = [] {
    pthread_atfork(nullptr, nullptr, [] { g_fork_generation.fetch_add(1, std::memory_order_relaxed); });
    return true;
  }();
  (void)registered;
#endif
  return g_fork_generation.load(std::memory_order_relaxed);
}

}  // namespace

int default_thread_count() {
  if (const char* env = std::getenv("OMP_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n > 0) return n < kMaxThreads ? n : kMaxThreads;
  }
  int n = cpu_features().physical_cores;
  return n > 0 ? (n < kMaxThreads ? n : kMaxThreads) : 1;
}

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads < 1 ? 1 : n_threads) {
  if (n_threads_ > kMaxThreads)
    throw std::invalid_argument("threads=" + std::to_string(n_threads_) + " is more than the limit of " +
                                std::to_string(kMaxThreads));
  start_crew();
}

void ThreadPool::start_crew() {
  if (n_threads_ <= 1) return;
  Crew* c = new Crew();
  try {
    c->workers.reserve(static_cast<size_t>(n_threads_ - 1));
    for (int i = 1; i < n_threads_; ++i) c->workers.emplace_back([c, i] { c->work(i); });
  } catch (const std::system_error& e) {
    const size_t started = c->workers.size();
    c->stop_and_join();
    delete c;
    // Not a system_error: callers map those to OSError about a file; this is about threads.
    throw std::runtime_error("cannot start " + std::to_string(n_threads_) + " threads: thread " +
                             std::to_string(started + 1) + " could not be created (" + e.code().message() +
                             "); use fewer threads");
  } catch (...) {
    c->stop_and_join();
    delete c;
    throw;
  }
  crew_ = c;
  crew_fork_gen_ = fork_generation();
}

ThreadPool::Crew& ThreadPool::crew() {
  // A forked child: the workers do not exist here and the mutex / condvar may be in any
  // state (held, with waiters), so the old crew is left as it is: never joined, never freed.
  if (crew_ && crew_fork_gen_ != fork_generation()) crew_ = nullptr;
  if (!crew_) start_crew();  // throws when no threads can be had; the next run tries again
  return *crew_;
}

ThreadPool::~ThreadPool() {
  if (!crew_) return;
  if (crew_fork_gen_ != fork_generation()) return;  // a parent's crew, abandoned (see crew())
  crew_->stop_and_join();
  delete crew_;
}

void ThreadPool::Crew::stop_and_join() {
  {
    std::lock_guard<std::mutex> lk(mu);
    stop = true;
    gen_hint.fetch_add(1, std::memory_order_release);
  }
  cv.notify_all();
  for (auto& t : workers) t.join();
}

// How long a worker that finished a run keeps polling for the next one before it blocks on
// the condition variable: PYVITCPP_SPIN_US microseconds (default 2000; 0: block at once). A
// blocked worker needs a futex wake-up, and on a VM its idle vCPU may be handed to another
// guest: on the 2-vCPU dev VM, DeiT-tiny batch 1 called right after a call that followed 0.3 s
// of idle ran 13.5 ms with the worker mostly absent (1.21 cores busy) against 8.6 ms back to
// back; ONNX Runtime's and OpenMP's pools spin after a call for the same reason.
static int64_t worker_spin_ns() {
  static const int64_t ns = [] {
    const char* e = std::getenv("PYVITCPP_SPIN_US");
    long us = 2000;
    if (e && *e) {
      char* end = nullptr;
      const long v = std::strtol(e, &end, 10);
      if (end && *end == '\0' && v >= 0 && v <= 1000000) us = v;
    }
    return static_cast<int64_t>(us) * 1000;
  }();
  return ns;
}

void ThreadPool::Crew::work(int ith) {
  uint64_t seen = 0;
  const int64_t spin_ns = worker_spin_ns();
  for (;;) {
    const std::function<void(int)>* my_job;
    int nth;
    bool opt;
    if (spin_ns > 0 && seen != 0) {  // poll for the next run a while (not before the first)
      const auto until = std::chrono::steady_clock::now() + std::chrono::nanoseconds(spin_ns);
      for (int i = 0; gen_hint.load(std::memory_order_acquire) == seen; ++i) {
        PYVITCPP_PAUSE();
        if ((i & 63) == 63 && std::chrono::steady_clock::now() >= until) break;
      }
    }
    {
      std::unique_lock<std::mutex> lk(mu);
      cv.wait(lk, [&] { return stop || generation != seen; });
      if (stop) return;
      seen = generation;
      my_job = job;
      nth = job_nth;
      opt = optional;
      if (opt) {
        if (!my_job || ith >= nth) continue;  // finished without us, or not needed
        ++started;
      }
    }
    if (opt) {
      (*my_job)(ith);
      finished.fetch_add(1, std::memory_order_acq_rel);
      continue;
    }
    if (ith < nth) (*my_job)(ith);
    pending.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::run(int nth, const std::function<void(int)>& fn) {
  if (nth > n_threads_) nth = n_threads_;
  if (nth <= 1) {
    bar_count_.store(0);
    job_nth_ = 1;
    fn(0);
    return;
  }
  Crew& c = crew();
  bar_count_.store(0, std::memory_order_relaxed);
  job_nth_ = nth;
  c.pending.store(n_threads_ - 1, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lk(c.mu);
    c.job = &fn;
    c.job_nth = nth;
    c.optional = false;
    ++c.generation;
    c.gen_hint.store(c.generation, std::memory_order_release);
  }
  c.cv.notify_all();
  fn(0);
  // Wait for every worker (also those with ith >= nth) to pick up and finish this run, so
  // the next run cannot race with a slow starter.
  int spins = 0;
  while (c.pending.load(std::memory_order_acquire) != 0) {
    if (++spins < 4096) PYVITCPP_PAUSE();
    else std::this_thread::yield();
  }
}

void ThreadPool::run_optional(int nth, const std::function<void(int)>& fn) {
  if (nth > n_threads_) nth = n_threads_;
  if (nth <= 1) {
    job_nth_ = 1;
    fn(0);
    return;
  }
  Crew& c = crew();
  job_nth_ = nth;
  c.finished.store(0, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lk(c.mu);
    c.job = &fn;
    c.job_nth = nth;
    c.optional = true;
    c.started = 0;
    ++c.generation;
    c.gen_hint.store(c.generation, std::memory_order_release);
  }
  c.cv.notify_all();
  fn(0);
  int started;
  {
    // From here on no worker can take this job (it sees job == null), so only those that
    // started are waited for.
    std::lock_guard<std::mutex> lk(c.mu);
    c.job = nullptr;
    started = c.started;
  }
  int spins = 0;
  while (c.finished.load(std::memory_order_acquire) != started) {
    if (++spins < 4096) PYVITCPP_PAUSE();
    else std::this_thread::yield();
  }
  // optional stays set with job == null: a worker that wakes up only now skips this run.
}

void ThreadPool::barrier() {
  const int nth = job_nth_;
  if (nth <= 1) return;
  const uint32_t phase = bar_phase_.load(std::memory_order_acquire);
  if (bar_count_.fetch_add(1, std::memory_order_acq_rel) == nth - 1) {
    bar_count_.store(0, std::memory_order_relaxed);
    bar_phase_.fetch_add(1, std::memory_order_acq_rel);
    return;
  }
  int spins = 0;
  while (bar_phase_.load(std::memory_order_acquire) == phase) {
    if (++spins < 2048) PYVITCPP_PAUSE();
    else std::this_thread::yield();
  }
}

}  // namespace pyvitcpp
