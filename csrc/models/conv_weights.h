// Convolution weights shared by the convolutional families (models/cnn.cpp and the detection
// backbones): load a conv's weight and bias out of the GGUF in the form the graph's conv ops take,
// and add one conv (with its bias / activation / residual epilogue) to a graph.
#pragma once
#include <cstdint>
#include <list>
#include <string>
#include <vector>

#include "graph/builder.h"
#include "models/model.h"

namespace pyvitcpp {

struct ConvW {
  LinearWeight* lin = nullptr;  // groups == 1: [OC, k*k*C] in im2col's (ky, kx, c) column order
  const float* dw = nullptr;    // depthwise: tap-major [k*k, C]
  const float* dw_b = nullptr;
  int64_t C = 0, OC = 0, k = 1, stride = 1;
};

// Loads `<prefix>.weight` ([OC, C/groups, k, k], or 2-D [OC, C] for a 1x1) and the optional
// `<prefix>.bias`. Keeps the depthwise tap copies it makes; the family keeps the loader as long
// as its weights are used. Throws ModelError naming the tensor when it is missing or mis-shaped.
class ConvLoader {
 public:
  ConvLoader(WeightStore& w, std::string path) : w_(w), path_(std::move(path)) {}
  ConvW load(const std::string& prefix, int64_t C_in, int64_t stride, bool depthwise);

 private:
  WeightStore& w_;
  std::string path_;
  std::list<std::vector<float>> owned_;
};

// One conv: act(conv(x) + bias) (+ residual). x is an NHWC map, or NCHW pixels when nchw.
// Padding: `same` is TF's SAME rule; otherwise symmetric ((stride - 1) + (k - 1)) / 2 a side.
// relu_out: max(., 0) after the residual (GraphBuilder::linear).
int add_conv(GraphBuilder& b, const std::string& name, int x, const ConvW& c, Act act, int residual = -1,
             bool nchw = false, bool same = false, bool relu_out = false);

}  // namespace pyvitcpp
