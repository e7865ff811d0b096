// Layout and elementwise kernels over N-D strided tensors: copy (permute / slice / broadcast /
// concat pieces), pad, roll, broadcast elementwise and the mean over one axis.
//
// ONE body for every level: kernels/ref/layout_ref.cpp, kernels/avx2/layout_avx2.cpp and
// kernels/avx512/layout_avx512.cpp each include this file inside their own namespace, so the
// compiler vectorises the same loops with that level's flags (these ops move memory; a
// hand-written body per level would buy nothing but drift). The activation inside Act/ActMul
// calls the including level's act_inplace (kernels/simd_act.h). Included INSIDE the includer's
// (per-ISA, anonymous) namespace, after kernels/split_range.h; the includer provides
// <cstring>, <cstdint> and kernels/kernels.h.

// Merges adjacent dimensions that are contiguous in every operand and drops size-1
// dimensions. st[k] are the k operands' strides (arrays of kMaxDims). Returns the new nd
// (at least 1: a scalar becomes [1]).
inline int collapse_dims(int nd, int64_t* ne, int64_t* const* st, int k) {
  int m = 0;
  for (int d = 0; d < nd; ++d) {
    if (ne[d] == 1) continue;
    if (m > 0) {
      bool merge = true;
      for (int s = 0; s < k; ++s)
        if (st[s][m - 1] != st[s][d] * ne[d]) merge = false;
      if (merge) {
        ne[m - 1] *= ne[d];
        for (int s = 0; s < k; ++s) st[s][m - 1] = st[s][d];
        continue;
      }
    }
    ne[m] = ne[d];
    for (int s = 0; s < k; ++s) st[s][m] = st[s][d];
    ++m;
  }
  if (m == 0) {
    ne[0] = 1;
    for (int s = 0; s < k; ++s) st[s][0] = 1;
    m = 1;
  }
  return m;
}

// Walks rows r0, r0+1, ... (a row = an index over dims [0, nd-1)) keeping each of the k
// operands' offset: divisions only once, at the start; then a carry per step (a 6-D patchify
// or window partition moves rows of 16-64 floats, where a div/mod per dim per row cost more
// than the copy).
template <int K>
struct RowWalk {
  int nd;
  const int64_t* ne;
  const int64_t* const* st;
  int64_t idx[kMaxDims] = {};
  int64_t off[K] = {};
  RowWalk(int64_t r, int nd_, const int64_t* ne_, const int64_t* const* st_) : nd(nd_), ne(ne_), st(st_) {
    for (int d = nd - 2; d >= 0; --d) {
      idx[d] = r % ne[d];
      r /= ne[d];
      for (int s = 0; s < K; ++s) off[s] += idx[d] * st[s][d];
    }
  }
  void next() {
    for (int d = nd - 2; d >= 0; --d) {
      for (int s = 0; s < K; ++s) off[s] += st[s][d];
      if (++idx[d] < ne[d]) return;
      for (int s = 0; s < K; ++s) off[s] -= ne[d] * st[s][d];
      idx[d] = 0;
    }
  }
};

inline void copy_inner(const float* x, int64_t xs, float* y, int64_t ys, int64_t n) {
  if (xs == 1 && ys == 1) {
    std::memcpy(y, x, sizeof(float) * static_cast<size_t>(n));
  } else if (xs == 0 && ys == 1) {
    const float v = *x;
    for (int64_t i = 0; i < n; ++i) y[i] = v;
  } else {
    for (int64_t i = 0; i < n; ++i) y[i * ys] = x[i * xs];
  }
}

// The last axis is strided in X but another axis `a` is contiguous there (a transposition,
// e.g. NHWC -> NCHW): 16 x 16 tiles so that both sides touch whole cache lines.
inline void copy_transposed(int nd, const int64_t* ne, const int64_t* xs, const int64_t* ys, int a, const float* X,
                            float* Y, int ith, int nth) {
  constexpr int64_t TB = 16;
  const int L = nd - 1;
  int64_t outer = 1;
  for (int d = 0; d < L; ++d)
    if (d != a) outer *= ne[d];
  const int64_t ablocks = (ne[a] + TB - 1) / TB;
  int64_t u0, u1;
  split(outer * ablocks, ith, nth, &u0, &u1);
  for (int64_t u = u0; u < u1; ++u) {
    int64_t o = u / ablocks;
    const int64_t i0 = (u % ablocks) * TB, i1 = i0 + TB < ne[a] ? i0 + TB : ne[a];
    int64_t xo = 0, yo = 0;
    for (int d = L - 1; d >= 0; --d) {
      if (d == a) continue;
      const int64_t i = o % ne[d];
      o /= ne[d];
      xo += i * xs[d];
      yo += i * ys[d];
    }
    for (int64_t j0 = 0; j0 < ne[L]; j0 += TB) {
      const int64_t j1 = j0 + TB < ne[L] ? j0 + TB : ne[L];
      for (int64_t i = i0; i < i1; ++i) {
        const float* x = X + xo + i * xs[a];
        float* y = Y + yo + i * ys[a];
        for (int64_t j = j0; j < j1; ++j) y[j * ys[L]] = x[j * xs[L]];
      }
    }
  }
}

void copy_strided(const CopyArgs& args, int ith, int nth) {
  int64_t ne[kMaxDims], xs[kMaxDims], ys[kMaxDims];
  for (int d = 0; d < args.nd; ++d) {
    ne[d] = args.ne[d];
    xs[d] = args.xs[d];
    ys[d] = args.ys[d];
    if (ne[d] == 0) return;
  }
  int64_t* st[2] = {xs, ys};
  const int nd = collapse_dims(args.nd, ne, st, 2);
  const int L = nd - 1;
  if (xs[L] != 1 && xs[L] != 0) {
    for (int a = 0; a < L; ++a)
      if (xs[a] == 1) {
        copy_transposed(nd, ne, xs, ys, a, args.X, args.Y, ith, nth);
        return;
      }
  }
  int64_t rows = 1;
  for (int d = 0; d < L; ++d) rows *= ne[d];
  if (rows == 1) {  // one long row: split it
    int64_t e0, e1;
    split(ne[L], ith, nth, &e0, &e1);
    if (e1 > e0) copy_inner(args.X + e0 * xs[L], xs[L], args.Y + e0 * ys[L], ys[L], e1 - e0);
    return;
  }
  int64_t r0, r1;
  split(rows, ith, nth, &r0, &r1);
  RowWalk<2> w(r0, nd, ne, st);
  for (int64_t r = r0; r < r1; ++r, w.next()) copy_inner(args.X + w.off[0], xs[L], args.Y + w.off[1], ys[L], ne[L]);
}

// Pad and roll walk the output's rows (RowWalk over its dims, X's strides) and map each row's
// index to X per dimension: inside the copied block or not (pad), shifted modulo the size (roll).
void pad(const PadArgs& a, int ith, int nth) {
  const int nd = a.nd, L = nd - 1;
  int64_t rows = 1;
  for (int d = 0; d < L; ++d) rows *= a.ne[d];
  int64_t r0, r1;
  split(rows, ith, nth, &r0, &r1);
  const int64_t n = a.ne[L], lo = a.lo[L], xn = a.xne[L];
  int64_t lo_off = 0;  // X's offset of the output row at lo (where X's row 0 lands)
  for (int d = 0; d < L; ++d) lo_off += a.lo[d] * a.xs[d];
  const int64_t* st[1] = {a.xs};
  RowWalk<1> w(r0, nd, a.ne, st);
  for (int64_t r = r0; r < r1; ++r, w.next()) {
    float* y = a.Y + r * n;
    bool inside = true;
    for (int d = 0; d < L; ++d) inside = inside && w.idx[d] >= a.lo[d] && w.idx[d] < a.lo[d] + a.xne[d];
    if (!inside) {
      for (int64_t j = 0; j < n; ++j) y[j] = a.value;
      continue;
    }
    for (int64_t j = 0; j < lo; ++j) y[j] = a.value;
    copy_inner(a.X + w.off[0] - lo_off, a.xs[L], y + lo, 1, xn);
    for (int64_t j = lo + xn; j < n; ++j) y[j] = a.value;
  }
}

void roll(const RollArgs& a, int ith, int nth) {
  const int nd = a.nd, L = nd - 1;
  int64_t rows = 1;
  for (int d = 0; d < L; ++d) rows *= a.ne[d];
  int64_t r0, r1;
  split(rows, ith, nth, &r0, &r1);
  const int64_t n = a.ne[L], s = a.shift[L], xl = a.xs[L];
  const int64_t* st[1] = {a.xs};
  RowWalk<1> w(r0, nd, a.ne, st);
  for (int64_t r = r0; r < r1; ++r, w.next()) {
    float* y = a.Y + r * n;
    int64_t xo = 0;
    for (int d = 0; d < L; ++d) {
      const int64_t i = w.idx[d] - a.shift[d];
      xo += (i < 0 ? i + a.ne[d] : i) * a.xs[d];
    }
    // y[j] = x[(j - s) mod n]: y[0, s) = x[n - s, n), y[s, n) = x[0, n - s).
    copy_inner(a.X + xo + (n - s) * xl, xl, y, 1, s);
    copy_inner(a.X + xo, xl, y + s, 1, n - s);
  }
}

// One row segment of an elementwise op: y[0, n) from a, b, c at their inner strides.
inline void eltwise_inner(const EltwiseArgs& e, const float* x, int64_t sa, const float* b, int64_t sb,
                          const float* c, int64_t sc, float* y, int64_t n) {
  switch (e.kind) {
    case EltKind::Add: {
      const float al = e.alpha;
      if (sa == 1 && sb == 1) {
        if (al == 1.0f)
          for (int64_t i = 0; i < n; ++i) y[i] = x[i] + b[i];
        else
          for (int64_t i = 0; i < n; ++i) y[i] = al * (x[i] + b[i]);
      } else {
        for (int64_t i = 0; i < n; ++i) y[i] = al * (x[i * sa] + b[i * sb]);
      }
      break;
    }
    case EltKind::Mul:
      if (sa == 1 && sb == 1)
        for (int64_t i = 0; i < n; ++i) y[i] = x[i] * b[i];
      else
        for (int64_t i = 0; i < n; ++i) y[i] = x[i * sa] * b[i * sb];
      break;
    case EltKind::AddMul:
      if (sa == 1 && sb == 1 && sc == 1)
        for (int64_t i = 0; i < n; ++i) y[i] = x[i] + b[i] * c[i];
      else
        for (int64_t i = 0; i < n; ++i) y[i] = x[i * sa] + b[i * sb] * c[i * sc];
      break;
    case EltKind::ActMul:
    case EltKind::Act:
      copy_inner(x, sa, y, 1, n);
      act_inplace(y, n, e.act);
      if (e.kind == EltKind::ActMul) {
        if (sb == 1)
          for (int64_t i = 0; i < n; ++i) y[i] *= b[i];
        else
          for (int64_t i = 0; i < n; ++i) y[i] *= b[i * sb];
      }
      break;
  }
}

void eltwise(const EltwiseArgs& args, int ith, int nth) {
  int64_t ne[kMaxDims], as[kMaxDims], bs[kMaxDims], cs[kMaxDims], ys[kMaxDims];
  int64_t total = 1;
  for (int d = args.nd - 1; d >= 0; --d) {
    ne[d] = args.ne[d];
    as[d] = args.as[d];
    bs[d] = args.B ? args.bs[d] : 0;
    cs[d] = args.C ? args.cs[d] : 0;
    ys[d] = total;
    total *= ne[d];
  }
  if (total == 0) return;
  int64_t* st[4] = {as, bs, cs, ys};
  const int nd = collapse_dims(args.nd, ne, st, 4);
  const int L = nd - 1;
  const float* B = args.B ? args.B : args.A;
  const float* C = args.C ? args.C : args.A;
  int64_t rows = 1;
  for (int d = 0; d < L; ++d) rows *= ne[d];
  if (rows == 1) {
    int64_t e0, e1;
    split(ne[L], ith, nth, &e0, &e1);
    if (e1 > e0)
      eltwise_inner(args, args.A + e0 * as[L], as[L], B + e0 * bs[L], bs[L], C + e0 * cs[L], cs[L], args.Y + e0, e1 - e0);
    return;
  }
  int64_t r0, r1;
  split(rows, ith, nth, &r0, &r1);
  RowWalk<4> w(r0, nd, ne, st);
  for (int64_t r = r0; r < r1; ++r, w.next())
    eltwise_inner(args, args.A + w.off[0], as[L], B + w.off[1], bs[L], C + w.off[2], cs[L], args.Y + w.off[3], ne[L]);
}

void mean(const MeanArgs& a, int ith, int nth) {
  // Work items: (outer index, block of up to IB inner elements); rows are summed in order j =
  // 0..n-1 into a block of accumulators (vectorised over the inner elements).
  constexpr int64_t IB = 256;
  const int64_t blocks = (a.inner + IB - 1) / IB;
  int64_t u0, u1;
  split(a.outer * blocks, ith, nth, &u0, &u1);
  const float inv = 1.0f / static_cast<float>(a.n);
  float acc[IB];
  for (int64_t u = u0; u < u1; ++u) {
    const int64_t o = u / blocks, i0 = (u % blocks) * IB;
    const int64_t m = a.inner - i0 < IB ? a.inner - i0 : IB;
    for (int64_t i = 0; i < m; ++i) acc[i] = 0.0f;
    const float* x = a.X + o * a.xs_o + i0;
    for (int64_t j = 0; j < a.n; ++j, x += a.xs_n)
      for (int64_t i = 0; i < m; ++i) acc[i] += x[i];
    float* y = a.Y + o * a.inner + i0;
    for (int64_t i = 0; i < m; ++i) y[i] = acc[i] * inv;
  }
}
