// Cycles of the Im2col op on a ResNet stem (7x7, stride 2, pad 3, 3 channels of NCHW pixels,
// 224 x 224) and of the gather that fused convs do instead (3x3, 64 channels of a 56 x 56 NHWC
// map, ResNet-50 layer 1), one thread, best of 200 calls (perf_event_open user cycles).
//   g++ -O3 -std=c++17 -Icsrc -o /tmp/im2col_probe scripts/probes/im2col_probe.cpp \
//       csrc/ops/conv_ops.cpp csrc/kernels/conv_gather.cpp && /tmp/im2col_probe
#include <cstdio>
#include <vector>

#include "core/cycles.h"
#include "kernels/conv.h"
#include "ops/conv_ops.h"

using namespace pyvitcpp;

template <class F>
double best_cycles(const CycleCounter& cc, F&& f) {
  double best = 1e300;
  for (int it = 0; it < 200; ++it) {
    const double c0 = cc.read();
    f();
    const double c = cc.read() - c0;
    if (c < best) best = c;
  }
  return best;
}

int main() {
  const CycleCounter cc;
  if (cc.read() < 0) {
    std::fprintf(stderr, "no cycle counter (perf_event_open failed)\n");
    return 1;
  }
  {
    const int64_t C = 3, H = 224;
    const ConvAxis a = conv_axis_sym(H, 7, 2, 1, 3);
    std::vector<float> x(C * H * H, 1.0f), y(a.out * a.out * 49 * C);
    ConvGather g;
    g.X = x.data(); g.B = 1; g.C = C; g.cg = C; g.h = a; g.w = a;
    const double c = best_cycles(cc, [&] { im2col(g, true, y.data(), 0, 1); });
    std::printf("stem im2col 7x7/2, 3 ch NCHW 224:  %6.2f M cycles, %.2f per element\n", c / 1e6, c / y.size());
  }
  {
    const int64_t C = 64, H = 56;
    const ConvAxis a = conv_axis_sym(H, 3, 1, 1, 1);
    std::vector<float> x(H * H * C, 1.0f), y(a.out * a.out * 9 * C);
    ConvGather g;
    g.X = x.data(); g.B = 1; g.C = C; g.cg = C; g.h = a; g.w = a;
    const double c = best_cycles(cc, [&] { im2col(g, false, y.data(), 0, 1); });
    std::printf("im2col 3x3/1, 64 ch NHWC 56:       %6.2f M cycles, %.2f per element\n", c / 1e6, c / y.size());
  }
  return 0;
}
