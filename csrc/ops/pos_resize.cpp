#include "ops/pos_resize.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

namespace pyvitcpp {

PosResize parse_pos_resize(const std::string& name) {
  if (name == "none") return PosResize::None;
  if (name == "bicubic") return PosResize::Bicubic;
  if (name == "bicubic_antialias") return PosResize::BicubicAntialias;
  throw std::invalid_argument("unknown position-table resize '" + name + "' (none, bicubic, bicubic_antialias)");
}

const char* pos_resize_name(PosResize m) {
  switch (m) {
    case PosResize::None: return "none";
    case PosResize::Bicubic: return "bicubic";
    case PosResize::BicubicAntialias: return "bicubic_antialias";
  }
  return "?";
}

namespace {

// One output coordinate's taps: input indices and their weights. Arithmetic in float, as torch
// computes these for float tensors (opmath_t of float is float).
struct Taps {
  std::vector<int64_t> idx;
  std::vector<float> w;
};

float cubic1(float x, float A) { return ((A + 2) * x - (A + 3)) * x * x + 1; }
float cubic2(float x, float A) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; }

// aten/src/ATen/native/UpSample.h: area_pixel_compute_source_index(cubic=true) and
// get_cubic_upsample_coefficients; taps at floor(src)-1 .. floor(src)+2, clamped to the border.
std::vector<Taps> bicubic_taps(int64_t in, int64_t out) {
  const float A = -0.75f;
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  std::vector<Taps> taps(out);
  for (int64_t i = 0; i < out; ++i) {
    const float real = scale * (static_cast<float>(i) + 0.5f) - 0.5f;
    const float fl = std::floor(real);
    const int64_t i0 = static_cast<int64_t>(fl);
    const float t = real - fl;
    const float c[4] = {cubic2(t + 1.0f, A), cubic1(t, A), cubic1(1.0f - t, A), cubic2(2.0f - t, A)};
    for (int k = 0; k < 4; ++k) {
      taps[i].idx.push_back(std::min(std::max(i0 - 1 + k, int64_t{0}), in - 1));
      taps[i].w.push_back(c[k]);
    }
  }
  return taps;
}

// aten/src/ATen/native/cpu/UpSampleKernel.cpp: _compute_index_ranges_weights with the
// antialiasing cubic filter (a = -0.5), align_corners=False.
std::vector<Taps> bicubic_aa_taps(int64_t in, int64_t out) {
  auto filter = [](float x) {
    const float a = -0.5f;
    x = std::fabs(x);
    if (x < 1.0f) return cubic1(x, a);
    if (x < 2.0f) return cubic2(x, a);
    return 0.0f;
  };
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  const float support = scale >= 1.0f ? 2.0f * scale : 2.0f;
  const float invscale = scale >= 1.0f ? 1.0f / scale : 1.0f;
  std::vector<Taps> taps(out);
  for (int64_t i = 0; i < out; ++i) {
    const float center = scale * (static_cast<float>(i) + 0.5f);
    const int64_t xmin = std::max(static_cast<int64_t>(center - support + 0.5f), int64_t{0});
    const int64_t xsize = std::min(static_cast<int64_t>(center + support + 0.5f), in) - xmin;
    float total = 0.0f;
    for (int64_t j = 0; j < xsize; ++j) {
      const float w = filter((static_cast<float>(j + xmin) - center + 0.5f) * invscale);
      taps[i].idx.push_back(j + xmin);
      taps[i].w.push_back(w);
      total += w;
    }
    if (total != 0.0f)
      for (float& w : taps[i].w) w /= total;
  }
  return taps;
}

}  // namespace

void resize_pos_table(const float* src, int64_t gh0, int64_t gw0, int64_t D, int64_t gh, int64_t gw, PosResize mode,
                      float* dst) {
  if (gh0 < 1 || gw0 < 1 || gh < 1 || gw < 1 || D < 1)
    throw std::invalid_argument("resize_pos_table: empty grid");
  if (mode == PosResize::None) {
    if (gh != gh0 || gw != gw0)
      throw std::invalid_argument("this model's position table has no resize rule: it only runs on its " +
                                  std::to_string(gh0) + "x" + std::to_string(gw0) + " patch grid");
    std::copy(src, src + gh0 * gw0 * D, dst);
    return;
  }
  const bool aa = mode == PosResize::BicubicAntialias;
  const std::vector<Taps> ty = aa ? bicubic_aa_taps(gh0, gh) : bicubic_taps(gh0, gh);
  const std::vector<Taps> tx = aa ? bicubic_aa_taps(gw0, gw) : bicubic_taps(gw0, gw);
  // Width first into a [gh0, gw] buffer, then height, each tap sum in order, as both of
  // torch's CPU kernels accumulate (the inner sum of the generic kernel is the width one).
  std::vector<float> mid(static_cast<size_t>(gh0 * gw * D));
  std::vector<float> acc(D);
  for (int64_t y = 0; y < gh0; ++y)
    for (int64_t x = 0; x < gw; ++x) {
      std::fill(acc.begin(), acc.end(), 0.0f);
      const Taps& t = tx[x];
      for (size_t k = 0; k < t.idx.size(); ++k) {
        const float* s = src + (y * gw0 + t.idx[k]) * D;
        for (int64_t d = 0; d < D; ++d) acc[d] += t.w[k] * s[d];
      }
      std::copy(acc.begin(), acc.end(), mid.begin() + (y * gw + x) * D);
    }
  for (int64_t y = 0; y < gh; ++y)
    for (int64_t x = 0; x < gw; ++x) {
      std::fill(acc.begin(), acc.end(), 0.0f);
      const Taps& t = ty[y];
      for (size_t k = 0; k < t.idx.size(); ++k) {
        const float* s = mid.data() + (t.idx[k] * gw + x) * D;
        for (int64_t d = 0; d < D; ++d) acc[d] += t.w[k] * s[d];
      }
      std::copy(acc.begin(), acc.end(), dst + (y * gw + x) * D);
    }
}

void resize_rel_pos_linear(const float* src, int64_t L0, int64_t C, int64_t L, float* dst) {
  if (L0 < 1 || L < 1 || C < 1) throw std::invalid_argument("resize_rel_pos_linear: empty table");
  // aten upsample_linear1d: area_pixel_compute_source_index (align_corners=False, clamped at 0),
  // the upper tap clamped to the last row; float arithmetic as torch's for float tensors.
  const float scale = static_cast<float>(L0) / static_cast<float>(L);
  for (int64_t i = 0; i < L; ++i) {
    const float real = std::max(scale * (static_cast<float>(i) + 0.5f) - 0.5f, 0.0f);
    const int64_t i0 = static_cast<int64_t>(real);
    const int64_t i1 = i0 < L0 - 1 ? i0 + 1 : i0;
    const float l1 = real - static_cast<float>(i0), l0 = 1.0f - l1;
    for (int64_t c = 0; c < C; ++c) dst[i * C + c] = l0 * src[i0 * C + c] + l1 * src[i1 * C + c];
  }
}

}  // namespace pyvitcpp
