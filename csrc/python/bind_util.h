// Helpers shared by the binding files of both modules (_core and _testing): level and type
// names as the Python side passes them, and 64-byte aligned scratch for packed weights.
#pragma once
#include <pybind11/pybind11.h>

#include <memory>
#include <new>
#include <stdexcept>
#include <string>

#include "core/blocks.h"
#include "core/cpu.h"
#include "quant/quantize.h"

namespace pyvitcpp {

// A kernel level by name: ValueError for an unknown name (no CPU check).
inline Isa level_or_value_error(const std::string& isa) {
  try {
    return parse_isa(isa);
  } catch (const std::exception& e) {
    throw pybind11::value_error(e.what());
  }
}

// A kernel level this CPU and OS can run: ValueError for an unknown name, RuntimeError naming
// the missing feature otherwise.
inline Isa level_or_throw(const std::string& isa) {
  const Isa lvl = level_or_value_error(isa);
  std::string why;
  if (!isa_supported(lvl, &why))
    throw std::runtime_error("kernel level " + isa + " is not supported here: missing " + why);
  return lvl;
}

// A block-quantized type by name (q8_0, q4_0, q4_1, q5_0, q5_1): ValueError otherwise.
inline DType block_type_or_throw(const std::string& name) {
  DType t;
  try {
    t = parse_quant_type(name);
  } catch (const std::invalid_argument& e) {
    throw pybind11::value_error(e.what());
  }
  if (!is_block_quant(t)) throw pybind11::value_error("'" + name + "' is not a block-quantized type (q8_0, q4_0, q4_1, q5_0, q5_1)");
  return t;
}

struct AlignedDeleter {
  void operator()(void* p) const { ::operator delete(p, std::align_val_t(64)); }
};
using AlignedBuf = std::unique_ptr<void, AlignedDeleter>;

inline AlignedBuf aligned_bytes(size_t n) {  // 64-byte aligned, as a loader would place panels
  if (n == 0) return AlignedBuf(nullptr);
  return AlignedBuf(::operator new(n, std::align_val_t(64)));
}

}  // namespace pyvitcpp
