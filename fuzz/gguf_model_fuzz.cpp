// libFuzzer target over the GGUF reader and the model loader (issue 19).
//
// Each input is a whole GGUF file. It is written to a memfd and opened through /proc/self/fd,
// so the real open path runs (mmap, or the read-into-memory path for every other input), then:
//   1. every metadata key is read with every typed getter, and every tensor's bytes are summed
//      (ASan checks each byte lies inside the file);
//   2. the model is loaded (family, weight validation, packing) and, when its native input is
//      small, the graph is built and one forward runs on fixed pixels.
// The only acceptable failures are GGUFError and ModelError (a file problem, named). Anything
// else escapes: libFuzzer reports an uncaught exception (std::bad_alloc from an unbounded
// allocation, std::out_of_range, a plain std::runtime_error) as a crash, and ASan / UBSan
// (built with -fno-sanitize-recover) abort on memory errors and undefined behaviour.
//
// The kernel level (ref / avx2 / avx512, where the CPU has it), the thread count (1 or 2) and
// mmap vs read are chosen from the input's size, so a given input always runs the same way.
//
// Built with GGUF_FUZZ_LOAD_ONLY (the gguf_load_fuzz target) it stops after step 2's load, with
// one thread: no thread pool, no graph, no forward. That runs ~100x more inputs per second
// against the parser, the metadata getters, weight validation and packing, for the long runs
// (docs/RELIABILITY.md); gguf_model_fuzz keeps the forward for CI's short run.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "core/checked.h"
#include "core/cpu.h"
#include "io/gguf.h"
#include "models/model.h"

using namespace pyvitcpp;

namespace {

// Inputs whose native geometry makes a forward larger than this are loaded but not run: the
// fuzzer is after parsing and shape logic, and a hostile 16384 x 16384 input is a legitimate
// (if slow) request, not a bug.
constexpr int64_t kMaxSide = 64;
constexpr size_t kMaxArena = size_t{64} << 20;

int memfd() {
  static int fd = [] {
    int f = memfd_create("gguf-fuzz", MFD_CLOEXEC);
    if (f < 0) {
      perror("memfd_create");
      abort();
    }
    return f;
  }();
  return fd;
}

volatile uint64_t g_sink;

// GGUF_FUZZ_VERBOSE=1 (the replay driver): one line per input saying how far it got.
void note(const std::string& what) {
  static const bool verbose = std::getenv("GGUF_FUZZ_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "  %s\n", what.c_str());
}

void touch_metadata(const GGUFFile& f) {
  uint64_t acc = 0;
  for (const auto& kv : f.metadata()) {
    const std::string& k = kv.first;
    try { acc += f.get_str(k).size(); } catch (const GGUFError&) {}
    try { acc += static_cast<uint64_t>(f.get_int(k)); } catch (const GGUFError&) {}
    try { acc += static_cast<uint64_t>(f.get_float(k) != 0.0); } catch (const GGUFError&) {}
    try { acc += f.get_bool_or(k, false); } catch (const GGUFError&) {}
    try { acc += f.get_float_array(k).size(); } catch (const GGUFError&) {}
    try { acc += f.get_int_array(k).size(); } catch (const GGUFError&) {}
    try { acc += f.get_str_array(k).size(); } catch (const GGUFError&) {}
    acc += gguf_value_type_desc(kv.second).size();
  }
  for (const auto& t : f.tensors()) {
    acc += static_cast<uint64_t>(t.nelements());
    for (size_t i = 0; i < t.nbytes; i += 61) acc += t.data[i];
    if (t.nbytes) acc += t.data[t.nbytes - 1];
  }
  g_sink = acc;
}

// Input sizes to try, in order: the family's native size, the preprocessor's, and 32 (the CNNs
// take any size). The first one small enough that check_input accepts is run.
std::vector<int64_t> candidate_sides(const GGUFFile& f) {
  std::vector<int64_t> out;
  try {
    const std::string arch = f.get_str_or("general.architecture", "");
    if (f.has(arch + ".image_size")) out.push_back(f.get_int(arch + ".image_size"));
  } catch (const GGUFError&) {
  }
  try {
    if (f.has("preprocess.image_size")) {
      std::vector<int64_t> s = f.get_int_array("preprocess.image_size");
      if (!s.empty()) out.push_back(s[0]);
    }
  } catch (const GGUFError&) {
  }
  out.push_back(32);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int fd = memfd();
  if (ftruncate(fd, 0) != 0 || (size && pwrite(fd, data, size, 0) != static_cast<ssize_t>(size))) {
    perror("memfd write");
    abort();
  }
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  const bool use_mmap = size % 2 == 0;
  const Isa levels[] = {Isa::Ref, Isa::Avx2, Isa::Avx512};
  Isa level = levels[(size / 2) % 3];
  if (!isa_supported(level, nullptr)) level = Isa::Ref;
#ifdef GGUF_FUZZ_LOAD_ONLY
  const int threads = 1;
#else
  const int threads = 1 + static_cast<int>((size / 6) % 2);
#endif

  try {
    auto f = GGUFFile::open(path, use_mmap);
    touch_metadata(*f);
  } catch (const GGUFError& e) {
    note(std::string("GGUFError at open: ") + e.what());
    return 0;
  }
  try {
    Model m(path, threads, isa_name(level), use_mmap);
    const auto& fam = m.family();
    (void)fam.hparams();
    const int64_t C = fam.num_channels();
#ifdef GGUF_FUZZ_LOAD_ONLY
    g_sink = static_cast<uint64_t>(C) + fam.output_names().size();
    note(fam.architecture() + ": loaded");
    return 0;
#endif
    int64_t side = 0;
    for (int64_t s : candidate_sides(m.file())) {
      if (s < 1 || s > kMaxSide || C < 1 || C > 4) continue;
      try {
        fam.check_input(C, s, s);
      } catch (const ModelError&) {
        continue;
      }
      side = s;
      break;
    }
    if (side == 0) {
      note(fam.architecture() + ": loaded; no input size small enough for a forward");
      return 0;
    }
    const std::vector<std::string> outs = fam.output_names();
    if (m.arena_bytes(1, side, side, outs) > kMaxArena) {
      note(fam.architecture() + ": loaded; arena too large for a forward");
      return 0;
    }
    std::map<std::string, std::vector<float>> bufs;
    std::map<std::string, float*> dst;
    for (const auto& kv : m.output_shapes(1, side, side, outs)) {
      int64_t n = 1;
      for (int64_t d : kv.second)
        if (!mul_fits(n, d, &n)) return 0;  // (the graph's shape checks should make this unreachable)
      if (n > (int64_t{1} << 24)) return 0;
      bufs[kv.first].assign(static_cast<size_t>(n), 0.0f);
      dst[kv.first] = bufs[kv.first].data();
    }
    std::vector<float> px(static_cast<size_t>(C * side * side));
    for (size_t i = 0; i < px.size(); ++i) px[i] = std::sin(0.37f * static_cast<float>(i));
    m.run(px.data(), 1, C, side, side, outs, dst);
    uint64_t acc = 0;
    for (const auto& kv : bufs)
      for (float v : kv.second) acc += std::isfinite(v);
    g_sink = acc;
    note(fam.architecture() + ": forward at " + std::to_string(side) + " px, " + std::to_string(outs.size()) +
         " outputs, " + std::to_string(acc) + " finite values");
  } catch (const GGUFError& e) {
    note(std::string("GGUFError: ") + e.what());
  } catch (const ModelError& e) {
    note(std::string("ModelError: ") + e.what());
  }
  return 0;
}
