// AVX-512 (F/BW/DQ/VL) conv and pooling kernels (NHWC: channels are the vector lanes).
// Specification: kernels/ref/conv_ref.cpp. Compiled with the avx512 flags only; everything
// except the registration hook has internal linkage.
#include <immintrin.h>

#include <limits>

#include "kernels/kernels.h"
#include "kernels/simd_act.h"

namespace pyvitcpp {
namespace avx512 {
namespace {

#include "kernels/split_range.h"  // split(): this thread's share of n items

inline __mmask16 tail_mask(int64_t n) { return static_cast<__mmask16>((1u << n) - 1u); }

// Valid tap range [k0, k1) of an output position along one axis (taps in the padding skipped).
inline void tap_range(const ConvAxis& ax, int64_t o, int64_t* k0, int64_t* k1) {
  const int64_t i0 = o * ax.stride - ax.pad0;
  int64_t a = 0, b = ax.k;
  if (i0 < 0) a = (-i0 + ax.dil - 1) / ax.dil;
  const int64_t last = ax.in - 1 - i0;  // the largest k*dil that stays inside
  if (last < 0) b = 0;
  else if ((ax.k - 1) * ax.dil > last) b = last / ax.dil + 1;
  *k0 = a;
  *k1 = b < a ? a : b;
}

// One output pixel of a depthwise conv: 4 vectors (64 channels) per step for independent
// FMA chains, then single vectors, then a masked tail.
void dw_pixel(const DwConv2dArgs& a, int64_t b, int64_t oy, int64_t ox, int64_t ky0, int64_t ky1, float* y) {
  const int64_t C = a.C;
  int64_t kx0, kx1;
  tap_range(a.w, ox, &kx0, &kx1);
  const int64_t iy0 = oy * a.h.stride - a.h.pad0, ix0 = ox * a.w.stride - a.w.pad0;
  const float* xb = a.X + b * a.h.in * a.w.in * C;
  int64_t c = 0;
  for (; c + 64 <= C; c += 64) {
    __m512 s0, s1, s2, s3;
    if (a.bias) {
      s0 = _mm512_loadu_ps(a.bias + c); s1 = _mm512_loadu_ps(a.bias + c + 16);
      s2 = _mm512_loadu_ps(a.bias + c + 32); s3 = _mm512_loadu_ps(a.bias + c + 48);
    } else {
      s0 = s1 = s2 = s3 = _mm512_setzero_ps();
    }
    for (int64_t ky = ky0; ky < ky1; ++ky) {
      const float* xr = xb + (iy0 + ky * a.h.dil) * a.w.in * C + c;
      const float* wr = a.Wt + ky * a.w.k * C + c;
      for (int64_t kx = kx0; kx < kx1; ++kx) {
        const float* xp = xr + (ix0 + kx * a.w.dil) * C;
        const float* wp = wr + kx * C;
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(xp), _mm512_loadu_ps(wp), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(xp + 16), _mm512_loadu_ps(wp + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(xp + 32), _mm512_loadu_ps(wp + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(xp + 48), _mm512_loadu_ps(wp + 48), s3);
      }
    }
    _mm512_storeu_ps(y + c, s0); _mm512_storeu_ps(y + c + 16, s1);
    _mm512_storeu_ps(y + c + 32, s2); _mm512_storeu_ps(y + c + 48, s3);
  }
  for (; c < C; c += 16) {
    const __mmask16 m = tail_mask(c + 16 > C ? C - c : 16);
    __m512 s = a.bias ? _mm512_maskz_loadu_ps(m, a.bias + c) : _mm512_setzero_ps();
    for (int64_t ky = ky0; ky < ky1; ++ky) {
      const float* xr = xb + (iy0 + ky * a.h.dil) * a.w.in * C + c;
      const float* wr = a.Wt + ky * a.w.k * C + c;
      for (int64_t kx = kx0; kx < kx1; ++kx)
        s = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, xr + (ix0 + kx * a.w.dil) * C), _mm512_maskz_loadu_ps(m, wr + kx * C), s);
    }
    _mm512_mask_storeu_ps(y + c, m, s);
  }
}

// Four horizontally adjacent output pixels whose taps are all inside the image along x (the
// interior of a row, where most pixels are): each weight vector is loaded once for the four,
// and 2 channel vectors x 4 pixels give 8 independent FMA chains.
void dw_quad(const DwConv2dArgs& a, int64_t b, int64_t oy, int64_t ox, int64_t ky0, int64_t ky1, float* y) {
  const int64_t C = a.C, K = a.w.k;
  const int64_t iy0 = oy * a.h.stride - a.h.pad0, ix0 = ox * a.w.stride - a.w.pad0;
  const int64_t px = a.w.stride * C;  // distance between the four pixels' inputs
  const float* xb = a.X + b * a.h.in * a.w.in * C;
  int64_t c = 0;
  for (; c + 32 <= C; c += 32) {
    __m512 s[8];
    const __m512 b0 = a.bias ? _mm512_loadu_ps(a.bias + c) : _mm512_setzero_ps();
    const __m512 b1 = a.bias ? _mm512_loadu_ps(a.bias + c + 16) : _mm512_setzero_ps();
    for (int p = 0; p < 4; ++p) {
      s[2 * p] = b0;
      s[2 * p + 1] = b1;
    }
    for (int64_t ky = ky0; ky < ky1; ++ky) {
      const float* xr = xb + ((iy0 + ky * a.h.dil) * a.w.in + ix0) * C + c;
      const float* wr = a.Wt + ky * K * C + c;
      for (int64_t kx = 0; kx < K; ++kx) {
        const float* xp = xr + kx * a.w.dil * C;
        const __m512 w0 = _mm512_loadu_ps(wr + kx * C), w1 = _mm512_loadu_ps(wr + kx * C + 16);
        for (int p = 0; p < 4; ++p) {
          s[2 * p] = _mm512_fmadd_ps(_mm512_loadu_ps(xp + p * px), w0, s[2 * p]);
          s[2 * p + 1] = _mm512_fmadd_ps(_mm512_loadu_ps(xp + p * px + 16), w1, s[2 * p + 1]);
        }
      }
    }
    for (int p = 0; p < 4; ++p) {
      _mm512_storeu_ps(y + p * C + c, s[2 * p]);
      _mm512_storeu_ps(y + p * C + c + 16, s[2 * p + 1]);
    }
  }
  for (; c < C; c += 16) {
    const __mmask16 m = tail_mask(c + 16 > C ? C - c : 16);
    __m512 s[4];
    const __m512 b0 = a.bias ? _mm512_maskz_loadu_ps(m, a.bias + c) : _mm512_setzero_ps();
    for (int p = 0; p < 4; ++p) s[p] = b0;
    for (int64_t ky = ky0; ky < ky1; ++ky) {
      const float* xr = xb + ((iy0 + ky * a.h.dil) * a.w.in + ix0) * C + c;
      const float* wr = a.Wt + ky * K * C + c;
      for (int64_t kx = 0; kx < K; ++kx) {
        const float* xp = xr + kx * a.w.dil * C;
        const __m512 w0 = _mm512_maskz_loadu_ps(m, wr + kx * C);
        for (int p = 0; p < 4; ++p) s[p] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, xp + p * px), w0, s[p]);
      }
    }
    for (int p = 0; p < 4; ++p) _mm512_mask_storeu_ps(y + p * C + c, m, s[p]);
  }
}

void dwconv2d(const DwConv2dArgs& a, int ith, int nth) {
  int64_t r0, r1;
  split(a.B * a.h.out, ith, nth, &r0, &r1);
  const int64_t row_elems = a.w.out * a.C;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t b = r / a.h.out, oy = r % a.h.out;
    int64_t ky0, ky1;
    tap_range(a.h, oy, &ky0, &ky1);
    float* yrow = a.Y + r * row_elems;
    int64_t ox = 0;
    while (ox < a.w.out) {
      if (ox + 4 <= a.w.out && ox * a.w.stride - a.w.pad0 >= 0 &&
          (ox + 3) * a.w.stride - a.w.pad0 + (a.w.k - 1) * a.w.dil < a.w.in) {
        dw_quad(a, b, oy, ox, ky0, ky1, yrow + ox * a.C);
        ox += 4;
      } else {
        dw_pixel(a, b, oy, ox, ky0, ky1, yrow + ox * a.C);
        ox += 1;
      }
    }
    // The finished row is still in L1/L2: apply the activation there.
    if (a.act != Act::None) act_inplace(yrow, row_elems, a.act);
  }
}

void pool2d(const Pool2dArgs& a, int ith, int nth) {
  const int64_t C = a.C;
  int64_t r0, r1;
  split(a.B * a.h.out, ith, nth, &r0, &r1);
  const bool is_max = a.kind == PoolKind::Max;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t b = r / a.h.out, oy = r % a.h.out;
    int64_t ky0, ky1;
    tap_range(a.h, oy, &ky0, &ky1);
    const int64_t iy0 = oy * a.h.stride - a.h.pad0;
    for (int64_t ox = 0; ox < a.w.out; ++ox) {
      int64_t kx0, kx1;
      tap_range(a.w, ox, &kx0, &kx1);
      const int64_t ix0 = ox * a.w.stride - a.w.pad0;
      const int64_t count = (ky1 - ky0) * (kx1 - kx0);
      const int64_t div = a.count_include_pad ? a.h.k * a.w.k : count;
      const __m512 vdiv = _mm512_set1_ps(static_cast<float>(div > 0 ? div : 1));
      float* y = a.Y + ((b * a.h.out + oy) * a.w.out + ox) * C;
      for (int64_t c = 0; c < C; c += 16) {
        const __mmask16 m = tail_mask(c + 16 > C ? C - c : 16);
        __m512 acc = is_max ? _mm512_set1_ps(-std::numeric_limits<float>::infinity()) : _mm512_setzero_ps();
        for (int64_t ky = ky0; ky < ky1; ++ky) {
          const float* xr = a.X + ((b * a.h.in + iy0 + ky * a.h.dil) * a.w.in) * C + c;
          for (int64_t kx = kx0; kx < kx1; ++kx) {
            const __m512 v = _mm512_maskz_loadu_ps(m, xr + (ix0 + kx * a.w.dil) * C);
            if (is_max) {
              // max(v, acc) keeps a NaN already in acc; the blend takes a NaN in v.
              acc = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), _mm512_max_ps(v, acc), v);
            } else {
              acc = _mm512_add_ps(acc, v);
            }
          }
        }
        if (!is_max) acc = div > 0 ? _mm512_div_ps(acc, vdiv) : _mm512_setzero_ps();
        _mm512_mask_storeu_ps(y + c, m, acc);
      }
    }
  }
}

// Work items are (image, 64-channel block); pixels summed in order, like the reference.
void global_avgpool(const float* X, int64_t B, int64_t HW, int64_t C, float* Y, int ith, int nth) {
  const int64_t nblk = (C + 63) / 64;
  int64_t r0, r1;
  split(B * nblk, ith, nth, &r0, &r1);
  const __m512 inv = _mm512_set1_ps(1.0f / static_cast<float>(HW));
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t b = r / nblk, c0 = (r % nblk) * 64, c1 = c0 + 64 < C ? c0 + 64 : C;
    const float* xb = X + b * HW * C;
    for (int64_t c = c0; c < c1; c += 16) {
      const __mmask16 m = tail_mask(c + 16 > c1 ? c1 - c : 16);
      __m512 s = _mm512_setzero_ps();
      for (int64_t p = 0; p < HW; ++p) s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(m, xb + p * C + c));
      _mm512_mask_storeu_ps(Y + b * C + c, m, _mm512_mul_ps(s, inv));
    }
  }
}

}  // namespace
}  // namespace avx512

void register_conv_avx512(KernelTable& t) {
  t.dwconv2d = avx512::dwconv2d;
  t.pool2d = avx512::pool2d;
  t.global_avgpool = avx512::global_avgpool;
}

}  // namespace pyvitcpp
