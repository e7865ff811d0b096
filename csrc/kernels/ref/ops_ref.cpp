// Reference kernels for the non-GEMM ops: the specification the SIMD twins are tested against.
#include <cmath>
#include <limits>

#include "kernels/kernels.h"
#include "kernels/ref/act_ref.h"
#include "kernels/simd_act.h"

namespace pyvitcpp {
namespace ref {

void act_inplace(float* y, int64_t n, Act act) {
  for (int64_t i = 0; i < n; ++i) y[i] = act_scalar(y[i], act);
}

namespace {

#include "kernels/split_range.h"  // split(): this thread's share of n items

void layernorm(const LayerNormArgs& a, int ith, int nth) {
  int64_t r0, r1;
  split(a.rows, ith, nth, &r0, &r1);
  for (int64_t r = r0; r < r1; ++r) {
    const float* x = a.X + r * a.ldx;
    float* y = a.Y + r * a.ldy;
    // Two-pass mean/variance, as PyTorch computes it (no E[x^2]-E[x]^2 cancellation).
    float mean = 0.0f;
    for (int64_t i = 0; i < a.D; ++i) mean += x[i];
    mean /= static_cast<float>(a.D);
    float var = 0.0f;
    for (int64_t i = 0; i < a.D; ++i) {
      float d = x[i] - mean;
      var += d * d;
    }
    var /= static_cast<float>(a.D);
    const float rstd = 1.0f / std::sqrt(var + a.eps);
    for (int64_t i = 0; i < a.D; ++i) {
      float v = (x[i] - mean) * rstd;
      if (a.gamma) v *= a.gamma[i];
      if (a.beta) v += a.beta[i];
      y[i] = v;
    }
  }
}

void activation(const float* X, float* Y, int64_t n, Act act, int ith, int nth) {
  int64_t b, e;
  split(n, ith, nth, &b, &e);
  for (int64_t i = b; i < e; ++i) Y[i] = act_scalar(X[i], act);
}

bool has_rel(const AttentionArgs& a) { return a.rel_h && a.rel_w; }

// A score row, plus the query row's gh + gw relative-position dot products when that term is on.
size_t attention_workspace(const AttentionArgs& a) {
  return static_cast<size_t>(a.Tk + (has_rel(a) ? a.rel_gh + a.rel_gw : 0)) * sizeof(float);
}

// One query row at a time: scores for all keys (one row of Tk floats, never Tq x Tk),
// softmax, then the weighted sum of values. The additive terms are summed in the order
// scale * q.k + bias + mask + rel_h + rel_w (SAM adds rel_h and rel_w to the scaled scores).
void attention(const AttentionArgs& a, void* workspace, int ith, int nth) {
  const bool rel = has_rel(a);
  const int64_t gh = a.rel_gh, gw = a.rel_gw;
  float* s = static_cast<float*>(workspace) + static_cast<size_t>(ith) * (attention_workspace(a) / sizeof(float));
  float* rh = s + a.Tk;  // rh[jh] = q . rel_h[ih - jh + gh - 1]
  float* rw = rh + gh;   // rw[jw] = q . rel_w[iw - jw + gw - 1]
  int64_t r0, r1;
  split(a.B * a.H * a.Tq, ith, nth, &r0, &r1);
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t i = r % a.Tq, h = (r / a.Tq) % a.H, b = r / (a.Tq * a.H);
    const float* q = a.Q + b * a.q_sb + i * a.q_st + h * a.q_sh;
    if (rel) {
      const int64_t ih = i / gw, iw = i % gw;
      for (int64_t jh = 0; jh < gh; ++jh) {
        const float* t = a.rel_h + (ih - jh + gh - 1) * a.Dh;
        float dot = 0.0f;
        for (int64_t d = 0; d < a.Dh; ++d) dot += q[d] * t[d];
        rh[jh] = dot;
      }
      for (int64_t jw = 0; jw < gw; ++jw) {
        const float* t = a.rel_w + (iw - jw + gw - 1) * a.Dh;
        float dot = 0.0f;
        for (int64_t d = 0; d < a.Dh; ++d) dot += q[d] * t[d];
        rw[jw] = dot;
      }
    }
    const float* bias = a.bias ? a.bias + h * a.bias_sh + i * a.bias_st : nullptr;
    const float* mask = a.mask ? a.mask + (b % a.mask_nw) * a.mask_sw + i * a.mask_st : nullptr;
    float mx = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < a.Tk; ++j) {
      const float* k = a.K + b * a.k_sb + j * a.k_st + h * a.k_sh;
      float dot = 0.0f;
      for (int64_t d = 0; d < a.Dh; ++d) dot += q[d] * k[d];
      float sj = dot * a.scale;
      if (bias) sj += bias[j];
      if (mask) sj += mask[j];
      if (rel) sj += rh[j / gw] + rw[j % gw];
      s[j] = sj;
      mx = s[j] > mx ? s[j] : mx;
    }
    float sum = 0.0f;
    for (int64_t j = 0; j < a.Tk; ++j) {
      s[j] = std::exp(s[j] - mx);
      sum += s[j];
    }
    float* o = a.O + b * a.o_sb + i * a.o_st + h * a.o_sh;
    for (int64_t d = 0; d < a.Dh; ++d) o[d] = 0.0f;
    for (int64_t j = 0; j < a.Tk; ++j) {
      const float* v = a.V + b * a.v_sb + j * a.v_st + h * a.v_sh;
      for (int64_t d = 0; d < a.Dh; ++d) o[d] += s[j] * v[d];
    }
    const float inv = 1.0f / sum;
    for (int64_t d = 0; d < a.Dh; ++d) o[d] *= inv;
  }
}

}  // namespace
}  // namespace ref

void register_ops_ref(KernelTable& t) {
  t.layernorm = ref::layernorm;
  t.activation = ref::activation;
  t.attention_workspace = ref::attention_workspace;
  t.attention = ref::attention;
}

}  // namespace pyvitcpp
