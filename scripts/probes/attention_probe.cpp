// User cycles of the avx2 fused attention on one thread (the figures in the comments of
// kernels/avx2/attention_avx2.h): fused qkv [T, 3, H, Dh] as the engine lays it out, best of
// 200 calls (perf_event_open), reported as flop per cycle (4 T^2 H Dh per call; FMA peak 32 on
// Zen 3). Compiled with the flags of ops_avx2.cpp:
//   g++ -O3 -fno-math-errno -mavx2 -mfma -mf16c -std=c++17 -Icsrc
//     -o /tmp/attnprobe scripts/probes/attention_probe.cpp && /tmp/attnprobe 12 197 64
// Arguments: H T Dh. Swap the header (e.g. a copy from an older commit) to compare versions.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "core/cycles.h"
#include "kernels/avx2/attention_avx2.h"

using pyvitcpp::AttentionArgs;

// Not inlined into main: the kernel is compiled in a context like its own translation unit.
__attribute__((noinline)) void run(const AttentionArgs& a, void* ws) { pyvitcpp::avx2::attn::attention(a, ws, 0, 1); }

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s H T Dh\n", argv[0]);
    return 2;
  }
  const int64_t H = std::atoi(argv[1]), T = std::atoi(argv[2]), Dh = std::atoi(argv[3]);
  if (H < 1 || T < 1 || Dh < 1) return 2;
  std::vector<float> qkv(static_cast<size_t>(T * 3 * H * Dh)), O(static_cast<size_t>(T * H * Dh));
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (auto& v : qkv) v = nd(rng);
  AttentionArgs a;
  a.B = 1;
  a.H = H;
  a.Tq = a.Tk = T;
  a.Dh = Dh;
  const int64_t st = 3 * H * Dh;
  a.Q = qkv.data();
  a.q_st = st;
  a.q_sh = Dh;
  a.K = qkv.data() + H * Dh;
  a.k_st = st;
  a.k_sh = Dh;
  a.V = qkv.data() + 2 * H * Dh;
  a.v_st = st;
  a.v_sh = Dh;
  a.q_sb = a.k_sb = a.v_sb = T * st;
  a.O = O.data();
  a.o_sb = T * H * Dh;
  a.o_st = H * Dh;
  a.o_sh = Dh;
  a.scale = 1.0f / std::sqrt(static_cast<float>(Dh));
  std::vector<char> ws(pyvitcpp::avx2::attn::attention_workspace(a) + 64);
  const pyvitcpp::CycleCounter cc;
  if (cc.read() < 0) {
    std::fprintf(stderr, "no cycle counter (perf_event_open failed)\n");
    return 1;
  }
  double best = 1e300;
  for (int t = 0; t < 200; ++t) {
    const double c0 = cc.read();
    run(a, ws.data());
    const double c = cc.read() - c0;
    if (c > 0 && c < best) best = c;
  }
  std::printf("H=%ld T=%ld Dh=%ld: %.1f flop/cycle\n", static_cast<long>(H), static_cast<long>(T), static_cast<long>(Dh),
              4.0 * T * T * H * Dh / best);
  return 0;
}
