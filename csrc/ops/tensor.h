// A tensor of the graph: a logical N-D shape (outermost first, as PyTorch writes it) and
// element strides over some storage. Storage is an activation in the arena (planned), the
// graph's input, or constant data owned by the model (weights, tables). A view (reshape,
// permute, slice, broadcast) is a tensor that reads another tensor's storage: it costs nothing
// and has no node; an op that needs contiguous data gets a Copy node from the builder.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/kernels.h"

namespace pyvitcpp {

enum class Storage : int { Activation, Input, Constant };

struct TensorDesc {
  std::string name;
  std::vector<int64_t> shape;    // logical shape, outermost first
  std::vector<int64_t> strides;  // elements, same length as shape (0: broadcast)
  Storage storage = Storage::Activation;
  int base = -1;                 // a view: the tensor that owns the storage (never a view itself)
  int64_t elem_offset = 0;       // a view: first element in the base's storage
  const float* data = nullptr;   // Constant: the data
  // Planner results (activations that own storage): arena offset in bytes, and the tensor
  // whose buffer this one shares (an in-place op), or -1.
  size_t offset = 0;
  int alias_of = -1;

  int nd() const { return static_cast<int>(shape.size()); }
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  bool is_view() const { return base >= 0; }
  // Row-major contiguous (size-1 dimensions may have any stride).
  bool contiguous() const {
    int64_t expect = 1;
    for (int d = nd() - 1; d >= 0; --d) {
      if (shape[d] != 1 && strides[d] != expect) return false;
      expect *= shape[d];
    }
    return true;
  }
  // As a row-strided matrix [rows, cols] (cols = last dim, contiguous; the other dims collapse
  // to one row stride ld). False when the layout is not of that form.
  bool as_matrix(int64_t* rows, int64_t* cols, int64_t* ld) const;
};

std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& shape);
std::string shape_str(const std::vector<int64_t>& shape);

}  // namespace pyvitcpp
