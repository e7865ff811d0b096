// Scalar activation functions: the specification every SIMD activation is tested against.
#pragma once
#include <cmath>

#include "kernels/kernels.h"

namespace pyvitcpp::ref {

inline float act_scalar(float x, Act act) {
  switch (act) {
    case Act::None: return x;
    case Act::GeluErf: return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f));
    case Act::GeluTanh: {
      const float k = 0.79788456080286536f;  // sqrt(2/pi)
      return 0.5f * x * (1.0f + std::tanh(k * (x + 0.044715f * x * x * x)));
    }
    case Act::QuickGelu: return x / (1.0f + std::exp(-1.702f * x));
    case Act::Tanh: return std::tanh(x);
    case Act::Relu: return x < 0.0f ? 0.0f : x;  // NaN propagates
    case Act::Relu6: return x < 0.0f ? 0.0f : (x > 6.0f ? 6.0f : x);
    case Act::Silu: return x / (1.0f + std::exp(-x));
    case Act::LeakyRelu: return x >= 0.0f ? x : 0.01f * x;
    case Act::HardSwish: {
      // Same operation order as PyTorch's kernel: x * clamp(x + 3, 0, 6), then / 6.
      float c = x + 3.0f;
      c = c < 0.0f ? 0.0f : (c > 6.0f ? 6.0f : c);
      return x * c / 6.0f;
    }
    case Act::LeakyRelu01: return x >= 0.0f ? x : 0.1f * x;
    case Act::Mish: return x * std::tanh(std::log1p(std::exp(x)));  // PyTorch's formula
    case Act::Sigmoid: return 1.0f / (1.0f + std::exp(-x));
  }
  return x;
}

}  // namespace pyvitcpp::ref
