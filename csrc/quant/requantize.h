// Re-quantizes an F32/F16 GGUF model file into one of the block types, keeping every metadata
// key (general.file_type is set to ggml's file-type id for the target) and every tensor's name,
// shape and order.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace pyvitcpp {

struct RequantDecision {
  std::string name;
  uint32_t from = 0, to = 0;  // ggml type ids
  std::string why;            // empty when quantized as asked; else why it kept/fell back
};

// Which type a tensor becomes: 1-D tensors and position/class/distillation embeddings keep
// their type; matrices whose rows (ne[0]) are not a multiple of 32 fall back to F16.
RequantDecision requant_decision(const std::string& name, const std::vector<int64_t>& ne, uint32_t from, DType target);

// Writes `dst` from `src`. Throws GGUFError / std::runtime_error / std::invalid_argument with
// the cause; the destination is written to a temporary name and renamed on success.
std::vector<RequantDecision> requantize_file(const std::string& src, const std::string& dst, DType target, int nthreads);

}  // namespace pyvitcpp
