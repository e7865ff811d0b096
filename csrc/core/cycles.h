// User-space core cycles of the calling thread, from perf_event_open (Linux); read() is -1
// where the counter is unavailable. Dividing work by cycles instead of seconds takes clock
// changes out of kernel comparisons on shared machines. Used by the test hooks' per-cycle
// benchmarks (python/bind_test_gemm.cpp) and the probes in scripts/probes/.
#pragma once
#include <cstdint>

#ifdef __linux__
#include <linux/perf_event.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace pyvitcpp {

class CycleCounter {
 public:
  CycleCounter() {
#ifdef __linux__
    perf_event_attr pe{};
    pe.type = PERF_TYPE_HARDWARE;
    pe.size = sizeof(pe);
    pe.config = PERF_COUNT_HW_CPU_CYCLES;
    pe.exclude_kernel = 1;
    pe.exclude_hv = 1;
    fd_ = static_cast<int>(syscall(__NR_perf_event_open, &pe, 0, -1, -1, 0));
#endif
  }
  ~CycleCounter() {
#ifdef __linux__
    if (fd_ >= 0) close(fd_);
#endif
  }
  CycleCounter(const CycleCounter&) = delete;
  CycleCounter& operator=(const CycleCounter&) = delete;
  double read() const {
#ifdef __linux__
    uint64_t v = 0;
    if (fd_ >= 0 && ::read(fd_, &v, sizeof(v)) == sizeof(v)) return static_cast<double>(v);
#endif
    return -1.0;
  }

 private:
  int fd_ = -1;
};

}  // namespace pyvitcpp
