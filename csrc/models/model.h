// A loaded model: the GGUF file (mmapped), its weights (validated, packed for the active kernel
// level), a family-specific graph builder and a cache of built graphs per input geometry.
#pragma once
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "graph/graph.h"
#include "core/threadpool.h"
#include "io/gguf.h"
#include "kernels/kernels.h"

namespace pyvitcpp {

// A model file that is valid GGUF but not a model we can run (unsupported architecture,
// missing or mis-shaped tensor, inconsistent hyper-parameters), or a bad request (input shape).
class ModelError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Reads typed tensors out of the GGUF with shape checks, keeping owned copies where needed.
class WeightStore {
 public:
  WeightStore(std::shared_ptr<GGUFFile> file, const KernelTable& kt) : file_(std::move(file)), kt_(kt) {}
  bool has(const std::string& name) const { return file_->find_tensor(name) != nullptr; }
  // F32 vector of n elements (F16/BF16 are converted into an owned copy). Throws if missing/mis-shaped.
  const float* vec(const std::string& name, int64_t n);
  const float* vec_opt(const std::string& name, int64_t n) { return has(name) ? vec(name, n) : nullptr; }
  // F32 tensor with exactly these PyTorch-order dims (converted like vec).
  const float* tensor_f32(const std::string& name, const std::vector<int64_t>& dims);
  // A Linear weight [N, K] (also accepts a 4-D conv weight whose trailing dims flatten to K).
  LinearWeight* linear(const std::string& weight, const std::string& bias, int64_t N, int64_t K);
  // Linear weight fused from several [Ni, K] parts stacked along N (q, k, v).
  LinearWeight* linear_concat(const std::vector<std::string>& weights, const std::vector<std::string>& biases,
                              int64_t N_each, int64_t K);
  // A Linear weight the family assembled itself (e.g. a conv weight permuted to im2col's column
  // order): stored, counted in owned_bytes() and packed like the others.
  // wino_c > 0: raw is a 3x3 stride-1 conv's [N, 3, 3, wino_c] weight, also transformed for the
  // level's Winograd path when it has one (LinearWeight::wino; counted in wino_bytes()).
  LinearWeight* linear_owned(const std::string& name, DType type, int64_t N, int64_t K, AlignedBuffer raw,
                             const float* bias, int64_t wino_c = 0);
  size_t packed_bytes() const;
  size_t owned_bytes() const;
  size_t wino_bytes() const;  // Winograd weights of the 3x3 convs (LinearWeight::wino)
  const GGUFFile& file() const { return *file_; }
  // Pack weights of 1 MiB and more with nth threads of this pool (split by output panels).
  // Whether linear_owned also makes Winograd weights (Model's winograd option).
  void set_winograd(bool on) { winograd_ = on; }
  void set_pack_pool(ThreadPool* pool, int nth) {
    pool_ = pool;
    pack_nth_ = nth;
  }

 private:
  const GGUFTensorInfo& find(const std::string& name) const;
  void pack(LinearWeight& w);
  template <class F>
  void pack_split(int64_t N, int64_t panel, size_t bytes, const F& pack_rows);
  std::shared_ptr<GGUFFile> file_;
  const KernelTable& kt_;
  std::list<LinearWeight> linears_;
  std::list<std::vector<float>> owned_f32_;
  ThreadPool* pool_ = nullptr;
  int pack_nth_ = 1;
  bool winograd_ = true;
};

class ModelFamily {
 public:
  virtual ~ModelFamily() = default;
  virtual std::string architecture() const = 0;
  virtual std::vector<std::string> output_names() const = 0;
  virtual int64_t num_channels() const = 0;
  // Throws ModelError when this geometry cannot run (naming what would).
  virtual void check_input(int64_t C, int64_t H, int64_t W) const = 0;
  // Graph with every output this family offers set; the caller prunes it with finalize().
  virtual std::unique_ptr<Graph> build(int64_t B, int64_t H, int64_t W) const = 0;
  // Hyper-parameters for Python (`Encoder.config`).
  virtual std::map<std::string, std::string> hparams() const = 0;
  // Called in the child of a fork (Model's pthread_atfork handler): a family that keeps a
  // locked memo for build() (ForkSafeMemo) starts a fresh one there.
  virtual void reset_after_fork() {}
  // Called by Model under its run lock after its graph cache dropped a graph, with the (H, W) of
  // every graph still cached: a family's memo may forget what none of them uses (it would
  // otherwise grow with every input size ever asked for).
  virtual void trim_memo(const std::vector<std::pair<int64_t, int64_t>>& live_hw) {}
};

// A memo that build() fills under its own lock (resized position tables per grid). Heap-held so
// that the child of a fork made while another thread was inside build() can abandon it: the
// lock may be held by a thread that does not exist there and the table may be half written.
// reset_after_fork() leaks the old one (graphs built before the fork keep pointing into it, so
// it must stay valid) and starts empty.
template <class T>
class ForkSafeMemo {
 public:
  struct State {
    std::mutex mu;
    T value;
  };
  State& operator*() const { return *s_; }
  State* operator->() const { return s_.get(); }
  void reset_after_fork() {
    s_.release();  // deliberately leaked, see above
    s_.reset(new State());
  }
  // T is a map: drops the entries whose key keep(key) rejects.
  template <class Keep>
  void erase_unless(const Keep& keep) {
    std::lock_guard<std::mutex> lk(s_->mu);
    for (auto it = s_->value.begin(); it != s_->value.end();) it = keep(it->first) ? std::next(it) : s_->value.erase(it);
  }

 private:
  std::unique_ptr<State> s_{new State()};
};

class Model {
 public:
  // Throws std::runtime_error / GGUFError / ModelError with the cause named; threads above
  // kMaxThreads are std::invalid_argument. use_mmap = false reads the weights into memory
  // (GGUFFile::open), so the file may be replaced while the model is open.
  // winograd: give 3x3 stride-1 convs Winograd weights where the level has the path (and
  // PYVITCPP_WINOGRAD is not 0); false keeps them direct convs (less memory, direct rounding).
  Model(const std::string& path, int threads, const std::string& isa, bool use_mmap = true, bool winograd = true);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  // pixels: [B, C, H, W] C-contiguous float32. dst: name -> buffer of output_numel floats.
  void run(const float* pixels, int64_t B, int64_t C, int64_t H, int64_t W,
           const std::vector<std::string>& outputs, const std::map<std::string, float*>& dst);
  // Shapes of the requested outputs, read from the same cached graph run() will use.
  std::map<std::string, std::vector<int64_t>> output_shapes(int64_t B, int64_t H, int64_t W,
                                                            const std::vector<std::string>& outputs);
  std::vector<int64_t> output_shape(const std::string& name, int64_t B, int64_t H, int64_t W) {
    return output_shapes(B, H, W, {name}).at(name);
  }
  size_t arena_bytes(int64_t B, int64_t H, int64_t W, const std::vector<std::string>& outputs);
  // How many images of a batch of B each graph run takes (run() splits larger batches).
  int64_t images_per_run(int64_t B, int64_t H, int64_t W, const std::vector<std::string>& outputs);

  const ModelFamily& family() const { return *family_; }
  const GGUFFile& file() const { return *file_; }
  std::shared_ptr<GGUFFile> file_ptr() const { return file_; }
  int threads() const { return threads_; }
  Isa isa() const { return kt_->isa; }
  size_t packed_weight_bytes() const { return weights_->packed_bytes(); }
  size_t owned_weight_bytes() const { return weights_->owned_bytes(); }
  size_t wino_weight_bytes() const { return weights_->wino_bytes(); }

 private:
  Graph& graph_for(int64_t B, int64_t H, int64_t W, const std::vector<std::string>& outputs);
  // Images per graph run for a batch of B (B itself, or fewer: see model.cpp). Under mu_.
  int64_t micro_batch(int64_t B, int64_t H, int64_t W, const std::vector<std::string>& outputs);

  std::shared_ptr<GGUFFile> file_;
  const KernelTable* kt_;
  int threads_;
  std::unique_ptr<WeightStore> weights_;
  std::unique_ptr<ModelFamily> family_;
  std::unique_ptr<ThreadPool> pool_;
  // One run at a time per model (graphs and arenas are reused). On the heap: in the child of a
  // fork() made while another thread was running this model, it would stay locked for good, so
  // a pthread_atfork child handler (model.cpp) gives every live model a fresh one.
  std::unique_ptr<std::mutex> mu_{new std::mutex};
  friend void reset_models_after_fork();
  struct CacheEntry {
    std::string key;
    std::unique_ptr<Graph> graph;
    int64_t H, W;
  };
  std::list<CacheEntry> cache_;  // most recently used first
  std::map<std::string, size_t> image_arena_;  // micro_batch's memo: one image's arena per geometry
};

// An integer hyper-parameter in [1, 2^20]; ModelError naming the key otherwise (GGUFError when
// it is missing or not an integer).
int64_t positive_hparam(const GGUFFile& f, const std::string& key);

// Family registry: builds the family for the file's general.architecture or throws ModelError.
std::unique_ptr<ModelFamily> make_vit_family(const GGUFFile& f, WeightStore& w);
// CNN backbones (models/cnn.cpp): general.architecture "efficientnet" or "resnet".
std::unique_ptr<ModelFamily> make_cnn_family(const GGUFFile& f, WeightStore& w);
// Segment Anything's image encoder with its neck (models/sam.cpp): general.architecture "sam".
std::unique_ptr<ModelFamily> make_sam_family(const GGUFFile& f, WeightStore& w);
// Darknet YOLO (models/darknet.cpp): general.architecture "darknet".
std::unique_ptr<ModelFamily> make_darknet_family(const GGUFFile& f, WeightStore& w);
// Ultralytics YOLOv8 / YOLO11 detection models (models/yolo.cpp): general.architecture "yolov8".
std::unique_ptr<ModelFamily> make_yolo_family(const GGUFFile& f, WeightStore& w);
// Swin Transformer V1 / V2 (models/swin.cpp): general.architecture "swin".
std::unique_ptr<ModelFamily> make_swin_family(const GGUFFile& f, WeightStore& w);

}  // namespace pyvitcpp
