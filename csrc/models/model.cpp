#include "models/model.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "core/checked.h"
#include "core/cpu.h"
#include "core/fp16.h"
#include "kernels/quant_gemm.h"
#include "core/blocks.h"
#include "quant/quantize.h"

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>
#endif

#include <set>

namespace pyvitcpp {

// Largest C x OC of a conv that gets Winograd weights (winograd_weights below).
constexpr int64_t kWinogradMaxCxOC = 256 * 256;

namespace {

std::string dims_str(const std::vector<int64_t>& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + "]";
}

// PyTorch-order dims of a tensor (GGUF stores ggml order, innermost first).
std::vector<int64_t> torch_dims(const GGUFTensorInfo& t) { return {t.ne.rbegin(), t.ne.rend()}; }

float bf16_to_fp32(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

}  // namespace

int64_t positive_hparam(const GGUFFile& f, const std::string& key) {
  int64_t v = f.get_int(key);
  if (v <= 0 || v > (int64_t{1} << 20))
    throw ModelError(f.path() + ": hyper-parameter " + key + " = " + std::to_string(v) + " is out of range");
  return v;
}

const GGUFTensorInfo& WeightStore::find(const std::string& name) const {
  const GGUFTensorInfo* t = file_->find_tensor(name);
  if (!t) throw ModelError(file_->path() + ": required tensor '" + name + "' is missing");
  return *t;
}

const float* WeightStore::tensor_f32(const std::string& name, const std::vector<int64_t>& dims) {
  const GGUFTensorInfo& t = find(name);
  std::vector<int64_t> got = torch_dims(t);
  if (got != dims)
    throw ModelError(file_->path() + ": tensor '" + name + "' has shape " + dims_str(got) + ", expected " +
                     dims_str(dims));
  const int64_t n = checked_product<ModelError>(dims, file_->path() + ": tensor '" + name + "' element count");
  switch (static_cast<DType>(t.type)) {
    case DType::F32:
      if (reinterpret_cast<uintptr_t>(t.data) % alignof(float) == 0) return reinterpret_cast<const float*>(t.data);
      break;
    case DType::F16:
    case DType::BF16:
      break;
    case DType::Q8_0: case DType::Q4_0: case DType::Q4_1: case DType::Q5_0: case DType::Q5_1:
      if (t.ne[0] > 0 && t.ne[0] % kQK == 0) {
        owned_f32_.emplace_back(static_cast<size_t>(n));
        dequantize_rows(static_cast<DType>(t.type), t.data, n / t.ne[0], t.ne[0], owned_f32_.back().data(), 1);
        return owned_f32_.back().data();
      }
      [[fallthrough]];
    default:
      throw ModelError(file_->path() + ": tensor '" + name + "' has type " + dtype_name(t.type) +
                       "; this tensor must be f32, f16 or bf16");
  }
  owned_f32_.emplace_back(static_cast<size_t>(n));
  std::vector<float>& v = owned_f32_.back();
  const uint16_t* h = reinterpret_cast<const uint16_t*>(t.data);
  for (int64_t i = 0; i < n; ++i) {
    if (t.type == static_cast<uint32_t>(DType::F32)) std::memcpy(&v[i], t.data + 4 * i, 4);
    else if (t.type == static_cast<uint32_t>(DType::F16)) v[i] = fp16_to_fp32(h[i]);
    else v[i] = bf16_to_fp32(h[i]);
  }
  return v.data();
}

const float* WeightStore::vec(const std::string& name, int64_t n) { return tensor_f32(name, {n}); }

namespace {

// Which 3x3 stride-1 convs also get Winograd weights (4x the F32 weight's bytes): channel counts
// in whole vectors, and C x OC small enough that the 36 transformed matrices are re-read from
// cache (see docs/PERFORMANCE.md, "Winograd F(4x4, 3x3)"). PYVITCPP_WINOGRAD=0: none.
// vw: floats per vector of the level (its panels are two vectors wide).
bool winograd_weights(int64_t OC, int64_t C, int64_t vw) {
  static const bool on = [] {
    const char* e = std::getenv("PYVITCPP_WINOGRAD");
    return !(e && e[0] == '0');
  }();
  return on && vw > 0 && C % vw == 0 && OC % vw == 0 && C * OC <= kWinogradMaxCxOC;
}

// Drops the resident pages of a mapped range that a packed copy replaces (the mapping is
// read-only and file-backed: the bytes stay readable, the kernel re-reads them on access).
void release_mapped_pages(const void* p, size_t n) {
#if defined(__unix__) || defined(__APPLE__)
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  uintptr_t a = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
  uintptr_t e = (reinterpret_cast<uintptr_t>(p) + n) / page * page;
  if (e > a) madvise(reinterpret_cast<void*>(a), e - a, MADV_DONTNEED);
#else
  (void)p;
  (void)n;
#endif
}

}  // namespace

// Runs pack_rows(n0, n1, dst_offset) over the weight's output rows, split into panel-aligned
// ranges among the pool's threads when the packed weight is big enough to be worth it (a
// ViT-B/16 F32 file packs 86 M weights at open; with 16 threads that is a sixteenth of the wait).
template <class F>
void WeightStore::pack_split(int64_t N, int64_t panel, size_t bytes, const F& pack_rows) {
  const int64_t panels = (N + panel - 1) / panel;
  const int nth = pool_ && bytes >= (size_t{1} << 20) ? static_cast<int>(std::min<int64_t>(pack_nth_, panels)) : 1;
  if (nth <= 1) {
    pack_rows(0, N);
    return;
  }
  pool_->run(nth, [&](int ith) {
    const int64_t p0 = panels * ith / nth, p1 = panels * (ith + 1) / nth;
    if (p0 < p1) pack_rows(p0 * panel, std::min(N, p1 * panel));
  });
}

void WeightStore::pack(LinearWeight& w) {
  if (is_block_quant(w.type)) {
    // Quantized weights are repacked (same codes, column-panel order) where the level has a
    // packed kernel; the raw blocks are then no longer read.
    size_t bytes = kt_.qgemm_pack_size(w.type, w.N, w.K);
    if (bytes == 0) return;
    w.packed.resize(bytes, false);  // the packer writes every byte of its panels
    size_t rb = 0;
    row_bytes(static_cast<uint32_t>(w.type), w.K, &rb);
    const size_t pb = static_cast<size_t>(qpack_panel_bytes(w.type, w.K));
    pack_split(w.N, kQPanel, bytes, [&](int64_t n0, int64_t n1) {
      kt_.qgemm_pack(static_cast<const uint8_t*>(w.raw) + static_cast<size_t>(n0) * rb, w.type, n1 - n0, w.K,
                     w.packed.data() + static_cast<size_t>(n0 / kQPanel) * pb);
    });
    if (!w.owned_raw.empty()) {
      w.owned_raw.resize(0);
    } else if (file_->mapped()) {
      release_mapped_pages(w.raw, rb * static_cast<size_t>(w.N));
    }
    w.raw = nullptr;
    return;
  }
  size_t bytes = kt_.gemm_pack_size(w.type, w.N, w.K);
  if (bytes == 0) return;
  w.packed.resize(bytes, false);  // the packer writes every byte, zero padding included
  const size_t esz = w.type == DType::F32 ? 4 : 2, nr = static_cast<size_t>(kt_.gemm_pack_nr);
  const auto pack_rows = [&](int64_t n0, int64_t n1) {
    kt_.gemm_pack(static_cast<const uint8_t*>(w.raw) + static_cast<size_t>(n0 * w.K) * esz, w.type, n1 - n0, w.K,
                  w.packed.data() + static_cast<size_t>(n0 * w.K) * esz);
  };
  if (nr > 0) pack_split(w.N, static_cast<int64_t>(nr), bytes, pack_rows);
  else pack_rows(0, w.N);
  // From here on the kernels read only the packed copy (W_raw is their fallback when there is
  // none), so keep one copy resident, not two or three: free an assembled raw copy, and drop
  // this tensor's pages of the mapped file from our resident set (the page cache keeps them).
  if (!w.owned_raw.empty()) {
    w.owned_raw = AlignedBuffer();
    w.raw = nullptr;
  } else if (file_->mapped()) {  // (anonymous memory would read back as zeros)
    release_mapped_pages(w.raw, static_cast<size_t>(w.N * w.K) * esz);
  }
}

static void check_linear_type(const std::string& path, const GGUFTensorInfo& t) {
  if (is_block_quant(static_cast<DType>(t.type))) {
    // A conv weight [OC, C, kh, kw] whose innermost dim (kw) holds whole blocks has exactly the
    // bytes of the 2-D [OC, C*kh*kw] matrix (e.g. a 32x32 patch conv), so it is taken as that.
    if (t.ne.size() < 2 || t.ne[0] % 32 != 0)
      throw ModelError(path + ": weight '" + t.name + "' is " + dtype_name(t.type) + " with " + std::to_string(t.ne.size()) +
                       " dimensions and rows of " + std::to_string(t.ne.empty() ? 0 : t.ne[0]) +
                       "; a quantized matrix needs rows made of whole 32-element blocks");
    return;
  }
  if (t.type != static_cast<uint32_t>(DType::F32) && t.type != static_cast<uint32_t>(DType::F16))
    throw ModelError(path + ": weight '" + t.name + "' has type " + dtype_name(t.type) +
                     "; matrix weights must be f32, f16, q8_0, q4_0, q4_1, q5_0 or q5_1");
}

LinearWeight* WeightStore::linear(const std::string& weight, const std::string& bias, int64_t N, int64_t K) {
  const GGUFTensorInfo& t = find(weight);
  check_linear_type(file_->path(), t);
  std::vector<int64_t> got = torch_dims(t);
  // A zero dim keeps the element count (checked at open) small whatever the others are, so
  // the flattened row length is checked on its own.
  int64_t rows = got.empty() ? 0 : got[0], cols = 1;
  for (size_t i = 1; i < got.size(); ++i)
    if (!mul_fits(cols, got[i], &cols))  // the message is built only when it is thrown
      cols = checked_mul<ModelError>(cols, got[i], file_->path() + ": tensor '" + weight + "' " + dims_str(got) + " row length");
  checked_mul<ModelError>(N, K, file_->path() + ": tensor '" + weight + "' element count");
  if (got.size() < 2 || rows != N || cols != K)
    throw ModelError(file_->path() + ": tensor '" + weight + "' has shape " + dims_str(got) + ", expected [" +
                     std::to_string(N) + ", " + std::to_string(K) + "] (or a conv weight flattening to it)");
  linears_.emplace_back();
  LinearWeight& w = linears_.back();
  w.name = weight;
  w.type = static_cast<DType>(t.type);
  w.N = N;
  w.K = K;
  w.raw = t.data;
  w.bias = bias.empty() ? nullptr : vec_opt(bias, N);
  pack(w);
  return &w;
}

LinearWeight* WeightStore::linear_concat(const std::vector<std::string>& weights, const std::vector<std::string>& biases,
                                         int64_t N_each, int64_t K) {
  std::vector<const GGUFTensorInfo*> parts;
  for (const auto& name : weights) {
    const GGUFTensorInfo& t = find(name);
    check_linear_type(file_->path(), t);
    if (torch_dims(t) != std::vector<int64_t>{N_each, K})
      throw ModelError(file_->path() + ": tensor '" + name + "' has shape " + dims_str(torch_dims(t)) +
                       ", expected " + dims_str({N_each, K}));
    if (!parts.empty() && t.type != parts[0]->type)
      throw ModelError(file_->path() + ": tensors to fuse have different types: " + weights[0] + ", " + name);
    parts.push_back(&t);
  }
  const std::string what = file_->path() + ": fused weight '" + weights[0] + "'";
  const int64_t N = checked_mul<ModelError>(N_each, static_cast<int64_t>(parts.size()), what + " rows");
  checked_mul<ModelError>(N, K, what + " element count");
  linears_.emplace_back();
  LinearWeight& w = linears_.back();
  w.name = weights[0];
  w.type = static_cast<DType>(parts[0]->type);
  w.N = N;
  w.K = K;
  size_t part_bytes = parts[0]->nbytes;
  w.owned_raw.resize(part_bytes * parts.size());
  for (size_t i = 0; i < parts.size(); ++i) std::memcpy(w.owned_raw.data() + i * part_bytes, parts[i]->data, part_bytes);
  w.raw = w.owned_raw.data();
  bool any_bias = false;
  for (const auto& b : biases) any_bias = any_bias || has(b);
  if (any_bias) {
    owned_f32_.emplace_back(static_cast<size_t>(w.N), 0.0f);
    std::vector<float>& bv = owned_f32_.back();
    for (size_t i = 0; i < biases.size(); ++i)
      if (has(biases[i])) std::memcpy(bv.data() + i * N_each, vec(biases[i], N_each), sizeof(float) * N_each);
    w.bias = bv.data();
  }
  pack(w);
  return &w;
}

LinearWeight* WeightStore::linear_owned(const std::string& name, DType type, int64_t N, int64_t K, AlignedBuffer raw,
                                       const float* bias, int64_t wino_c) {
  checked_mul<ModelError>(N, K, file_->path() + ": weight '" + name + "' element count");
  linears_.emplace_back();
  LinearWeight& w = linears_.back();
  w.name = name;
  w.type = type;
  w.N = N;
  w.K = K;
  w.owned_raw = std::move(raw);
  w.raw = w.owned_raw.data();
  w.bias = bias;
  if (wino_c > 0 && winograd_ && kt_.wino_pack && K == 9 * wino_c && winograd_weights(N, wino_c, kt_.gemm_pack_nr / 2)) {
    w.wino.resize(kt_.wino_pack_size(N, wino_c), false);  // every byte written
    kt_.wino_pack(w.raw, type, N, wino_c, w.wino.data());
  }
  pack(w);
  return &w;
}

size_t WeightStore::wino_bytes() const {
  size_t n = 0;
  for (const auto& w : linears_) n += w.wino.size();
  return n;
}

size_t WeightStore::packed_bytes() const {
  size_t n = 0;
  for (const auto& w : linears_) n += w.packed.size();
  return n;
}

size_t WeightStore::owned_bytes() const {
  size_t n = 0;
  for (const auto& w : linears_) n += w.owned_raw.size();
  for (const auto& v : owned_f32_) n += v.size() * sizeof(float);
  return n;
}

// ---------------------------------------------------------------------------------------------

// Live models, for the fork handlers. The registry lock is taken by the prepare handler, so the
// child never inherits it held by a thread that does not exist there.
namespace {
std::mutex g_models_mu;
std::set<Model*>& live_models() {
  static std::set<Model*>* models = new std::set<Model*>();  // never destroyed: used until exit
  return *models;
}
}  // namespace

void reset_models_after_fork() {
  for (Model* m : live_models()) {
    // The parent's mutex may be held by a thread that is not in this process: leak it.
    m->mu_.release();
    m->mu_.reset(new std::mutex());
    m->family_->reset_after_fork();  // its build() memo lock, held inside the run lock
    // micro_batch's memo may have been mid-insert under that lock: an empty one (nodes leak).
    new (&m->image_arena_) std::map<std::string, size_t>();
  }
}

namespace {
void register_model(Model* m) {
#if defined(__unix__) || defined(__APPLE__)
  static const bool registered = [] {
    pthread_atfork([] { g_models_mu.lock(); }, [] { g_models_mu.unlock(); },
                   [] {
                     reset_models_after_fork();
                     g_models_mu.unlock();  // held by the forking thread, which is this one
                   });
    return true;
  }();
  (void)registered;
#endif
  std::lock_guard<std::mutex> lk(g_models_mu);
  live_models().insert(m);
}
}  // namespace

Model::~Model() {
  std::lock_guard<std::mutex> lk(g_models_mu);
  live_models().erase(this);
}

Model::Model(const std::string& path, int threads, const std::string& isa, bool use_mmap, bool winograd) {
  if (threads > kMaxThreads)
    throw std::invalid_argument("threads=" + std::to_string(threads) + " is more than the limit of " +
                                std::to_string(kMaxThreads));
  Isa level = isa.empty() ? selected_isa() : parse_isa(isa);
  std::string why;
  if (!isa_supported(level, &why))
    throw std::invalid_argument(std::string("kernel level '") + isa_name(level) + "' needs " + why +
                             ", which this CPU lacks");
  kt_ = &kernel_table(level);
  threads_ = threads > 0 ? threads : default_thread_count();
  file_ = GGUFFile::open(path, use_mmap);
  pool_ = std::make_unique<ThreadPool>(threads_);
  weights_ = std::make_unique<WeightStore>(file_, *kt_);
  weights_->set_pack_pool(pool_.get(), threads_);
  weights_->set_winograd(winograd);
  std::string arch = file_->get_str_or("general.architecture", "");
  if (arch.empty()) throw ModelError(path + ": no general.architecture key: not a model file");
  if (arch == "vit" || arch == "dinov2" || arch == "siglip" || arch == "clip")
    family_ = make_vit_family(*file_, *weights_);
  else if (arch == "efficientnet" || arch == "resnet")
    family_ = make_cnn_family(*file_, *weights_);
  else if (arch == "sam")
    family_ = make_sam_family(*file_, *weights_);
  else if (arch == "darknet")
    family_ = make_darknet_family(*file_, *weights_);
  else if (arch == "yolov8")
    family_ = make_yolo_family(*file_, *weights_);
  else if (arch == "swin")
    family_ = make_swin_family(*file_, *weights_);
  else
    throw ModelError(path + ": unsupported architecture '" + arch +
                     "' (this version runs: vit, dinov2, siglip, clip, efficientnet, resnet, sam, swin, darknet, yolov8)");
  register_model(this);  // last: a constructor that throws has not registered
}

namespace {

std::string graph_key(int64_t B, int64_t H, int64_t W, const std::vector<std::string>& sorted_outputs) {
  std::string key = std::to_string(B) + "x" + std::to_string(H) + "x" + std::to_string(W);
  for (const auto& o : sorted_outputs) key += ":" + o;
  return key;
}

}  // namespace

Graph& Model::graph_for(int64_t B, int64_t H, int64_t W, const std::vector<std::string>& outputs) {
  std::vector<std::string> sorted = outputs;
  std::sort(sorted.begin(), sorted.end());
  const std::string key = graph_key(B, H, W, sorted);
  for (auto it = cache_.begin(); it != cache_.end(); ++it) {
    if (it->key == key) {
      cache_.splice(cache_.begin(), cache_, it);
      return *cache_.front().graph;
    }
  }
  std::unique_ptr<Graph> g;
  try {
    g = family_->build(B, H, W);
  } catch (const std::length_error& e) {  // a tensor too large to describe (graph/graph.cpp)
    throw ModelError(file_->path() + ": input " + std::to_string(B) + "x" + std::to_string(H) + "x" +
                     std::to_string(W) + ": " + e.what());
  }
  g->finalize(sorted, *kt_, threads_);
  cache_.push_front({key, std::move(g), H, W});
  // A few geometries stay cached; each holds its own activation arena.
  const size_t max_cached = 4;
  if (cache_.size() > max_cached) {
    while (cache_.size() > max_cached) cache_.pop_back();
    std::vector<std::pair<int64_t, int64_t>> live;
    for (const auto& e : cache_) live.emplace_back(e.H, e.W);
    family_->trim_memo(live);
  }
  return *cache_.front().graph;
}

// Images per graph run. A batch is one graph run, except where a model's activations dwarf its
// weights (per image, more than half the weight bytes: the YOLOv8 / YOLO11 detectors at 640;
// not the ViTs, Swin, ResNet, or EfficientNet-Lite0 and YOLOv3-tiny at ratios 0.32 and 0.39):
// there a batch's maps stream through memory layer by layer, and runs of m images, m x arena
// <= 16 MiB (one image for those detectors), keep them in the caches and the arena small
// (yolov8n batch 8 at 640: 87 -> 11 MiB). Time, 2 threads, batch 8, fresh processes
// interleaved 8 rounds, one run / runs of one image: yolov8n 1.013, yolo11n 1.024 (runs of
// two, another 8 rounds: 1.042, 1.029). Every image's results are the same bits either way
// (tests/test_parity_yolo.py, tests/test_pipeline.py). PYVITCPP_MICRO_BATCH=n forces runs of
// n images (0: the whole batch in one run).
int64_t Model::micro_batch(int64_t B, int64_t H, int64_t W, const std::vector<std::string>& outputs) {
  if (B == 1) return 1;
  if (const char* e = std::getenv("PYVITCPP_MICRO_BATCH")) {
    const long long n = std::atoll(e);
    return n <= 0 ? B : std::min<int64_t>(B, n);
  }
  // One image's arena, measured on its graph once per geometry; a graph built only to be
  // measured leaves the cache again unless runs of one image will use it.
  std::vector<std::string> sorted = outputs;
  std::sort(sorted.begin(), sorted.end());
  const std::string key = graph_key(1, H, W, sorted);
  auto memo = image_arena_.find(key);
  const bool measured = memo != image_arena_.end();
  const bool cached = std::any_of(cache_.begin(), cache_.end(), [&](const CacheEntry& e) { return e.key == key; });
  const double arena = static_cast<double>(measured ? memo->second : graph_for(1, H, W, outputs).arena_bytes());
  const double weights = static_cast<double>(weights_->packed_bytes() + weights_->owned_bytes());
  const int64_t m = arena <= 0.5 * weights
                        ? B
                        : std::min<int64_t>(B, std::max<int64_t>(1, static_cast<int64_t>((16.0 * (1 << 20)) / std::max(arena, 1.0))));
  if (!measured) {
    if (image_arena_.size() >= 64) image_arena_.clear();
    image_arena_[key] = static_cast<size_t>(arena);
    if (!cached && m != 1) cache_.pop_front();  // graph_for put it first
  }
  return m;
}

void Model::run(const float* pixels, int64_t B, int64_t C, int64_t H, int64_t W,
                const std::vector<std::string>& outputs, const std::map<std::string, float*>& dst) {
  if (B < 1) throw ModelError("batch must hold at least one image");
  family_->check_input(C, H, W);
  std::lock_guard<std::mutex> lk(*mu_);
  const int64_t m = micro_batch(B, H, W, outputs);
  const int64_t image = C * H * W;
  // Runs of m images, then the rest (graph_for may drop a cached graph: one graph at a time).
  std::map<std::string, float*> part;
  std::map<std::string, int64_t> per_image;  // floats of each output per image
  for (int64_t b0 = 0; b0 < B;) {
    const int64_t n = std::min(m, B - b0);
    Graph& g = graph_for(n, H, W, outputs);
    for (const auto& kv : dst) per_image[kv.first] = g.tensor(g.output_tensor(kv.first)).numel() / n;
    while (b0 + n <= B) {
      for (const auto& kv : dst) part[kv.first] = kv.second + b0 * per_image[kv.first];
      g.execute(*pool_, threads_, pixels + b0 * image, part);
      b0 += n;
      if (n != m) break;  // the rest: one run
    }
  }
}

std::map<std::string, std::vector<int64_t>> Model::output_shapes(int64_t B, int64_t H, int64_t W,
                                                                 const std::vector<std::string>& outputs) {
  const auto names = family_->output_names();
  for (const auto& name : outputs) {
    if (std::find(names.begin(), names.end(), name) != names.end()) continue;
    std::string all;
    for (const auto& n : names) all += (all.empty() ? "" : ", ") + n;
    throw ModelError("unknown output '" + name + "'; this model offers: " + all);
  }
  if (B < 1) throw ModelError("batch must hold at least one image");
  family_->check_input(family_->num_channels(), H, W);
  std::lock_guard<std::mutex> lk(*mu_);
  // From the graph run() starts with (a run of m images): every output is [m, ...] there.
  const int64_t m = micro_batch(B, H, W, outputs);
  Graph& g = graph_for(m, H, W, outputs);
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& name : outputs) {
    std::vector<int64_t> shape = g.tensor(g.output_tensor(name)).shape;
    if (shape.empty() || shape[0] != m)
      throw ModelError("output '" + name + "' is not batch-major (internal error)");
    shape[0] = B;
    shapes[name] = shape;
  }
  return shapes;
}

int64_t Model::images_per_run(int64_t B, int64_t H, int64_t W, const std::vector<std::string>& outputs) {
  if (B < 1) throw ModelError("batch must hold at least one image");
  family_->check_input(family_->num_channels(), H, W);
  std::lock_guard<std::mutex> lk(*mu_);
  return micro_batch(B, H, W, outputs);
}

size_t Model::arena_bytes(int64_t B, int64_t H, int64_t W, const std::vector<std::string>& outputs) {
  family_->check_input(family_->num_channels(), H, W);
  std::lock_guard<std::mutex> lk(*mu_);
  return graph_for(B, H, W, outputs).arena_bytes();
}

}  // namespace pyvitcpp
