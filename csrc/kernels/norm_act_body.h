// Layer norm and the activations (act_apply, the activation kernel), ONE body for the avx2 and
// avx512 levels over the level's vector traits VT (kernels/<isa>/vec_<isa>.h). Specification:
// kernels/ref/ops_ref.cpp and kernels/ref/act_ref.h (the ref level stays scalar).
//
// Included by kernels/<isa>/ops_<isa>.cpp INSIDE that level's (per-ISA, anonymous) namespace,
// after kernels/split_range.h and the level's vec_<isa>.h, like kernels/layout_body.h: each
// ISA-flagged TU compiles its own copy, under its own namespace (tests/test_isa_isolation.py),
// with internal linkage. The includer provides <cmath>, <cstring>, <cstdint> and kernels.h.
// The activation functions are the level's own vector math (VT::gelu_erf etc.), so what differs
// between the levels (avx2's division-free GELU path, avx512's vscalefps) stays per level.

// ---------------------------------------------------------------------------------------------
// Activations

// y[0..n) = f(x[0..n)): two vectors per step (independent chains), one, then a masked tail.
template <class F>
inline void map_act(const float* x, float* y, int64_t n, F f) {
  constexpr int W = VT::W;
  int64_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    typename VT::V a = f(VT::loadu(x + i));
    typename VT::V b = f(VT::loadu(x + i + W));
    VT::storeu(y + i, a);
    VT::storeu(y + i + W, b);
  }
  for (; i + W <= n; i += W) VT::storeu(y + i, f(VT::loadu(x + i)));
  if (i < n) {
    const typename VT::M m = VT::first(n - i);
    VT::store_m(y + i, m, f(VT::load_m(x + i, m)));
  }
}

// mish(x) = x tanh(log(1 + e^x)) = x e (e + 2) / (e (e + 2) + 2) with e = e^x: no log. With
// h = e^(x/2) and q = h (e + 2) / (e (e + 2) + 2) (so the ratio is h q), a negative x takes
// (x h) q: below x ~ -87, where e^x itself is subnormal, x e^x keeps full precision while it
// is a normal float; a positive x takes x (h q), which cannot overflow. The exponent is clamped
// at 20 (beyond it the ratio rounds to 1, as tanh does). min(0, x) / max(0, x) return x when it
// is NaN, so NaN propagates; -inf gives -inf * 0 = NaN, as PyTorch's formula does.
inline typename VT::V mish_v(typename VT::V x) {
  using V = typename VT::V;
  const V h = VT::exp(VT::mul(VT::min(x, VT::set1(20.0f)), VT::set1(0.5f)));
  const V e = VT::mul(h, h);
  const V e2 = VT::add(e, VT::set1(2.0f));
  const V q = VT::div(VT::mul(h, e2), VT::fmadd(e, e2, VT::set1(2.0f)));
  const V neg = VT::mul(VT::mul(VT::min(VT::zero(), x), h), q);
  const V pos = VT::mul(VT::max(VT::zero(), x), VT::mul(h, q));
  return VT::add(neg, pos);
}

void act_apply(const float* x, float* y, int64_t n, Act act) {
  using V = typename VT::V;
  switch (act) {
    case Act::None:
      if (x != y && n > 0) std::memmove(y, x, static_cast<size_t>(n) * sizeof(float));
      return;
    case Act::GeluErf: map_act(x, y, n, [](V v) { return VT::gelu_erf(v); }); return;
    case Act::GeluTanh: map_act(x, y, n, [](V v) { return VT::gelu_tanh(v); }); return;
    case Act::QuickGelu: map_act(x, y, n, [](V v) { return VT::quick_gelu(v); }); return;
    case Act::Tanh: map_act(x, y, n, [](V v) { return VT::tanh(v); }); return;
    case Act::Relu:
      // max(0, x) rather than max(x, 0): NaN propagates (max returns its second operand on NaN).
      map_act(x, y, n, [](V v) { return VT::max(VT::zero(), v); });
      return;
    case Act::Relu6:
      map_act(x, y, n, [](V v) { return VT::min(VT::set1(6.0f), VT::max(VT::zero(), v)); });
      return;
    case Act::Silu: map_act(x, y, n, [](V v) { return VT::silu(v); }); return;
    case Act::LeakyRelu:
      // max(0.01 x, x) is x for x >= 0 and 0.01 x below; NaN propagates (second operand).
      map_act(x, y, n, [](V v) { return VT::max(VT::mul(VT::set1(0.01f), v), v); });
      return;
    case Act::HardSwish: map_act(x, y, n, [](V v) { return VT::hard_swish(v); }); return;
    case Act::LeakyRelu01:
      map_act(x, y, n, [](V v) { return VT::max(VT::mul(VT::set1(0.1f), v), v); });
      return;
    case Act::Mish: map_act(x, y, n, [](V v) { return mish_v(v); }); return;
    case Act::Sigmoid: map_act(x, y, n, [](V v) { return VT::sigmoid(v); }); return;
  }
}

void activation(const float* X, float* Y, int64_t n, Act act, int ith, int nth) {
  // Split on 16-element (cache-line) boundaries so threads never share a line of Y.
  const int64_t blocks = (n + 15) / 16;
  int64_t b, e;
  split(blocks, ith, nth, &b, &e);
  b *= 16;
  e = e * 16 < n ? e * 16 : n;
  if (b < e) act_apply(X + b, Y + b, e - b, act);
}

// ---------------------------------------------------------------------------------------------
// Layer norm: two passes in fp32 (mean, then sum of squared deviations), like the reference;
// four accumulators per pass (independent add/FMA chains), the row's last D % W in one masked
// vector.

template <bool kGamma, bool kBeta>
void layernorm_rows(const LayerNormArgs& a, int64_t r0, int64_t r1) {
  using V = typename VT::V;
  constexpr int W = VT::W;
  const int64_t D = a.D;
  const int64_t Dv = D / W * W;
  const typename VT::M tm = VT::first(D - Dv);
  const float invD = 1.0f / static_cast<float>(D);
  for (int64_t r = r0; r < r1; ++r) {
    const float* x = a.X + r * a.ldx;
    float* y = a.Y + r * a.ldy;
    V s0 = VT::zero(), s1 = s0, s2 = s0, s3 = s0;
    int64_t i = 0;
    for (; i + 4 * W <= D; i += 4 * W) {
      s0 = VT::add(s0, VT::loadu(x + i));
      s1 = VT::add(s1, VT::loadu(x + i + W));
      s2 = VT::add(s2, VT::loadu(x + i + 2 * W));
      s3 = VT::add(s3, VT::loadu(x + i + 3 * W));
    }
    for (; i < Dv; i += W) s0 = VT::add(s0, VT::loadu(x + i));
    if (Dv < D) s1 = VT::add(s1, VT::load_m(x + Dv, tm));
    const float mean = VT::reduce_add(VT::add(VT::add(s0, s1), VT::add(s2, s3))) * invD;
    const V vm = VT::set1(mean);
    s0 = s1 = s2 = s3 = VT::zero();
    i = 0;
    for (; i + 4 * W <= D; i += 4 * W) {
      V d0 = VT::sub(VT::loadu(x + i), vm);
      V d1 = VT::sub(VT::loadu(x + i + W), vm);
      V d2 = VT::sub(VT::loadu(x + i + 2 * W), vm);
      V d3 = VT::sub(VT::loadu(x + i + 3 * W), vm);
      s0 = VT::fmadd(d0, d0, s0);
      s1 = VT::fmadd(d1, d1, s1);
      s2 = VT::fmadd(d2, d2, s2);
      s3 = VT::fmadd(d3, d3, s3);
    }
    for (; i < Dv; i += W) {
      V d = VT::sub(VT::loadu(x + i), vm);
      s0 = VT::fmadd(d, d, s0);
    }
    if (Dv < D) {
      // Lanes past the row read 0, and 0 - mean must not count.
      V d = VT::keep(tm, VT::sub(VT::load_m(x + Dv, tm), vm));
      s1 = VT::fmadd(d, d, s1);
    }
    const float var = VT::reduce_add(VT::add(VT::add(s0, s1), VT::add(s2, s3))) * invD;
    const V rstd = VT::set1(1.0f / std::sqrt(var + a.eps));
    // gamma / beta are only read (ld) when present.
    auto out = [&](V xv, auto ld) {
      V v = VT::mul(VT::sub(xv, vm), rstd);
      if constexpr (kGamma && kBeta)
        return VT::fmadd(v, ld(a.gamma), ld(a.beta));
      else if constexpr (kGamma)
        return VT::mul(v, ld(a.gamma));
      else if constexpr (kBeta)
        return VT::add(v, ld(a.beta));
      else
        return v;
    };
    for (i = 0; i < Dv; i += W)
      VT::storeu(y + i, out(VT::loadu(x + i), [&](const float* p) { return VT::loadu(p + i); }));
    if (Dv < D)
      VT::store_m(y + Dv, tm, out(VT::load_m(x + Dv, tm), [&](const float* p) { return VT::load_m(p + Dv, tm); }));
  }
}

void layernorm(const LayerNormArgs& a, int ith, int nth) {
  int64_t r0, r1;
  split(a.rows, ith, nth, &r0, &r1);
  if (r0 >= r1 || a.D <= 0) return;
  if (a.gamma && a.beta) layernorm_rows<true, true>(a, r0, r1);
  else if (a.gamma) layernorm_rows<true, false>(a, r0, r1);
  else if (a.beta) layernorm_rows<false, true>(a, r0, r1);
  else layernorm_rows<false, false>(a, r0, r1);
}
