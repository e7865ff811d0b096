// Thread ith's share [*b, *e) of n items under the (ith, nth) convention of kernels.h:
// contiguous and balanced to within one item.
//
// Included INSIDE the includer's (per-ISA, anonymous) namespace, like gemm_driver.h, so that
// every ISA-flagged translation unit keeps its own copy under its own namespace
// (tests/test_isa_isolation.py attributes code to functions by name). No includes here: the
// includer already has <cstdint>.
inline void split(int64_t n, int ith, int nth, int64_t* b, int64_t* e) {
  *b = n * ith / nth;
  *e = n * (ith + 1) / nth;
}
