// Overflow-checked arithmetic for numbers that come from a file (tensor dims, hyper-parameters):
// a product that does not fit in int64 is a corrupt or hostile file, reported by the caller's
// exception type (GGUFError in io/, ModelError in models/) naming what was being computed,
// instead of signed overflow (undefined behaviour) and a wrong allocation or index later.
#pragma once
#include <cstdint>
#include <string>

namespace pyvitcpp {

// a * b, false (and *out untouched) if the product overflows int64.
inline bool mul_fits(int64_t a, int64_t b, int64_t* out) {
  int64_t r;
#if defined(__GNUC__) || defined(__clang__)
  if (__builtin_mul_overflow(a, b, &r)) return false;
#else
  const int64_t kMax = INT64_MAX, kMin = INT64_MIN;
  if (a > 0 ? (b > 0 ? a > kMax / b : b < kMin / a) : (b > 0 ? a < kMin / b : a != 0 && b < kMax / a))
    return false;
  r = a * b;
#endif
  *out = r;
  return true;
}

// a * b, or throws Error("<what>: <a> * <b> overflows int64").
template <class Error>
int64_t checked_mul(int64_t a, int64_t b, const std::string& what) {
  int64_t r;
  if (!mul_fits(a, b, &r))
    throw Error(what + ": " + std::to_string(a) + " * " + std::to_string(b) + " overflows int64");
  return r;
}

// The product of all values (1 for none), checked like checked_mul.
template <class Error, class Range>
int64_t checked_product(const Range& values, const std::string& what) {
  int64_t r = 1;
  for (int64_t v : values) r = checked_mul<Error>(r, static_cast<int64_t>(v), what);
  return r;
}

}  // namespace pyvitcpp
