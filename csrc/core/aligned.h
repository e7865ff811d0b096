// 64-byte aligned, zero-initialised byte buffer (weights panels, activation arenas).
#pragma once
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>

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

  void resize(size_t n) {
    std::free(p_);
    p_ = nullptr;
    n_ = 0;
    if (n == 0) return;
    size_t rounded = (n + 63) / 64 * 64;
    p_ = static_cast<unsigned char*>(std::aligned_alloc(64, rounded));
    if (!p_) throw std::bad_alloc();
    std::memset(p_, 0, rounded);
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
