// Persistent thread pool. run(nth, fn) calls fn(ith) for ith in [0, nth) concurrently (the
// caller is thread 0) and returns when all are done. Inside fn, barrier() synchronises the
// nth participants, so a whole graph runs in one run() with a barrier between nodes.
//
// Fork-aware: a child created by fork() has only the forking thread, so the parent's workers,
// and the mutex and condition variable they wait on, are dead state there. The pool notices
// (a pthread_atfork child handler bumps a process-wide fork generation), abandons that state
// without joining or destroying it (either would block forever), and starts fresh workers
// on the next run. The destructor in a child likewise leaves the parent's state alone.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace pyvitcpp {

// The most threads a pool (and so a Model) may have: beyond it, thread creation is a mistake
// (threads=5000) more likely than a machine with that many cores.
constexpr int kMaxThreads = 1024;

class ThreadPool {
 public:
  // Starts n_threads - 1 workers. Throws std::runtime_error naming the thread count when a
  // worker cannot be created (the ones already started are stopped and joined first), and
  // std::invalid_argument when n_threads > kMaxThreads.
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
  // Everything the workers share with the caller. Heap-allocated so that a forked child can
  // abandon it (leak it) instead of destroying a mutex/condvar/threads it does not own.
  struct Crew {
    std::vector<std::thread> workers;
    std::mutex mu;
    std::condition_variable cv;
    const std::function<void(int)>* job = nullptr;
    int job_nth = 0;
    uint64_t generation = 0;  // bumped per run (guarded by mu)
    // generation's latest value for the workers' spin before they block (stores under mu too;
    // stop_and_join bumps it so a spinning worker goes to the lock and sees stop).
    std::atomic<uint64_t> gen_hint{0};
    bool stop = false;
    std::atomic<int> pending{0};
    bool optional = false;        // current job is a run_optional one (guarded by mu)
    int started = 0;              // workers that took the current optional job (guarded by mu)
    std::atomic<int> finished{0};  // of those, how many are done
    void work(int ith);
    void stop_and_join();
  };
  // The crew of this process: starts one if there is none yet or the current one belongs to
  // the parent of a fork. Throws like the constructor.
  Crew& crew();
  void start_crew();

  int n_threads_;
  Crew* crew_ = nullptr;
  uint64_t crew_fork_gen_ = 0;  // fork generation the crew was started in
  int job_nth_ = 0;

  alignas(64) std::atomic<int> bar_count_{0};
  alignas(64) std::atomic<uint32_t> bar_phase_{0};
};

// OMP_NUM_THREADS when set to a positive integer, else the number of physical cores; at most
// kMaxThreads.
int default_thread_count();

}  // namespace pyvitcpp
