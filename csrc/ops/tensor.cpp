#include "ops/tensor.h"

namespace pyvitcpp {

std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> s(shape.size());
  int64_t n = 1;
  for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
    s[d] = n;
    n *= shape[d];
  }
  return s;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

bool TensorDesc::as_matrix(int64_t* rows, int64_t* cols, int64_t* ld) const {
  const int n = nd();
  if (n == 0) {
    *rows = *cols = *ld = 1;
    return true;
  }
  *cols = shape[n - 1];
  if (*cols != 1 && strides[n - 1] != 1) return false;
  // The outer dims must collapse to one dim of row stride ld.
  int64_t r = 1, stride = -1;
  for (int d = n - 2; d >= 0; --d) {
    if (shape[d] == 1) continue;
    if (stride < 0) stride = strides[d];
    else if (strides[d] != stride * r) return false;
    r *= shape[d];
  }
  *rows = 1;
  for (int d = 0; d < n - 1; ++d) *rows *= shape[d];
  *ld = stride < 0 ? *cols : stride;
  if (*rows > 1 && *ld < *cols) return false;  // rows would overlap
  return true;
}

}  // namespace pyvitcpp
