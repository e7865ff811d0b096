// Persistent thread pool. run(nth, fn) calls fn(ith) for ith in [0, nth) concurrently (the
// caller is thread 0) and returns when all are done. Inside fn, barrier() synchronises the
// nth participants, so a whole graph runs in one run() with a barrier between nodes.
#pragma once
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace pyvitcpp {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }
  // Not reentrant; one run at a time (callers serialise).
  void run(int nth, const std::function<void(int)>& fn);
  // Spin-then-yield barrier among the nth threads of the current run().
  void barrier();
  // Like run(), but fn(ith) for a worker ith >= 1 is skipped when that worker has not picked
  // the job up by the time thread 0 returns from fn(0): on a loaded machine a descheduled
  // worker then costs nothing instead of a scheduler time slice. fn must therefore not
  // depend on every ith running (no barrier()); thread 0 always runs. Returns once every
  // worker that did start has finished.
  void run_optional(int nth, const std::function<void(int)>& fn);

 private:
  void worker(int ith);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  const std::function<void(int)>* job_ = nullptr;
  int job_nth_ = 0;
  uint64_t generation_ = 0;  // bumped per run (guarded by mu_)
  bool stop_ = false;
  std::atomic<int> pending_{0};
  bool optional_ = false;        // current job is a run_optional one (guarded by mu_)
  int started_ = 0;              // workers that took the current optional job (guarded by mu_)
  std::atomic<int> finished_{0};  // of those, how many are done

  alignas(64) std::atomic<int> bar_count_{0};
  alignas(64) std::atomic<uint32_t> bar_phase_{0};
};

// OMP_NUM_THREADS when set to a positive integer, else the number of physical cores.
int default_thread_count();

}  // namespace pyvitcpp
