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
  }
  return x;
}

}  // namespace pyvitcpp::ref
