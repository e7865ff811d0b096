// Depthwise convolution and pooling over NHWC maps (channels are the vector lanes), ONE body for
// the avx2 and avx512 levels over the level's vector traits VT (kernels/<isa>/vec_<isa>.h).
// Specification: kernels/ref/conv_ref.cpp.
//
// Included by kernels/<isa>/conv_<isa>.cpp INSIDE that level's (per-ISA, anonymous) namespace,
// after kernels/split_range.h and the level's vec_<isa>.h (the norm/act body's pattern): each
// ISA-flagged TU compiles its own copy with internal linkage. The includer provides <cstdint>,
// <limits>, kernels.h and simd_act.h (the fused activation is the level's act_inplace).

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

// One output pixel of a depthwise conv: 4 vectors (4 W channels) per step for independent
// FMA chains, then single vectors, the last one masked.
void dw_pixel(const DwConv2dArgs& a, int64_t b, int64_t oy, int64_t ox, int64_t ky0, int64_t ky1, float* y) {
  using V = typename VT::V;
  constexpr int W = VT::W;
  const int64_t C = a.C;
  int64_t kx0, kx1;
  tap_range(a.w, ox, &kx0, &kx1);
  const int64_t iy0 = oy * a.h.stride - a.h.pad0, ix0 = ox * a.w.stride - a.w.pad0;
  const float* xb = a.X + b * a.h.in * a.w.in * C;
  int64_t c = 0;
  for (; c + 4 * W <= C; c += 4 * W) {
    V s0, s1, s2, s3;
    if (a.bias) {
      s0 = VT::loadu(a.bias + c); s1 = VT::loadu(a.bias + c + W);
      s2 = VT::loadu(a.bias + c + 2 * W); s3 = VT::loadu(a.bias + c + 3 * W);
    } else {
      s0 = s1 = s2 = s3 = VT::zero();
    }
    for (int64_t ky = ky0; ky < ky1; ++ky) {
      const float* xr = xb + (iy0 + ky * a.h.dil) * a.w.in * C + c;
      const float* wr = a.Wt + ky * a.w.k * C + c;
      for (int64_t kx = kx0; kx < kx1; ++kx) {
        const float* xp = xr + (ix0 + kx * a.w.dil) * C;
        const float* wp = wr + kx * C;
        s0 = VT::fmadd(VT::loadu(xp), VT::loadu(wp), s0);
        s1 = VT::fmadd(VT::loadu(xp + W), VT::loadu(wp + W), s1);
        s2 = VT::fmadd(VT::loadu(xp + 2 * W), VT::loadu(wp + 2 * W), s2);
        s3 = VT::fmadd(VT::loadu(xp + 3 * W), VT::loadu(wp + 3 * W), s3);
      }
    }
    VT::storeu(y + c, s0); VT::storeu(y + c + W, s1);
    VT::storeu(y + c + 2 * W, s2); VT::storeu(y + c + 3 * W, s3);
  }
  for (; c < C; c += W) {
    const typename VT::M m = VT::first(c + W > C ? C - c : W);
    V s = a.bias ? VT::load_m(a.bias + c, m) : VT::zero();
    for (int64_t ky = ky0; ky < ky1; ++ky) {
      const float* xr = xb + (iy0 + ky * a.h.dil) * a.w.in * C + c;
      const float* wr = a.Wt + ky * a.w.k * C + c;
      for (int64_t kx = kx0; kx < kx1; ++kx)
        s = VT::fmadd(VT::load_m(xr + (ix0 + kx * a.w.dil) * C, m), VT::load_m(wr + kx * C, m), s);
    }
    VT::store_m(y + c, m, s);
  }
}

// Four horizontally adjacent output pixels whose taps are all inside the image along x (the
// interior of a row, where most pixels are): each weight vector is loaded once for the four,
// and 2 channel vectors x 4 pixels give 8 independent FMA chains.
void dw_quad(const DwConv2dArgs& a, int64_t b, int64_t oy, int64_t ox, int64_t ky0, int64_t ky1, float* y) {
  using V = typename VT::V;
  constexpr int W = VT::W;
  const int64_t C = a.C, K = a.w.k;
  const int64_t iy0 = oy * a.h.stride - a.h.pad0, ix0 = ox * a.w.stride - a.w.pad0;
  const int64_t px = a.w.stride * C;  // distance between the four pixels' inputs
  const float* xb = a.X + b * a.h.in * a.w.in * C;
  int64_t c = 0;
  for (; c + 2 * W <= C; c += 2 * W) {
    V s[8];
    const V b0 = a.bias ? VT::loadu(a.bias + c) : VT::zero();
    const V b1 = a.bias ? VT::loadu(a.bias + c + W) : VT::zero();
    for (int p = 0; p < 4; ++p) {
      s[2 * p] = b0;
      s[2 * p + 1] = b1;
    }
    for (int64_t ky = ky0; ky < ky1; ++ky) {
      const float* xr = xb + ((iy0 + ky * a.h.dil) * a.w.in + ix0) * C + c;
      const float* wr = a.Wt + ky * K * C + c;
      for (int64_t kx = 0; kx < K; ++kx) {
        const float* xp = xr + kx * a.w.dil * C;
        const V w0 = VT::loadu(wr + kx * C), w1 = VT::loadu(wr + kx * C + W);
        for (int p = 0; p < 4; ++p) {
          s[2 * p] = VT::fmadd(VT::loadu(xp + p * px), w0, s[2 * p]);
          s[2 * p + 1] = VT::fmadd(VT::loadu(xp + p * px + W), w1, s[2 * p + 1]);
        }
      }
    }
    for (int p = 0; p < 4; ++p) {
      VT::storeu(y + p * C + c, s[2 * p]);
      VT::storeu(y + p * C + c + W, s[2 * p + 1]);
    }
  }
  for (; c < C; c += W) {
    const typename VT::M m = VT::first(c + W > C ? C - c : W);
    V s[4];
    const V b0 = a.bias ? VT::load_m(a.bias + c, m) : VT::zero();
    for (int p = 0; p < 4; ++p) s[p] = b0;
    for (int64_t ky = ky0; ky < ky1; ++ky) {
      const float* xr = xb + ((iy0 + ky * a.h.dil) * a.w.in + ix0) * C + c;
      const float* wr = a.Wt + ky * K * C + c;
      for (int64_t kx = 0; kx < K; ++kx) {
        const float* xp = xr + kx * a.w.dil * C;
        const V w0 = VT::load_m(wr + kx * C, m);
        for (int p = 0; p < 4; ++p) s[p] = VT::fmadd(VT::load_m(xp + p * px, m), w0, s[p]);
      }
    }
    for (int p = 0; p < 4; ++p) VT::store_m(y + p * C + c, m, s[p]);
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
  using V = typename VT::V;
  constexpr int W = VT::W;
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
      const V vdiv = VT::set1(static_cast<float>(div > 0 ? div : 1));
      float* y = a.Y + ((b * a.h.out + oy) * a.w.out + ox) * C;
      for (int64_t c = 0; c < C; c += W) {
        const typename VT::M m = VT::first(c + W > C ? C - c : W);
        V acc = is_max ? VT::set1(-std::numeric_limits<float>::infinity()) : VT::zero();
        for (int64_t ky = ky0; ky < ky1; ++ky) {
          const float* xr = a.X + ((b * a.h.in + iy0 + ky * a.h.dil) * a.w.in) * C + c;
          for (int64_t kx = kx0; kx < kx1; ++kx) {
            const V v = VT::load_m(xr + (ix0 + kx * a.w.dil) * C, m);
            if (is_max) acc = VT::max_nan(acc, v);  // a NaN in either wins (the ref's rule)
            else acc = VT::add(acc, v);
          }
        }
        // A true division, as the ref does (no taps inside and none counted: 0, as the ref).
        if (!is_max) acc = div > 0 ? VT::div(acc, vdiv) : VT::zero();
        VT::store_m(y + c, m, acc);
      }
    }
  }
}
