// The block-quantized GEMM's ISA-neutral scaffolding, shared by the avx2 and avx512 levels: the
// per-thread activation scratch, the work split (row tiles, or column panels when there are
// fewer row tiles than threads), the chunking of rows whose quantized activations stay in L2,
// and the loop over panels and row tiles. The math and the packed layout are kernels/quant_gemm.h.
//
// What stays per level (kernels/<isa>/quant_<isa>.cpp), because the instructions differ and not
// just the vector width: quantizing a chunk of activation rows, the integer microkernels (avx2:
// vpmaddubsw + vpmaddwd with 7-bit Q8_0 activations; avx512: VNNI vpdpbusd) and the tile
// epilogue; the level hands those to qgemm_run as template arguments (direct calls, no
// pointers at run time):
//   MR, PP                   rows, and panels of kQPanel columns, per microkernel tile
//   SPREAD_MAX, NIB_CHUNK    nibble types: the largest spread panel group (bytes) and the
//                            quantized-activation chunk (bytes; other types kChunkBytes)
//   quantize_rows(X, ldx, r0, r1, K, z, qmax, ActScratch&)
//                            rows [r0, r1) of X -> codes, dx, the zero-point term and dx * S per
//                            block of 32 (the term in the sign the level's microkernel uses:
//                            avx2 z * S, subtracted; avx512 -z * S, where its sums start)
//   run_tile(DType, spread, R, P, nb, q, ldq, d, zs, ds, ldb, w, PB, BB, tile)
//                            the f32 sums of R <= MR rows x P <= PP panels (the panels at w,
//                            PB bytes apart) into tile, row stride PP * kQPanel; spread: a
//                            nibble type's panels as spread_nibbles wrote them (byte codes)
//   finish_tile(a, tile, R, row0, col0, nc)
//                            y = act(sum + bias) + residual for R rows x nc columns
// Included INSIDE the level's (per-ISA, anonymous) namespace, like kernels/gemm_driver.h: each
// ISA's TU has its own copy with internal linkage, compiled with its own flags. The includer
// provides <algorithm>, <cstdint>, <vector>, kernels.h and quant_gemm.h.

// Quantized activations of the rows a thread is working on (grown on demand, never shrunk).
struct ActScratch {
  std::vector<int8_t> q;
  std::vector<float> d, ds;
  std::vector<int32_t> zs;
};
thread_local ActScratch t_scratch;

// Weight code families of the packed layout (quant_gemm.h): Q8_0 bytes, 5-bit bytes, nibbles,
// and nibbles spread to bytes (spread_nibbles: the byte layout, codes <= 15).
enum Kind { kQ8 = 0, kU8 = 1, kNib = 2, kNibSpread = 3 };

constexpr int64_t kChunkBytes = 1 << 17;  // quantized activation rows per chunk (L2 resident)

// Nibble codes (Q4_0, Q4_1) spread to one byte each, per thread and panel group: unpacking them
// once per group of panels instead of in every row tile's loop leaves the microkernels the
// byte types' loop. Same codes, same integer sums: the same bits as unpacking in the loop.
thread_local std::vector<uint8_t> t_spread;  // grown on demand, never shrunk; used from a 64-byte boundary
// A group up to kSpreadL1Bytes (byte codes that stay in L1) is spread when it serves two or
// more row tiles; a larger one (up to the level's SPREAD_MAX, in L2) only when it serves at
// least kSpreadL2Tiles, which pays for its L2 traffic (ViT-B's fc2, K = 3072, 110 KiB on avx512:
// 0.93-0.96x the in-loop unpacking with 7 row tiles per spread, 0.99-1.05x with 28, and ViT-B/16
// Q4_0 batch 8 took 0.95-0.96x the time).
constexpr int64_t kSpreadL1Bytes = 40 << 10;
constexpr int64_t kSpreadL2Tiles = 24;

// P panels of nibble blocks (BB bytes each, panels PB bytes apart) -> dst in the byte layout of
// quant_gemm.h (step s < 4 the low nibbles of nibble step s, step 4 + s their high nibbles, then
// the block's f32 scales and offsets as they were), blocks BB + 256 bytes, panels nb of them apart.
inline void spread_nibbles(const uint8_t* w, int P, int64_t PB, int64_t nb, int64_t BB, uint8_t* dst) {
  for (int p = 0; p < P; ++p) {
    const uint8_t* src = w + p * PB;
    uint8_t* d = dst + p * nb * (BB + 256);
    for (int64_t b = 0; b < nb; ++b, src += BB, d += BB + 256) {
      for (int i = 0; i < 256; ++i) {
        d[i] = src[i] & 15;
        d[256 + i] = src[i] >> 4;
      }
      std::memcpy(d + 512, src + 256, static_cast<size_t>(BB - 256));
    }
  }
}

template <int MR, int PP, int64_t SPREAD_MAX, int64_t NIB_CHUNK, auto quantize_rows, auto run_tile,
          auto finish_tile>
void qgemm_run(const GemmArgs& a, int act_qmax, int ith, int nth) {
  const DType t = a.wtype;
  const int64_t nb = a.K / 32;
  const int64_t panels = (a.N + kQPanel - 1) / kQPanel;
  const int64_t BB = qpack_block_bytes(t), PB = qpack_panel_bytes(t, a.K);
  const int z = qpack_zero_point(t);
  const float qmax = static_cast<float>(act_qmax);
  const int64_t tiles = (a.M + MR - 1) / MR;
  int64_t r0, r1, p0, p1;
  if (tiles >= nth) {
    r0 = std::min(a.M, tiles * ith / nth * MR);
    r1 = std::min(a.M, tiles * (ith + 1) / nth * MR);
    p0 = 0;
    p1 = panels;
  } else {  // few rows: split the column panels (in groups of PP) instead
    const int64_t groups = (panels + PP - 1) / PP;
    r0 = 0;
    r1 = a.M;
    p0 = std::min(panels, groups * ith / nth * PP);
    p1 = std::min(panels, groups * (ith + 1) / nth * PP);
  }
  if (r0 >= r1 || p0 >= p1) return;
  const uint8_t* W = static_cast<const uint8_t*>(a.W_packed);
  ActScratch& s = t_scratch;
  const int64_t chunk = std::max<int64_t>(MR, (qpack_nibbles(t) ? NIB_CHUNK : kChunkBytes) / a.K / MR * MR);
  alignas(64) float tile[MR * PP * kQPanel];
  const int64_t group_bytes = PP * nb * (BB + 256);  // a spread panel group
  // the fewest row tiles a chunk needs for its panel groups to be spread (0: never)
  const int64_t spread_tiles = !qpack_nibbles(t)                 ? 0
                               : group_bytes <= kSpreadL1Bytes ? 2
                               : group_bytes <= SPREAD_MAX     ? kSpreadL2Tiles
                                                               : 0;
  for (int64_t c0 = r0; c0 < r1; c0 += chunk) {
    const int64_t c1 = std::min(r1, c0 + chunk);
    quantize_rows(a.X, a.ldx, c0, c1, a.K, z, qmax, s);
    const bool spread = spread_tiles && (c1 - c0 + MR - 1) / MR >= spread_tiles;
    if (spread && t_spread.size() < static_cast<size_t>(group_bytes + 64))
      t_spread.resize(static_cast<size_t>(group_bytes + 64));
    uint8_t* const spread_buf =
        reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(t_spread.data()) + 63) & ~uintptr_t{63});
    for (int64_t p = p0; p < p1; p += PP) {
      const int P = static_cast<int>(std::min<int64_t>(PP, p1 - p));
      const int64_t col0 = p * kQPanel;
      const int64_t nc = std::min<int64_t>(a.N - col0, kQPanel * P);
      const uint8_t* w = W + p * PB;
      int64_t wPB = PB, wBB = BB;
      if (spread) {
        spread_nibbles(w, P, PB, nb, BB, spread_buf);
        w = spread_buf;
        wBB = BB + 256;
        wPB = nb * wBB;
      }
      for (int64_t r = c0; r < c1; r += MR) {
        const int R = static_cast<int>(std::min<int64_t>(MR, c1 - r));
        const int64_t lr = r - c0;
        run_tile(t, spread, R, P, nb, s.q.data() + lr * a.K, a.K, s.d.data() + lr * nb, s.zs.data() + lr * nb,
                 s.ds.data() + lr * nb, nb, w, wPB, wBB, tile);
        finish_tile(a, tile, R, r, col0, nc);
      }
    }
  }
}
