#include "core/threadpool.h"

#include <cstdlib>

#include "core/cpu.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define PYVITCPP_PAUSE() _mm_pause()
#else
#define PYVITCPP_PAUSE() ((void)0)
#endif

namespace pyvitcpp {

int default_thread_count() {
  if (const char* env = std::getenv("OMP_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n > 0) return n;
  }
  int n = cpu_features().physical_cores;
  return n > 0 ? n : 1;
}

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads < 1 ? 1 : n_threads) {
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::worker(int ith) {
  uint64_t seen = 0;
  for (;;) {
    const std::function<void(int)>* job;
    int nth;
    bool optional;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      job = job_;
      nth = job_nth_;
      optional = optional_;
      if (optional) {
        if (!job || ith >= nth) continue;  // finished without us, or not needed
        ++started_;
      }
    }
    if (optional) {
      (*job)(ith);
      finished_.fetch_add(1, std::memory_order_acq_rel);
      continue;
    }
    if (ith < nth) (*job)(ith);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
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
  bar_count_.store(0, std::memory_order_relaxed);
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lk(mu_);
    job_ = &fn;
    job_nth_ = nth;
    optional_ = false;
    ++generation_;
  }
  cv_.notify_all();
  fn(0);
  // Wait for every worker (also those with ith >= nth) to pick up and finish this run, so
  // the next run cannot race with a slow starter.
  int spins = 0;
  while (pending_.load(std::memory_order_acquire) != 0) {
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
  finished_.store(0, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lk(mu_);
    job_ = &fn;
    job_nth_ = nth;
    optional_ = true;
    started_ = 0;
    ++generation_;
  }
  cv_.notify_all();
  fn(0);
  int started;
  {
    // From here on no worker can take this job (it sees job_ == null), so only those that
    // started are waited for.
    std::lock_guard<std::mutex> lk(mu_);
    job_ = nullptr;
    started = started_;
  }
  int spins = 0;
  while (finished_.load(std::memory_order_acquire) != started) {
    if (++spins < 4096) PYVITCPP_PAUSE();
    else std::this_thread::yield();
  }
  // optional_ stays set with job_ == null: a worker that wakes up only now skips this run.
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
