#include "core/cpu.h"

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <stdexcept>
#include <thread>
#include <utility>

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#define PYVITCPP_X86 1
#if defined(_MSC_VER)
#include <intrin.h>
#else
#include <cpuid.h>
#endif
#endif

namespace pyvitcpp {

namespace {

#ifdef PYVITCPP_X86
void cpuid(unsigned leaf, unsigned sub, unsigned r[4]) {
#if defined(_MSC_VER)
  int v[4];
  __cpuidex(v, static_cast<int>(leaf), static_cast<int>(sub));
  for (int i = 0; i < 4; ++i) r[i] = static_cast<unsigned>(v[i]);
#else
  __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
#endif
}

unsigned long long xgetbv0() {
#if defined(_MSC_VER)
  return _xgetbv(0);
#else
  unsigned eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<unsigned long long>(edx) << 32) | eax;
#endif
}
#endif

int count_physical_cores(int logical) {
#ifdef __linux__
  // Distinct (physical id, core id) pairs; falls back to the logical count.
  std::ifstream f("/proc/cpuinfo");
  std::set<std::pair<int, int>> cores;
  std::string line;
  int phys = 0;
  while (std::getline(f, line)) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon);
    while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.pop_back();
    int val = std::atoi(line.c_str() + colon + 1);
    if (key == "physical id") phys = val;
    if (key == "core id") cores.insert({phys, val});
  }
  if (!cores.empty() && static_cast<int>(cores.size()) <= logical) return static_cast<int>(cores.size());
#endif
  return logical;
}

CpuFeatures detect() {
  CpuFeatures c;
  unsigned hw = std::thread::hardware_concurrency();
  c.logical_cores = hw ? static_cast<int>(hw) : 1;
  c.physical_cores = count_physical_cores(c.logical_cores);
#ifdef PYVITCPP_X86
  unsigned r[4];
  cpuid(0, 0, r);
  unsigned max_leaf = r[0];
  char vendor[13];
  std::memcpy(vendor, &r[1], 4);
  std::memcpy(vendor + 4, &r[3], 4);
  std::memcpy(vendor + 8, &r[2], 4);
  vendor[12] = 0;
  c.vendor = vendor;
  cpuid(0x80000000u, 0, r);
  if (r[0] >= 0x80000004u) {
    char brand[49];
    for (unsigned i = 0; i < 3; ++i) {
      cpuid(0x80000002u + i, 0, r);
      std::memcpy(brand + 16 * i, r, 16);
    }
    brand[48] = 0;
    c.brand = brand;
    while (!c.brand.empty() && c.brand.back() == ' ') c.brand.pop_back();
  }
  if (max_leaf < 1) return c;
  cpuid(1, 0, r);
  c.sse42 = (r[2] >> 20) & 1;
  c.fma = (r[2] >> 12) & 1;
  c.f16c = (r[2] >> 29) & 1;
  bool osxsave = (r[2] >> 27) & 1;
  c.avx = (r[2] >> 28) & 1;
  if (osxsave) {
    unsigned long long xcr0 = xgetbv0();
    c.os_ymm = (xcr0 & 0x6) == 0x6;
    c.os_zmm = c.os_ymm && (xcr0 & 0xe0) == 0xe0;
  }
  if (max_leaf >= 7) {
    cpuid(7, 0, r);
    c.avx2 = (r[1] >> 5) & 1;
    c.avx512f = (r[1] >> 16) & 1;
    c.avx512dq = (r[1] >> 17) & 1;
    c.avx512bw = (r[1] >> 30) & 1;
    c.avx512vl = (r[1] >> 31) & 1;
    c.avx512vbmi = (r[2] >> 1) & 1;
    c.avx512vnni = (r[2] >> 11) & 1;
    unsigned max_sub = r[0];
    if (max_sub >= 1) {
      cpuid(7, 1, r);
      c.avxvnni = (r[0] >> 4) & 1;
      c.avx512bf16 = (r[0] >> 5) & 1;
    }
  }
#endif
  return c;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

bool isa_supported(Isa isa, std::string* why) {
  const CpuFeatures& c = cpu_features();
  auto miss = [&](const char* what) {
    if (why) *why = what;
    return false;
  };
  switch (isa) {
    case Isa::Ref: return true;
    case Isa::Avx2:
      if (!c.avx2) return miss("avx2");
      if (!c.fma) return miss("fma");
      if (!c.f16c) return miss("f16c");
      if (!c.os_ymm) return miss("OS support for YMM state (XCR0)");
      return true;
    case Isa::Avx512:
      if (!isa_supported(Isa::Avx2, why)) return false;
      if (!c.avx512f) return miss("avx512f");
      if (!c.avx512bw) return miss("avx512bw");
      if (!c.avx512dq) return miss("avx512dq");
      if (!c.avx512vl) return miss("avx512vl");
      if (!c.avx512vnni) return miss("avx512vnni");
      if (!c.os_zmm) return miss("OS support for ZMM/opmask state (XCR0)");
      return true;
  }
  return miss("unknown level");
}

Isa best_isa() {
  if (isa_supported(Isa::Avx512)) return Isa::Avx512;
  if (isa_supported(Isa::Avx2)) return Isa::Avx2;
  return Isa::Ref;
}

Isa parse_isa(const std::string& name) {
  if (name == "ref") return Isa::Ref;
  if (name == "avx2") return Isa::Avx2;
  if (name == "avx512") return Isa::Avx512;
  throw std::invalid_argument("unknown ISA level '" + name + "' (expected ref, avx2 or avx512)");
}

Isa selected_isa() {
  const char* env = std::getenv("PYVITCPP_ISA");
  if (!env || !*env) return best_isa();
  Isa isa = parse_isa(env);
  std::string why;
  if (!isa_supported(isa, &why))
    throw std::invalid_argument(std::string("PYVITCPP_ISA=") + env + " is not supported on this CPU: missing " + why);
  return isa;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Ref: return "ref";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
  }
  return "unknown";
}

}  // namespace pyvitcpp
