// 64-byte aligned, zero-initialised byte buffer (weights panels, activation arenas).
#pragma once
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace pyvitcpp {

class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t n) { resize(n); }
  ~AlignedBuffer() { std::free(p_); }
  AlignedBuffer(AlignedBuffer&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr; o.n_ = 0; }
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept {
    if (this != &o) { std::free(p_); p_ = o.p_; n_ = o.n_; o.p_ = nullptr; o.n_ = 0; }
    return *this;
  }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;

  // zero = false leaves the bytes unset (for buffers the caller fills completely, e.g. packed
  // weights: the fill then also takes the page faults, in parallel when the filling is).
  void resize(size_t n, bool zero = true) {
    std::free(p_);
    p_ = nullptr;
    n_ = 0;
    if (n == 0) return;
    size_t rounded = (n + 63) / 64 * 64;
#if defined(__linux__)
    // Large buffers (packed weights, arenas) are streamed through by the GEMM: back their
    // whole 2 MiB pages with transparent huge pages (when the system allows it via madvise)
    // to cut TLB misses and page faults. Only virtual space is over-aligned; the tail past
    // the last whole huge page stays in small pages, so resident memory does not grow.
    constexpr size_t kHuge = size_t{1} << 21;
    if (rounded >= kHuge) {
      p_ = static_cast<unsigned char*>(std::aligned_alloc(kHuge, (rounded + kHuge - 1) / kHuge * kHuge));
      if (!p_) throw std::bad_alloc();
      madvise(p_, rounded / kHuge * kHuge, MADV_HUGEPAGE);
    } else {
      p_ = static_cast<unsigned char*>(std::aligned_alloc(64, rounded));
    }
#else
    p_ = static_cast<unsigned char*>(std::aligned_alloc(64, rounded));
#endif
    if (!p_) throw std::bad_alloc();
    if (zero) std::memset(p_, 0, rounded);
    n_ = n;
  }
  unsigned char* data() { return p_; }
  const unsigned char* data() const { return p_; }
  size_t size() const { return n_; }
  bool empty() const { return n_ == 0; }

 private:
  unsigned char* p_ = nullptr;
  size_t n_ = 0;
};

}  // namespace pyvitcpp
