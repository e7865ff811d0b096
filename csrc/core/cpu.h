// CPU feature detection (cpuid + XCR0) and the choice of kernel level.
#pragma once
#include <string>

#include "core/isa.h"

namespace pyvitcpp {

struct CpuFeatures {
  std::string vendor, brand;
  bool sse42 = false, avx = false, avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512dq = false, avx512vl = false;
  bool avx512vnni = false, avx512bf16 = false, avx512vbmi = false, avxvnni = false;
  bool os_ymm = false;  // XCR0: SSE + AVX state enabled by the OS
  bool os_zmm = false;  // XCR0: opmask + ZMM_Hi256 + Hi16_ZMM enabled by the OS
  int logical_cores = 1;
  int physical_cores = 1;
};

const CpuFeatures& cpu_features();

// Highest level this CPU and OS can run.
Isa best_isa();
// Whether this CPU/OS can run the level; if not, *why names the missing feature.
bool isa_supported(Isa isa, std::string* why = nullptr);
// The level in use: PYVITCPP_ISA (ref|avx2|avx512) when set, else best_isa(). Throws
// std::runtime_error for an unknown or unsupported value.
Isa selected_isa();
Isa parse_isa(const std::string& name);  // throws on unknown names

}  // namespace pyvitcpp
